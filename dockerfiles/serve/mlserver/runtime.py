"""MLServer's custom runtime serving the run's model in its ONNX form with ONNX Runtime. With
$BUILDBENCH_MAX_BATCH set, MLServer's adaptive batching is on: it merges queued requests along
the batch axis into one `predict` and splits the answer back."""

import bbserve
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    def __init__(self, settings: ModelSettings) -> None:
        # Set before MLServer wraps `predict` in its batcher (it reads model-settings.json
        # without its MLSERVER_MODEL_* environment): the largest batch, the longest wait in s.
        setting = bbserve.batching()
        if setting is not None:
            settings.max_batch_size, delay_ms = setting
            settings.max_batch_time = delay_ms / 1000
        super().__init__(settings)

    async def load(self) -> bool:
        self.session = bbserve.onnx_session()
        # not self.outputs: MLModel's own, the outputs its settings declare
        self.names = [t["name"] for t in bbserve.meta()["outputs"]]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {given.name: NumpyCodec.decode_input(given) for given in payload.inputs}
        found = self.session.run(self.names, feeds)
        outputs = []
        for name, value in zip(self.names, found, strict=True):
            tensor = NumpyCodec.encode_output(name, value)
            tensor.shape = list(value.shape)  # the codec makes a vector [N] a column [N, 1]
            outputs.append(tensor)
        return InferenceResponse(model_name=self.name, outputs=outputs)
