"""The torch network of flat-BERT (imported only inside fit / predict)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hmtc_bench.methods.neural.encoders import EncoderStack
from hmtc_bench.methods.neural.heads import TextClassifier, masked_mean


class FlatNet(TextClassifier):
    """flat-BERT: the encoder, a pooled text vector (masked mean of the token states, or the
    [CLS] state), dropout, and one linear layer with a sigmoid per label over all labels."""

    def __init__(self, encoder: EncoderStack, n_labels: int, pooling: str = "mean",
                 dropout: float = 0.1):
        super().__init__(encoder)
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(encoder.hidden_size, n_labels)

    def set_prior(self, prior_logits: np.ndarray) -> None:
        with torch.no_grad():
            self.output.bias.copy_(torch.as_tensor(prior_logits, dtype=torch.float32))

    def classify(self, states, mask) -> torch.Tensor:
        pooled = masked_mean(states, mask) if self.pooling == "mean" else states[:, 0]
        return self.output(self.dropout(pooled))
