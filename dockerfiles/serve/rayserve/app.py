"""Ray Serve serving the run's model in its ONNX form (ONNX Runtime): one replica;
POST /predict {"inputs": {NAME: {"dtype", "shape", "data": base64}}}, answered
{"outputs": {...}}; GET /health answers through the replica once it is up. Ray's cluster is
started here, on loopback only, without its dashboard; its session files on /tmp."""

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
        self.outputs = [t["name"] for t in bbserve.meta()["outputs"]]

    async def __call__(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"status": "ok"})
        given = (await request.json())["inputs"]
        found = self.session.run(self.outputs, bbserve.from_base64(given))
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
    serve.run(Model.bind(), route_prefix="/")
    threading.Event().wait()
