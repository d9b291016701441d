"""MLServer's custom runtime serving the run's model in its ONNX form with ONNX Runtime."""

import bbserve
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        self.session = bbserve.onnx_session()
        # not self.outputs: MLModel's own, the outputs its settings declare
        self.names = [t["name"] for t in bbserve.meta()["outputs"]]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {given.name: NumpyCodec.decode_input(given) for given in payload.inputs}
        found = self.session.run(self.names, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(n, v) for n, v in zip(self.names, found, strict=True)
            ],
        )
