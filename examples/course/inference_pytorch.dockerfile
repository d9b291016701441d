# A stand-in for the DTU MLOps course's inference_pytorch.dockerfile, with the same shape: a
# python:3.11-slim base, compilers from apt, pip installing system-wide, and `ARG CUDA` choosing
# between the CPU and the CUDA 12.1 wheels of the PyTorch wheel index. Where that index is
# unreachable, buildbench records both cells as failed builds with pip's error as the reason.
# Its flaws are the course's, kept on purpose (unpinned packages, compilers in the final image).
FROM python:3.11-slim

# hadolint ignore=DL3008,DL3027
RUN apt update && \
    apt install --no-install-recommends -y build-essential gcc && \
    apt clean && rm -rf /var/lib/apt/lists/*

ARG CUDA
ENV CUDA=${CUDA}

# hadolint ignore=DL3013
RUN echo "CUDA build-arg: '${CUDA}'" && \
    wheels=cpu && if [ -n "$CUDA" ]; then wheels=cu121; fi && \
    pip install --no-cache-dir torch --index-url "https://download.pytorch.org/whl/${wheels}"
