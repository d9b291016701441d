"""BentoML serving the run's model in its ONNX form (ONNX Runtime): one worker;
POST /predict {"inputs": {NAME: {"dtype", "shape", "data": base64}}}, answered
{"outputs": {...}} alike (BentoML reads the body's fields as the API's arguments)."""

from typing import Any

import bbserve
import bentoml


@bentoml.service(workers=1)
class Model:
    def __init__(self) -> None:
        self.session = bbserve.onnx_session()
        self.outputs = [t["name"] for t in bbserve.meta()["outputs"]]

    @bentoml.api
    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        found = self.session.run(self.outputs, bbserve.from_base64(inputs))
        return bbserve.to_base64(self.outputs, found)
