"""The torch networks of the global hierarchy-aware baselines HMCN-F and HiAGM-TP (imported
only inside fit / predict). See ``hmtc_bench.methods.global_methods`` for which parts follow
the papers and which are our choices.

Both read a text vector from the encoder's token states with the HiAGM paper's text
feature extractor: a TextCNN (kernel widths 2, 3, 4; 100 filters each; max-pooled), which
over the ``textrcnn`` word encoder (embeddings + bidirectional GRU) makes HiAGM's TextRCNN.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench.methods.neural import TextClassifier, TextCNN, prior_logits


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


class HierarchyGCN(nn.Module):
    """HiAGM's hierarchy-aware structure encoder (one layer): node k receives the gated
    messages of its parents (top-down, weighted by the prior P(k | parent)), of its children
    (bottom-up, weight 1) and of itself::

        u_kj = a_kj v_j + b_k^dir,   g_kj = sigmoid(w_dir . v_j + c_k^dir),
        h_k  = ReLU(dropout(sum_j g_kj * u_kj))

    with one bias vector b and one gate bias c per node and direction, and one gate vector
    w per direction. Messages are gathered along edge lists, so the cost is linear in the
    number of edges (2,000-label hierarchies stay cheap).
    """

    def __init__(self, n_nodes: int, edges, dim: int, dropout: float = 0.1):
        super().__init__()
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        self.n_nodes = int(n_nodes)
        self.register_buffer("parent", torch.from_numpy(edges[:, 0].copy()), persistent=False)
        self.register_buffer("child", torch.from_numpy(edges[:, 1].copy()), persistent=False)
        # top-down weights P(child | parent): set from the training labels, kept in checkpoints
        self.register_buffer("top_down_weight", torch.ones(len(edges)))
        self.bias = nn.Parameter(torch.zeros(3, n_nodes, dim))           # top-down, up, self
        self.gate = nn.Parameter(torch.empty(3, dim).uniform_(-dim ** -0.5, dim ** -0.5))
        self.gate_bias = nn.Parameter(torch.zeros(3, n_nodes))
        self.dropout = nn.Dropout(dropout)

    def set_priors(self, Y: sp.csr_matrix) -> None:
        """Top-down edge weights N_child / N_parent from the training labels (0 when the
        parent never occurs)."""
        counts = np.asarray(sp.csr_matrix(Y).sum(axis=0), dtype=np.float64).ravel()
        parent, child = self.parent.cpu().numpy(), self.child.cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(counts[parent] > 0, counts[child] / counts[parent], 0.0)
        self.top_down_weight.copy_(torch.as_tensor(np.minimum(weight, 1.0), dtype=torch.float32))

    def _messages(self, v, src, dst, weight, direction: int) -> torch.Tensor:
        source = v[:, src]                                                    # (B, E, d)
        gate = torch.sigmoid(source @ self.gate[direction] + self.gate_bias[direction, dst])
        u = source * weight.view(1, -1, 1) + self.bias[direction, dst]
        out = torch.zeros_like(v)
        return out.index_add(1, dst, gate.unsqueeze(-1) * u)

    def forward(self, v) -> torch.Tensor:
        message = torch.sigmoid(v @ self.gate[2] + self.gate_bias[2]).unsqueeze(-1) \
            * (v + self.bias[2])
        if len(self.parent):
            message = message + self._messages(v, self.parent, self.child,
                                               self.top_down_weight, 0)
            message = message + self._messages(v, self.child, self.parent,
                                               torch.ones_like(self.top_down_weight), 1)
        return torch.relu(self.dropout(message))


class HiAGMNet(TextClassifier):
    """HiAGM-TP (Zhou et al., ACL 2020): the text vector is projected onto the label nodes
    (``V = reshape(W x)``, one ``node_dim`` vector per label), propagated by the
    ``HierarchyGCN``, and read out with one sigmoid per label: ``output="flatten"`` (the
    paper's) is a linear layer over all nodes' vectors concatenated, ``"per-node"`` (ours,
    for large label sets) a dot product of each node's vector with its own weight vector.

    ``recursive_penalty`` adds the recursive regularisation HiAGM used: the squared distance
    between the output weights of each parent and child.
    """

    def __init__(self, encoder, n_labels: int, edges, kernel_sizes=(2, 3, 4),
                 n_filters: int = 100, node_dim: int = 300, output: str = "flatten",
                 recursive_penalty: float = 1e-6, dropout: float = 0.1):
        super().__init__(encoder)
        if output not in ("flatten", "per-node"):
            raise ValueError(f"output must be 'flatten' or 'per-node', got {output!r}")
        self.n_labels, self.node_dim, self.output_kind = int(n_labels), int(node_dim), output
        self.features = TextCNN(encoder.hidden_size, kernel_sizes, n_filters)
        self.projection = nn.Linear(self.features.out_dim, self.n_labels * self.node_dim)
        self.structure = HierarchyGCN(self.n_labels, edges, self.node_dim, dropout)
        if output == "flatten":
            self.output = nn.Linear(self.n_labels * self.node_dim, self.n_labels)
        else:
            self.output_weight = nn.Parameter(
                torch.empty(self.n_labels, self.node_dim).uniform_(-self.node_dim ** -0.5,
                                                                   self.node_dim ** -0.5))
            self.output_bias = nn.Parameter(torch.zeros(self.n_labels))
        self.recursive_penalty = float(recursive_penalty)
        self.dropout = nn.Dropout(dropout)

    def set_prior(self, prior_logits: np.ndarray) -> None:
        prior = torch.as_tensor(prior_logits, dtype=torch.float32)
        with torch.no_grad():
            (self.output.bias if self.output_kind == "flatten" else self.output_bias).copy_(prior)

    def init_from_labels(self, Y) -> None:
        self.set_prior(prior_logits(Y))
        self.structure.set_priors(Y)

    def _weights(self) -> torch.Tensor:
        return self.output.weight if self.output_kind == "flatten" else self.output_weight

    def classify(self, states, mask) -> torch.Tensor:
        x = self.dropout(self.features(states, mask))
        v = self.dropout(self.projection(x)).view(-1, self.n_labels, self.node_dim)
        h = self.dropout(self.structure(v))
        if self.output_kind == "flatten":
            return self.output(h.reshape(h.shape[0], -1))
        return (h * self.output_weight).sum(dim=2) + self.output_bias

    def training_loss(self, states, mask, targets) -> torch.Tensor:
        loss = self.loss(self.classify(states, mask), targets)
        if self.recursive_penalty > 0 and len(self.structure.parent):
            w = self._weights()
            diff = w[self.structure.parent] - w[self.structure.child]
            loss = loss + 0.5 * self.recursive_penalty * diff.pow(2).sum()
        return loss
