"""Ray Serve serving the run's model in its ONNX form (ONNX Runtime): one replica;
POST /predict {"inputs": {NAME: {"dtype", "shape", "data": base64}}}, answered
{"outputs": {...}}; GET /health answers through the replica once it is up. Ray's cluster is
started here, on loopback only, without its dashboard; its session files on /tmp. With
$BUILDBENCH_MAX_BATCH set, `@serve.batch` queues requests together and runs each queue as
one batch."""

import os
import threading

import bbserve
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Model:
    def __init__(self) -> None:
        self.session = bbserve.onnx_session()
        self.inputs = [t["name"] for t in bbserve.meta()["inputs"]]
        self.outputs = [t["name"] for t in bbserve.meta()["outputs"]]
        self.setting = bbserve.batching()
        if self.setting is not None:
            size, delay_ms = self.setting
            self.batched.set_max_batch_size(size)
            self.batched.set_batch_wait_timeout_s(delay_ms / 1000)

    def infer(self, arrays: list) -> list:
        return self.session.run(self.outputs, dict(zip(self.inputs, arrays, strict=True)))

    @serve.batch
    async def batched(self, requests: list[list]) -> list[list]:
        return bbserve.run_batch(self.infer, requests)

    async def __call__(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"status": "ok"})
        given = bbserve.from_base64((await request.json())["inputs"])
        arrays = [given[name] for name in self.inputs]
        found = self.infer(arrays) if self.setting is None else await self.batched(arrays)
        return JSONResponse(bbserve.to_base64(self.outputs, found))


if __name__ == "__main__":
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=os.cpu_count(),
        # Ray's floor (75 MB); more than the engine's 64 MB /dev/shm, so it lies on /tmp.
        object_store_memory=80 * 1024**2,
        configure_logging=False,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    setting = bbserve.batching()
    # A batch fills only from requests the replica holds at once (5 by default): room for two.
    model = Model.options(max_ongoing_requests=2 * setting[0]) if setting else Model
    serve.run(model.bind(), route_prefix="/")
    threading.Event().wait()
