"""A minimal classifier for token sequences: embedding, mean pooling, one linear layer.

    x (B, T) token ids (float or int; id 0 is padding)
      embedding      (B, T, E)      <- attributions per token go through this layer
      mean pool      (B, E)         over the non-padding tokens <- the latent: input of `classifier`
      classifier     (B, num_classes)

It takes ids as float32 (the way samplescope encodes every input) and rounds them
to integers itself, so ``model(x)`` on the encoded input is the whole story.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class TokenConfig:
    vocab_size: int
    num_classes: int = 2
    embed_dim: int = 32


class TokenClassifier(nn.Module):
    latent_layer: str = "classifier"
    embedding_layer: str = "embedding"
    gradcam_layer: str | None = None

    def __init__(self, config: TokenConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else TokenConfig(**kwargs)
        if config.vocab_size < 2 or config.num_classes < 1 or config.embed_dim < 1:
            raise ValueError(
                f"TokenConfig needs vocab_size >= 2, num_classes >= 1 and embed_dim >= 1, got {config}"
            )
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.classifier = nn.Linear(config.embed_dim, config.num_classes)

    @property
    def latent_dim(self) -> int:
        return self.classifier.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.round().long() if x.is_floating_point() else x.long()  # (B, T)
        emb = self.embedding(ids)  # (B, T, E)
        mask = (ids != 0).unsqueeze(-1).to(emb.dtype)  # (B, T, 1)
        pooled = (emb * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, E)
        return self.classifier(pooled)
