# OpenVINO inference image (CPU plugin): reads the model's ONNX form.
#   CUDA=      (empty, the default) -> openvino from PyPI (its CPU plugin)
#   CUDA=1     (any non-empty value) -> refused: OpenVINO has no CUDA build (its GPU plugin is
#              for Intel GPUs), and a CPU image must never pass for a CUDA one.
# build-inputs/ (pip.conf, an optional CA bundle and wheel directory) reaches the builder stage only.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG OPENVINO_VERSION=
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN if [ -n "${CUDA}" ]; then \
        echo "buildbench: OpenVINO has no CUDA build (its GPU plugin is for Intel GPUs)" >&2; \
        exit 1; \
    fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install "openvino${OPENVINO_VERSION:+==${OPENVINO_VERSION}}"; \
    /opt/venv/bin/python /build-inputs/check_variant.py openvino "${CUDA}"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python", "-c", "import openvino as ov; print(ov.__version__, ov.Core().available_devices)"]
