# ONNX Runtime service: FastAPI + uvicorn serving model.py's network as an ONNX export.
#   CUDA=      (empty, the default) -> onnxruntime (CPU)
#   CUDA=1     (any non-empty value) -> onnxruntime-gpu with the CUDA and cuDNN libraries it loads
# Built with `build_inputs = true`: build-inputs/ (pip.conf, CA bundle, wheels) reaches the
# builder stages only. The export stage's torch and onnx never reach the final image.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS export
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
COPY model.py /src/
SHELL ["/bin/sh", "-eux", "-c"]
# A CPU torch is enough to export: a CPU wheel from build-inputs/wheels (buildbench gives CPU
# wheels to CPU cells only), else the CPU index, else PyPI's torch (its CUDA build: large, but
# it stays in this stage).
RUN python3 -m venv /opt/export; \
    set -- /build-inputs/wheels/torch-*+cpu-*.whl; \
    if [ -f "$1" ]; then \
        /opt/export/bin/pip install "$1"; \
    else \
        /opt/export/bin/pip install --index-url "${TORCH_CPU_INDEX_URL}" torch \
            || /opt/export/bin/pip install torch; \
    fi; \
    /opt/export/bin/pip install onnx; \
    mkdir /out; \
    /opt/export/bin/python /src/model.py onnx /out/model.onnx

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    if [ -n "${CUDA}" ]; then \
        /opt/venv/bin/pip install "onnxruntime-gpu[cuda,cudnn]" fastapi uvicorn; \
    else \
        /opt/venv/bin/pip install onnxruntime fastapi uvicorn; \
    fi; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY --from=export /out/model.onnx /app/model.onnx
COPY app.py /app/
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BACKEND=onnx
USER 10001:10001
WORKDIR /app
EXPOSE 8000
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
