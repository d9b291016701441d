"""Model factories for `buildbench run --model examples.models.factories:NAME`.

Each returns `(torch.nn.Module, example_inputs)`: real architectures from `transformers`
configs with random weights (nothing is downloaded), small enough for a laptop's CPU.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel, ResNetConfig, ResNetModel


def bert() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A small BERT: int64 `input_ids` and `attention_mask` (batch x 32 tokens) in, two
    outputs (`last_hidden_state`, `pooler_output`)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    ids = torch.randint(0, config.vocab_size, (2, 32))
    return BertModel(config).eval(), (ids, torch.ones_like(ids))


def resnet() -> tuple[torch.nn.Module, tuple[torch.Tensor]]:
    """A small ResNet (two stages) on 3x64x64 images: outputs its last feature map and the
    pooled features."""
    torch.manual_seed(0)
    config = ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"
    )
    return ResNetModel(config).eval(), (torch.randn(2, 3, 64, 64),)
