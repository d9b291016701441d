# LitServe (PyPI litserve) + ONNX Runtime serving a model (`--server litserve`): one LitAPI,
# one worker process behind LitServe's uvicorn front.
#   CUDA=      (empty, the default) -> onnxruntime (CPU)
#   CUDA=1     (any non-empty value) -> onnxruntime-gpu with its CUDA and cuDNN libraries
# The model is not in the image: buildbench mounts it read-only at /buildbench/model and names
# it in BUILDBENCH_MODEL (serve/litserve_app.py, with serve/common/bbserve.py). build-inputs/
# reaches the builder stage only.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    if [ -n "${CUDA}" ]; then runtime="onnxruntime-gpu[cuda,cudnn]"; else runtime=onnxruntime; fi; \
    /opt/venv/bin/pip install litserve numpy "${runtime}"; \
    /opt/venv/bin/python /build-inputs/check_variant.py onnxruntime "${CUDA}"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY serve/common/bbserve.py /app/
COPY serve/litserve_app.py /app/app.py
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /app
EXPOSE 8000
CMD ["python", "app.py"]
