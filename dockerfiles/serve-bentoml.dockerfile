# BentoML serving the run's model in its ONNX form (serve/bentoml/service.py, ONNX Runtime):
# one worker, usage tracking off, its home under /tmp.
#   CUDA=      (empty, the default) -> onnxruntime (CPU)
#   CUDA=1     (any non-empty value) -> onnxruntime-gpu with the CUDA and cuDNN libraries it loads
# The model is not in the image: buildbench mounts it read-only at /buildbench and names it in
# BUILDBENCH_MODEL, its inputs and outputs in BUILDBENCH_MODEL_META (serve/common/bbserve.py).
# build-inputs/ (pip.conf, an optional CA bundle and wheel directory) reaches the builder stage only.
# The variant is checked before BentoML: it requires nvidia-ml-py (NVML's bindings, no CUDA
# library), an nvidia-* package the check would take for CUDA in the CPU image.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG ONNXRUNTIME_VERSION=
ARG BENTOML_VERSION=1.4.40
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    version="${ONNXRUNTIME_VERSION:+==${ONNXRUNTIME_VERSION}}"; \
    if [ -n "${CUDA}" ]; then ort="onnxruntime-gpu[cuda,cudnn]${version}"; \
    else ort="onnxruntime${version}"; fi; \
    /opt/venv/bin/pip install "${ort}"; \
    /opt/venv/bin/python /build-inputs/check_variant.py onnxruntime "${CUDA}"; \
    /opt/venv/bin/pip install "${ort}" "bentoml==${BENTOML_VERSION}"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY serve/common/bbserve.py serve/bentoml/service.py /opt/serve/
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/opt/serve \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BENTOML_HOME=/tmp/bentoml \
    BENTOML_DO_NOT_TRACK=True
USER 10001:10001
WORKDIR /opt/serve
EXPOSE 3000
CMD ["bentoml", "serve", "service:Model", "--host", "127.0.0.1", "--port", "3000"]
