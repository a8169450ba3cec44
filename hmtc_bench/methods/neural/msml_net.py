"""The torch network of MSML-BERT and its ablations (imported only inside fit / predict).

See ``hmtc_bench.methods.neural.msml`` for which parts follow the paper and which are our
choices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hmtc_bench.methods.neural.encoders import EncoderStack
from hmtc_bench.methods.neural.heads import TextClassifier, TextCNN, prior_logits
from hmtc_bench.methods.neural.msml import LABEL_WEIGHTING, PROPAGATE

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": nn.functional.gelu}


def kernel_schedule(depth: int, n_widths: int = 3) -> list[tuple[int, ...]]:
    """Default kernel widths per level: level l of a depth-D hierarchy gets the widths
    ``D - l + 1, ..., D - l + n_widths``: wider for upper levels, and (1, 2, 3) for the
    deepest. Depth 3: (3, 4, 5), (2, 3, 4), (1, 2, 3)."""
    return [tuple(range(depth - level + 1, depth - level + 1 + n_widths))
            for level in range(1, depth + 1)]


class MSMLNet(TextClassifier):
    """MSML-BERT: a shared encoder, one task per level.

    For level l (1 = top), with token states S from the shared encoder:

    * MSFEM: ``f_l = TextCNN_l(S)`` with level-specific kernel widths (one shared TextCNN
      for every level when ``msfem`` is False);
    * MLIPM + HGM: ``h_l = GELU(W_l [f_l ; g_l * u_{l-1}] + b_l)`` with the gate
      ``g_l = sigmoid(G_l [f_l ; u_{l-1}] + c_l)`` (a vector, one value per unit of
      u_{l-1}); without the gate ``h_l = GELU(W_l [f_l ; u_{l-1}] + b_l)``; without MLIPM
      ``h_l = GELU(W_l f_l + b_l)``; level 1 has no upper level. What flows down (and what
      the gate sees), ``u_{l-1}``, is ``propagate``: the upper level's representation
      ``h_{l-1}`` ("hidden"), its label probabilities ``sigmoid(z_{l-1})`` ("probs"), or
      both concatenated ("both"). (GELU, not ReLU: under
      2,000 rare leaf labels, whose outputs are negative for almost every text, 99 % of a
      ReLU leaf layer died within three epochs on ICD-10-CM and the leaves were never
      learned.)
    * logits ``z_l = V_l dropout(h_l) + a_l`` over the level's labels.

    Parameters
    ----------
    encoder : EncoderStack
    level_columns : list of int arrays, the label columns of each level (top first)
    kernel_sizes : list (one entry per level) of kernel widths
    n_filters, hidden_size, dropout : sizes of the heads, dropout on features and h_l
    msfem, mlipm, gate : switches of the three modules (the paper's model: all True)
    level_weights : weight of each level's loss (binary cross-entropy averaged over the
        level's labels and the batch); the total loss is the weighted sum
    propagate : "hidden", "probs" or "both": what level l-1 passes to level l (above)
    bias_prior : output biases start at the labels' training log-odds (else as torch
        initialises them)
    label_weighting : "none"; "balanced": each label's positive terms weighted by
        ``sqrt((n - n_j + 1) / (n_j + 1))`` from its training count n_j of n texts (clipped
        to [1, 100]), so rare labels' positives count more; "focal": the focal loss of Lin
        et al. (2017), each term times ``(1 - p_t) ** 2``, down-weighting the many easy
        negatives of the long tail
    shared_level : the level whose kernel widths the shared extractor uses without MSFEM
    activation : "gelu" (default), "tanh" or "relu", of the level representations h_l
    """

    def __init__(self, encoder: EncoderStack, level_columns, kernel_sizes, n_filters: int = 128,
                 hidden_size: int = 256, dropout: float = 0.1, msfem: bool = True,
                 mlipm: bool = True, gate: bool = True, level_weights=None,
                 shared_level: int | None = None, activation: str = "gelu",
                 propagate: str = "hidden", bias_prior: bool = True,
                 label_weighting: str = "none"):
        super().__init__(encoder)
        depth = len(level_columns)
        if len(kernel_sizes) != depth:
            raise ValueError(f"kernel_sizes has {len(kernel_sizes)} entries for a hierarchy "
                             f"of depth {depth}; give one list of widths per level")
        level_weights = ([1.0] * depth if level_weights is None
                         else [float(w) for w in level_weights])
        if len(level_weights) != depth:
            raise ValueError(f"level_weights has {len(level_weights)} entries for a hierarchy "
                             f"of depth {depth}")
        self.depth = depth
        self.msfem, self.mlipm, self.gate = bool(msfem), bool(mlipm), bool(gate)
        if propagate not in PROPAGATE:
            raise ValueError(f"propagate must be one of {', '.join(PROPAGATE)}, "
                             f"got {propagate!r}")
        if label_weighting not in LABEL_WEIGHTING:
            raise ValueError(f"label_weighting must be one of {', '.join(LABEL_WEIGHTING)}, "
                             f"got {label_weighting!r}")
        self.propagate, self.bias_prior = propagate, bool(bias_prior)
        self.label_weighting = label_weighting
        columns = [np.asarray(c, dtype=np.int64) for c in level_columns]
        order = np.concatenate(columns)
        self.register_buffer("column_order", torch.from_numpy(order), persistent=False)
        self.register_buffer("inverse_order", torch.from_numpy(np.argsort(order)),
                             persistent=False)
        self.level_slices = np.cumsum([0] + [len(c) for c in columns]).tolist()
        self.register_buffer("level_weights", torch.tensor(level_weights), persistent=False)
        d = encoder.hidden_size
        if self.msfem:
            self.extractors = nn.ModuleList(TextCNN(d, ks, n_filters) for ks in kernel_sizes)
        else:
            shared = kernel_sizes[(shared_level or (depth + 1) // 2) - 1]
            self.extractors = nn.ModuleList([TextCNN(d, shared, n_filters)])
        feat = [self._extractor(level).out_dim for level in range(depth)]
        # the width of what level l-1 passes down (0 for level 1 and without MLIPM)
        sizes = [len(c) for c in columns]
        upper = [0] + [(hidden_size if propagate in ("hidden", "both") else 0)
                       + (sizes[level - 1] if propagate in ("probs", "both") else 0)
                       for level in range(1, depth)]
        upper = [u if self.mlipm else 0 for u in upper]
        self.hidden = nn.ModuleList(nn.Linear(feat[level] + upper[level], hidden_size)
                                    for level in range(depth))
        self.gates = nn.ModuleList(
            nn.Linear(feat[level] + upper[level], upper[level]) if upper[level] and self.gate
            else nn.Identity() for level in range(depth))
        self.register_buffer("pos_weight", torch.ones(len(order)), persistent=False)
        self.outputs = nn.ModuleList(nn.Linear(hidden_size, len(c)) for c in columns)
        self.dropout = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]

    def _extractor(self, level: int) -> TextCNN:
        return self.extractors[level if self.msfem else 0]

    def init_from_labels(self, Y) -> None:
        """Output biases at the training log-odds (``bias_prior``); with
        ``label_weighting="balanced"`` each label's positive weight from its training count."""
        if self.bias_prior:
            self.set_prior(prior_logits(Y))
        if self.label_weighting == "balanced":
            n = Y.shape[0]
            counts = np.asarray(Y.sum(axis=0), dtype=np.float64).ravel()
            weight = np.clip(np.sqrt((n - counts + 1) / (counts + 1)), 1.0, 100.0)
            self.pos_weight.copy_(torch.as_tensor(weight, dtype=torch.float32)
                                  [self.column_order.cpu()])

    def set_prior(self, prior_logits: np.ndarray) -> None:
        """Initialise each output bias to the label's training log-odds (our choice)."""
        prior = torch.as_tensor(prior_logits, dtype=torch.float32)[self.column_order.cpu()]
        with torch.no_grad():
            for level, layer in enumerate(self.outputs):
                a, b = self.level_slices[level], self.level_slices[level + 1]
                layer.bias.copy_(prior[a:b])

    def level_logits(self, states, mask, return_gates: bool = False):
        """Logits of each level (list, top first); with ``return_gates`` also the gates."""
        shared = None if self.msfem else self.extractors[0](states, mask)
        upper, logits, gates = None, [], []
        for level in range(self.depth):
            f = shared if shared is not None else self.extractors[level](states, mask)
            f = self.dropout(f)
            if upper is not None and self.mlipm:
                upper = self._passed_down(upper, logits[-1])
                if self.gate:
                    g = torch.sigmoid(self.gates[level](torch.cat([f, upper], dim=1)))
                    gates.append(g)
                    upper = g * upper
                z = torch.cat([f, upper], dim=1)
            else:
                z = f
            h = self.activation(self.hidden[level](z))
            logits.append(self.outputs[level](self.dropout(h)))
            upper = h
        return (logits, gates) if return_gates else logits

    def _passed_down(self, hidden, logits) -> torch.Tensor:
        """What the upper level passes to the next (``propagate``)."""
        if self.propagate == "hidden":
            return hidden
        probs = torch.sigmoid(logits)
        return probs if self.propagate == "probs" else torch.cat([hidden, probs], dim=1)

    def classify(self, states, mask) -> torch.Tensor:
        return torch.cat(self.level_logits(states, mask), dim=1)[:, self.inverse_order]

    def loss(self, logits, targets) -> torch.Tensor:
        logits = logits[:, self.column_order].float()
        targets = targets[:, self.column_order]
        total = logits.new_zeros(())
        for level in range(self.depth):
            a, b = self.level_slices[level], self.level_slices[level + 1]
            total = total + self.level_weights[level] * self._level_loss(
                logits[:, a:b], targets[:, a:b], self.pos_weight[a:b])
        return total

    def _level_loss(self, logits, targets, pos_weight) -> torch.Tensor:
        """One level's loss, averaged over its labels and the batch (``label_weighting``)."""
        bce = nn.functional.binary_cross_entropy_with_logits
        if self.label_weighting == "none":
            return bce(logits, targets)
        if self.label_weighting == "balanced":
            return bce(logits, targets, pos_weight=pos_weight)
        p = torch.sigmoid(logits)
        focus = (1 - torch.where(targets > 0.5, p, 1 - p)) ** 2
        return (bce(logits, targets, reduction="none") * focus).mean()
