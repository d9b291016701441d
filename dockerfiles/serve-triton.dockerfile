# NVIDIA Triton Inference Server (the tritonserver binary PyPI's nvidia-pytriton carries, with its
# Python backend) serving the run's model in its ONNX form through ONNX Runtime
# (serve/triton/model/1/model.py).
#   CUDA=      (empty, the default) -> onnxruntime (CPU)
#   CUDA=1     (any non-empty value) -> onnxruntime-gpu with the CUDA and cuDNN libraries it loads
# The backend's stub embeds Debian's libpython3.11, the same release as the python3 whose standard
# library it loads (a stub and a stdlib of two patch releases fail to load a model).
# Only the server is installed from the wheel (--no-deps): PyTriton's own Python client stays out.
# The model is not in the image: buildbench mounts it read-only at /buildbench and names it in
# BUILDBENCH_MODEL, its inputs and outputs in BUILDBENCH_MODEL_META (serve/common/bbserve.py).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG CUDA=
ARG ONNXRUNTIME_VERSION=
ARG PYTRITON_VERSION=0.7.0
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
SHELL ["/bin/sh", "-eux", "-c"]
RUN python3 -m venv /opt/venv; \
    version="${ONNXRUNTIME_VERSION:+==${ONNXRUNTIME_VERSION}}"; \
    if [ -n "${CUDA}" ]; then ort="onnxruntime-gpu[cuda,cudnn]${version}"; \
    else ort="onnxruntime${version}"; fi; \
    /opt/venv/bin/pip install "${ort}" "numpy<2"; \
    /opt/venv/bin/python /build-inputs/check_variant.py onnxruntime "${CUDA}"; \
    /opt/venv/bin/pip install --no-deps "nvidia-pytriton==${PYTRITON_VERSION}"; \
    server=/opt/venv/lib/python3.11/site-packages/pytriton/tritonserver; \
    cp "${server}/python_backend_stubs/3.11/triton_python_backend_stub" "${server}/backends/python/"; \
    rm -rf "${server}/python_backend_stubs"; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
SHELL ["/bin/sh", "-eux", "-c"]
# hadolint ignore=DL3008
RUN apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpython3.11; \
    rm -rf /var/lib/apt/lists/*
COPY --from=builder /opt/venv /opt/venv
COPY serve/triton/model/ /opt/serve/models/model/
COPY serve/common/bbserve.py /opt/serve/lib/
RUN ln -s /opt/venv/lib/python3.11/site-packages/pytriton/tritonserver /opt/tritonserver; \
    useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
# The stub's Python finds onnxruntime and bbserve through model.py's sys.path (it ignores
# PYTHONPATH).
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
CMD ["/opt/tritonserver/bin/tritonserver", "--model-repository=/opt/serve/models", \
     "--backend-directory=/opt/tritonserver/backends", "--http-address=127.0.0.1", \
     "--http-port=8000", "--allow-grpc=false", "--allow-metrics=false", \
     "--allow-gpu-metrics=false", "--allow-cpu-metrics=false", "--log-verbose=0"]
