# PyTorch inference image.
#   CUDA=      (empty, the default) -> CPU-only torch, no nvidia-* packages
#   CUDA=1     (any non-empty value) -> the CUDA build of torch from PyPI, CUDA libraries included
# build-inputs/ (pip.conf, an optional CA bundle and wheel directory) reaches the builder stage only.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG TORCH_VERSION=
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    spec="torch${TORCH_VERSION:+==${TORCH_VERSION}}"; \
    if [ -z "${CUDA}" ] && [ -n "${TORCH_CPU_INDEX_URL}" ]; then \
        /opt/venv/bin/pip install --index-url "${TORCH_CPU_INDEX_URL}" "${spec}"; \
    else \
        /opt/venv/bin/pip install "${spec}"; \
    fi; \
    /opt/venv/bin/python /build-inputs/check_variant.py torch "${CUDA}"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python", "-c", "import torch; print(torch.__version__, torch.version.cuda)"]
