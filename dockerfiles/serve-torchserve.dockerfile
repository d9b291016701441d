# TorchServe serving the run's model in its torch form (serve/torchserve/handler.py).
#   CUDA=      (empty, the default) -> CPU-only torch, no nvidia-* packages
#   CUDA=1     (any non-empty value) -> the CUDA build of torch from PyPI, CUDA libraries included
# TorchServe's frontend is Java: Debian's openjdk-17-jre-headless. torch-model-archiver packs the
# handler in the builder stage only (an unpacked archive: nothing to unpack at start-up).
# The model is not in the image: buildbench mounts it read-only at /buildbench and names it in
# BUILDBENCH_MODEL, its inputs and outputs in BUILDBENCH_MODEL_META (serve/common/bbserve.py).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG TORCH_VERSION=
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCHSERVE_VERSION=0.12.0
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
COPY serve/common/bbserve.py serve/torchserve/handler.py /build/
SHELL ["/bin/sh", "-eux", "-c"]
# torch first, as pytorch.dockerfile installs it (a CPU variant from the CPU index or a local
# wheel), then TorchServe beside it, with what its worker imports and it does not require
# (pyyaml) and what the handler needs (numpy).
RUN python3 -m venv /opt/venv /opt/archiver; \
    spec="torch${TORCH_VERSION:+==${TORCH_VERSION}}"; \
    if [ -z "${CUDA}" ] && [ -n "${TORCH_CPU_INDEX_URL}" ]; then \
        /opt/venv/bin/pip install --index-url "${TORCH_CPU_INDEX_URL}" "${spec}"; \
    else \
        /opt/venv/bin/pip install "${spec}"; \
    fi; \
    /opt/venv/bin/pip install "${spec}" "torchserve==${TORCHSERVE_VERSION}" pyyaml numpy; \
    /opt/venv/bin/python /build-inputs/check_variant.py torch "${CUDA}"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/archiver/bin/pip install "torch-model-archiver==${TORCHSERVE_VERSION}"; \
    mkdir -p /opt/serve/model-store; \
    /opt/archiver/bin/torch-model-archiver --model-name model --version 1.0 \
        --handler /build/handler.py --extra-files /build/bbserve.py \
        --archive-format no-archive --export-path /opt/serve/model-store

FROM ${BASE_IMAGE}
SHELL ["/bin/sh", "-eux", "-c"]
# Debian's security updates replace the JRE's version: a pin would break the build, not fix it.
# The JRE's post-install links its man pages: a base without /usr/share/man/man1 fails it.
# hadolint ignore=DL3008
RUN apt-get update; \
    mkdir -p /usr/share/man/man1; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        openjdk-17-jre-headless; \
    rm -rf /var/lib/apt/lists/*
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/serve/model-store /opt/serve/model-store
COPY serve/torchserve/config.properties serve/torchserve/start.sh /opt/serve/
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# /tmp (a tmpfs when locked down) takes TorchServe's logs, pid file and worker sockets.
WORKDIR /tmp
EXPOSE 8080
# The service with its config; with $BUILDBENCH_MAX_BATCH, its batching on (start.sh).
CMD ["/bin/sh", "/opt/serve/start.sh"]
