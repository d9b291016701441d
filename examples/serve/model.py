"""The model both example services serve: a small ResNet-style image classifier in plain torch
(3 stages of residual blocks, 32-64-128 channels, 10 classes; 0.31 M parameters), with
random weights from a fixed seed. Built inside each image's builder stage, never downloaded:

    python model.py torch weights.pt   # the PyTorch service loads this state dict
    python model.py onnx model.onnx    # the ONNX Runtime service loads this export

Same seed and same torch: the same weights in both images.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

SEED = 0
INPUT_SHAPE = (3, 64, 64)  # channels, height, width: the request's image, uint8
CLASSES = 10


class Block(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.skip = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.skip = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)
        )
        self.stages = nn.Sequential(Block(32, 32, 1), Block(32, 64, 2), Block(64, 128, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build() -> SmallNet:
    torch.manual_seed(SEED)
    return SmallNet().eval()


def main(kind: str, path: str) -> None:
    model = build()
    if kind == "torch":
        torch.save(model.state_dict(), path)
        return
    example = torch.zeros(1, *INPUT_SHAPE)
    torch.onnx.export(
        model,
        (example,),
        path,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,  # the TorchScript exporter: needs `onnx`, not onnxscript
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
