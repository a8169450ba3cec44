"""The torch network of HMCN-F (imported only inside fit / predict). See
``hmtc_bench.methods.neural.hmcn`` for which parts follow the paper and which are our choices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hmtc_bench.methods.neural.heads import TextClassifier, TextCNN


def _logit(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class HMCNNet(TextClassifier):
    """HMCN-F (Wehrmann, Cerri and Barros, ICML 2018) over a text vector x.

    * global flow: ``A_1 = ReLU(W_1 x)``, ``A_h = ReLU(W_h [A_{h-1} ; x])`` for levels
      h = 2..H (each layer fed the previous one together with the input features);
    * local output of level h: ``P_L^h = sigmoid(V_h ReLU(T_h A_h))`` over the level's labels;
    * global output: ``P_G = sigmoid(W_G A_H)`` over all labels;
    * final: ``P_F = beta * [P_L^1 ; ... ; P_L^H] + (1 - beta) * P_G``;
    * loss: binary cross-entropy of ``P_G`` plus that of each local output, plus, with
      ``violation_penalty`` lambda > 0, ``lambda * mean over texts and (parent, child) edges
      of max(0, P_F[child] - P_F[parent])^2`` (the paper's hierarchical violation penalty).

    ``classify`` returns ``logit(P_F)``, so that the shared sigmoid gives ``P_F``.
    """

    def __init__(self, encoder, level_columns, edges, kernel_sizes=(2, 3, 4),
                 n_filters: int = 100, global_size: int = 384, local_size: int = 384,
                 beta: float = 0.5, violation_penalty: float = 0.0, dropout: float = 0.1):
        super().__init__(encoder)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be between 0 and 1, got {beta}")
        self.features = TextCNN(encoder.hidden_size, kernel_sizes, n_filters)
        d = self.features.out_dim
        columns = [np.asarray(c, dtype=np.int64) for c in level_columns]
        self.depth = len(columns)
        order = np.concatenate(columns)
        self.n_labels = len(order)
        self.register_buffer("column_order", torch.from_numpy(order), persistent=False)
        self.register_buffer("inverse_order", torch.from_numpy(np.argsort(order)),
                             persistent=False)
        self.level_slices = np.cumsum([0] + [len(c) for c in columns]).tolist()
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        self.register_buffer("edge_parent", torch.from_numpy(edges[:, 0].copy()), persistent=False)
        self.register_buffer("edge_child", torch.from_numpy(edges[:, 1].copy()), persistent=False)
        self.beta = float(beta)
        self.violation_penalty = float(violation_penalty)
        self.global_layers = nn.ModuleList(
            nn.Linear(d if h == 0 else global_size + d, global_size) for h in range(self.depth))
        self.transitions = nn.ModuleList(nn.Linear(global_size, local_size)
                                         for _ in range(self.depth))
        self.local_outputs = nn.ModuleList(nn.Linear(local_size, len(c)) for c in columns)
        self.global_output = nn.Linear(global_size, self.n_labels)
        self.dropout = nn.Dropout(dropout)

    def set_prior(self, prior_logits: np.ndarray) -> None:
        prior = torch.as_tensor(prior_logits, dtype=torch.float32)
        with torch.no_grad():
            self.global_output.bias.copy_(prior)
            ordered = prior[self.column_order.cpu()]
            for h, layer in enumerate(self.local_outputs):
                layer.bias.copy_(ordered[self.level_slices[h]:self.level_slices[h + 1]])

    def outputs(self, states, mask):
        """(global logits over all labels, list of local logits per level, top first)."""
        x = self.dropout(self.features(states, mask))
        a, local = None, []
        for h in range(self.depth):
            a = self.dropout(torch.relu(self.global_layers[h](x if a is None
                                                              else torch.cat([a, x], dim=1))))
            t = self.dropout(torch.relu(self.transitions[h](a)))
            local.append(self.local_outputs[h](t))
        return self.global_output(a), local

    def _final(self, global_logits, local_logits) -> torch.Tensor:
        local = torch.cat(local_logits, dim=1)[:, self.inverse_order]
        return (self.beta * torch.sigmoid(local.float())
                + (1 - self.beta) * torch.sigmoid(global_logits.float()))

    def classify(self, states, mask) -> torch.Tensor:
        return _logit(self._final(*self.outputs(states, mask)))

    def training_loss(self, states, mask, targets) -> torch.Tensor:
        global_logits, local_logits = self.outputs(states, mask)
        bce = nn.functional.binary_cross_entropy_with_logits
        loss = bce(global_logits.float(), targets)
        ordered = targets[:, self.column_order]
        for h, logits in enumerate(local_logits):
            a, b = self.level_slices[h], self.level_slices[h + 1]
            loss = loss + bce(logits.float(), ordered[:, a:b])
        if self.violation_penalty > 0 and len(self.edge_child):
            p = self._final(global_logits, local_logits)
            excess = torch.relu(p[:, self.edge_child] - p[:, self.edge_parent])
            loss = loss + self.violation_penalty * excess.pow(2).mean()
        return loss
