# A stand-in for the DTU MLOps course's inference_onnx.dockerfile, with the same shape and the
# same flaw: it reads $CUDA but never declares `ARG CUDA`, so $CUDA is always empty and
# `--build-arg CUDA=true` is silently ignored: its "cuda" image is a CPU image. buildbench flags
# the unconsumed build-arg on both cells. pip's cache is kept, as in the course's file.
FROM python:3.11-slim

# hadolint ignore=DL3008,DL3027
RUN apt update && \
    apt install --no-install-recommends -y build-essential gcc && \
    apt clean && rm -rf /var/lib/apt/lists/*

# hadolint ignore=DL3013,DL3042
RUN echo "CUDA: '${CUDA}'" && \
    if [ -n "$CUDA" ]; then pip install onnxruntime-gpu; else pip install onnxruntime; fi
