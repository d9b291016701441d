# ONNX Runtime inference image.
#   CUDA=      (empty, the default) -> onnxruntime (CPU)
#   CUDA=1     (any non-empty value) -> onnxruntime-gpu with the CUDA and cuDNN libraries it loads
#              (its [cuda,cudnn] extras): without them the CUDA provider cannot start.
# build-inputs/ (pip.conf, an optional CA bundle and wheel directory) reaches the builder stage only.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG ONNXRUNTIME_VERSION=
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    version="${ONNXRUNTIME_VERSION:+==${ONNXRUNTIME_VERSION}}"; \
    if [ -n "${CUDA}" ]; then \
        /opt/venv/bin/pip install "onnxruntime-gpu[cuda,cudnn]${version}"; \
    else \
        /opt/venv/bin/pip install "onnxruntime${version}"; \
    fi; \
    /opt/venv/bin/python /build-inputs/check_variant.py onnxruntime "${CUDA}"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python", "-c", "import onnxruntime as ort; print(ort.__version__, ort.get_available_providers())"]
