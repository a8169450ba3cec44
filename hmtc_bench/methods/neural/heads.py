"""Building blocks of the networks' heads, and their base class.

* ``TextClassifier``: the base of every network the ``Trainer`` trains: an encoder stack
  (``encoders.encoder_stack``) and heads; ``classify(states, mask)`` gives logits in the
  hierarchy's label order; output biases start at the labels' training log-odds
  (``prior_logits``).
* ``TextCNN`` (Kim's, over token states) and ``masked_mean``: text vectors from token
  states that do not depend on the padding of the batch.
* ``TEXT_KERNELS`` / ``text_kernels``: the HiAGM paper's text CNN widths (2, 3, 4), read by
  the global baselines; ``label_edges``: the (parent, child) label columns of a hierarchy,
  for hierarchy-aware heads.

The global baselines (``hmcn``, ``hiagm``) share their text vector, the HiAGM paper's: a
TextCNN (widths 2, 3, 4; 100 filters each; max-pooled) over the encoder's token states. With
``encoder="textrcnn"`` (word embeddings, 300-d, and a bidirectional GRU, 64 units per
direction, trained from scratch at ``lr_head``) that is the TextRCNN of the HiAGM paper,
without its pretrained GloVe vectors (not available offline); with a BERT encoder
(``"default"``: MiniLM-L6, top 2 layers trained over the cached bottom 4, as msml) the
TextCNN reads BERT's token states.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench.methods.neural.encoders import EncoderStack

TEXT_KERNELS = (2, 3, 4)     # the HiAGM paper's text CNN


def text_kernels(kernel_sizes) -> tuple[int, ...]:
    """The TextCNN widths of a ``kernel_sizes`` parameter (None: ``TEXT_KERNELS``)."""
    return TEXT_KERNELS if kernel_sizes is None else tuple(int(k) for k in kernel_sizes)


def label_edges(hierarchy) -> np.ndarray:
    """(parent, child) label-column pairs, the root left out, sorted by parent then child;
    shape (E, 2), also when there is no edge."""
    pm = hierarchy.parent_matrix.tocoo()
    edges = np.column_stack([pm.row, pm.col]).astype(np.int64)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


class TextCNN(nn.Module):
    """Kim's TextCNN over token states: one 1-d convolution per kernel width (``n_filters``
    each, 'same' padding), ReLU, max-pool over the text's own tokens. Padding positions are
    zeroed before the convolution and excluded from the pool, so a text's features do not
    depend on the batch it is in."""

    def __init__(self, in_dim: int, kernel_sizes, n_filters: int):
        super().__init__()
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not self.kernel_sizes or min(self.kernel_sizes) < 1:
            raise ValueError(f"kernel sizes must be positive integers, got {kernel_sizes}")
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, n_filters, k) for k in self.kernel_sizes)
        self.out_dim = n_filters * len(self.kernel_sizes)

    def forward(self, states, mask) -> torch.Tensor:
        keep = mask.to(states.dtype)
        x = (states * keep.unsqueeze(-1)).transpose(1, 2)  # (B, d, T)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            y = torch.relu(conv(nn.functional.pad(x, ((k - 1) // 2, k // 2))))
            pooled.append((y * keep.unsqueeze(1)).amax(dim=2))  # ReLU >= 0: zeros never win
        return torch.cat(pooled, dim=1)


def masked_mean(states, mask) -> torch.Tensor:
    keep = mask.to(states.dtype).unsqueeze(-1)
    return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def prior_logits(Y: sp.csr_matrix, smoothing: float = 1.0) -> np.ndarray:
    """log-odds of each label's (smoothed) training frequency: the initial output bias, so
    that training starts from the label priors instead of p = 0.5 for 2,000 rare labels."""
    n = Y.shape[0]
    freq = (np.asarray(Y.sum(axis=0)).ravel() + smoothing) / (n + 2 * smoothing)
    return np.log(freq / (1 - freq)).astype(np.float32)


class TextClassifier(nn.Module):
    """Base of the networks trained by ``Trainer``: an ``EncoderStack`` and heads.

    Subclasses implement ``classify(states, mask) -> logits (B, L)`` in the hierarchy's
    label order; ``loss`` defaults to the binary cross-entropy averaged over labels.
    """

    def __init__(self, encoder: EncoderStack):
        super().__init__()
        self.encoder = encoder

    def classify(self, states, mask) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits, targets) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)

    def training_loss(self, states, mask, targets) -> torch.Tensor:
        """The loss minimised in training (networks whose loss needs more than the final
        logits override this)."""
        return self.loss(self.classify(states, mask), targets)

    def set_prior(self, prior_logits: np.ndarray) -> None:
        """Initialise output biases from the labels' training log-odds (optional)."""

    def init_from_labels(self, Y: sp.csr_matrix) -> None:
        """Called once before training with the training labels: output biases at the
        labels' log-odds; networks that need label statistics (HiAGM's priors) extend it."""
        self.set_prior(prior_logits(Y))

    def forward(self, ids, mask) -> torch.Tensor:
        return self.classify(self.encoder(ids, mask), mask)
