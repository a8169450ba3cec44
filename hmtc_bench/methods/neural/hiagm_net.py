"""The torch network of HiAGM-TP (imported only inside fit / predict). See
``hmtc_bench.methods.neural.hiagm`` for which parts follow the paper and which are our
choices.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench.methods.neural.heads import TextClassifier, TextCNN, prior_logits


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
        update = gate.unsqueeze(-1) * u      # under autocast its dtype may differ from v's
        return torch.zeros_like(update[:, :1]).expand(-1, v.shape[1], -1).contiguous() \
            .index_add(1, dst, update)

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
