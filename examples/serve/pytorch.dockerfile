# PyTorch service: FastAPI + uvicorn serving model.py's network with torch.
#   CUDA=      (empty, the default) -> a CPU torch (a CPU wheel from build-inputs/wheels, else
#              the PyTorch CPU index), no nvidia-* packages
#   CUDA=1     (any non-empty value) -> the CUDA build of torch from PyPI, CUDA libraries included
# Built with `build_inputs = true`: build-inputs/ (pip.conf, CA bundle, wheels) reaches the
# builder stage only; the weights are made there from model.py's seed.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
COPY model.py /app/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    set -- /build-inputs/wheels/torch-*+cpu-*.whl; \
    if [ -n "${CUDA}" ]; then \
        /opt/venv/bin/pip install torch; \
    elif [ -f "$1" ]; then \
        /opt/venv/bin/pip install "$1"; \
    else \
        /opt/venv/bin/pip install --index-url "${TORCH_CPU_INDEX_URL}" torch; \
    fi; \
    /opt/venv/bin/pip install fastapi uvicorn; \
    /opt/venv/bin/python /app/model.py torch /app/weights.pt; \
    find /opt/venv /app -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/ /app/
COPY app.py /app/
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BACKEND=torch
USER 10001:10001
WORKDIR /app
EXPOSE 8000
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
