#!/bin/sh
# TorchServe as buildbench starts it. With $BUILDBENCH_MAX_BATCH set, its batching is on: the
# model's batchSize and maxBatchDelay (whole ms) in the `models` property of a copy of the
# config on /tmp (the root is read-only), which the frontend applies as it loads the model.
set -eu
config=/opt/serve/config.properties
if [ -n "${BUILDBENCH_MAX_BATCH:-}" ]; then
    delay=$(printf '%.0f' "${BUILDBENCH_MAX_DELAY_MS:-0}")
    model='"defaultVersion": true, "marName": "model", "minWorkers": 1, "maxWorkers": 1'
    batching=$(printf '"batchSize": %d, "maxBatchDelay": %d' "${BUILDBENCH_MAX_BATCH}" "${delay}")
    { cat "${config}"; echo "models={\"model\": {\"1.0\": {${model}, ${batching}}}}"; } \
        > /tmp/config.properties
    config=/tmp/config.properties
fi
exec torchserve --start --foreground --ncs --disable-token-auth --ts-config "${config}" \
    --model-store /opt/serve/model-store --models model=model
