ARG BASE_IMAGE=buildbench/python:3.11-bookworm
FROM ${BASE_IMAGE} AS builder
ARG CUDA=
RUN echo "cuda=${CUDA}" > /variant && sleep 1
RUN python3 -c "print('built', 6 * 7)" > /answer

FROM ${BASE_IMAGE} AS docs
RUN sleep 1 && echo "read me" > /README

FROM ${BASE_IMAGE}
COPY --from=builder /variant /answer /opt/
COPY --from=docs /README /opt/README
RUN cat /opt/variant /opt/answer /opt/README
