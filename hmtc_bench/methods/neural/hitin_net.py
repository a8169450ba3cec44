"""The torch network of HiTIN (imported only inside fit / predict), and the coding tree of a
label hierarchy it runs on. See ``hmtc_bench.methods.neural.hitin`` for which parts follow
the paper and which are our choices.

Coding tree (``coding_tree``)
    Structural entropy (Li & Pan, 2016) of a graph G under a coding tree T, whose leaves are
    G's nodes::

        H_T(G) = - sum over non-root nodes a of T:  (g_a / vol G) log2(vol a / vol parent(a))

    with vol a the summed degree of a's leaves and g_a the weight of the edges leaving them.
    ``coding_tree(edges, n, height)`` builds a tree of that height with every leaf at depth
    ``height``, one level at a time from the leaves up: each level is the greedy partition
    of the level below (adjacent groups merged while a merge lowers the entropy, the best
    merge first), the groups of the level below contracted into nodes for the next one.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench.methods.neural.heads import TextClassifier, TextCNN, label_edges, prior_logits


# ---------------------------------------------------------------------- coding tree
def _group_entropy(g: float, vol: float, members_a: float, members_g: float,
                   total: float) -> float:
    """The entropy terms of one group of a level and of its members (as its children)::

        -(g / V) log2(vol / V) - sum over members m: (g_m / V) log2(vol_m / vol)

    given ``members_a`` = sum g_m log2 vol_m and ``members_g`` = sum g_m."""
    if vol <= 0:
        return 0.0
    return (-(g / total) * math.log2(vol / total)
            - (members_a - members_g * math.log2(vol)) / total)


def _partition(g: np.ndarray, vol: np.ndarray, cut: dict, total: float) -> np.ndarray:
    """The group of each node: greedy merges of adjacent groups (``cut[(i, j)]``: the edge
    weight between nodes i < j) while the best one lowers the structural entropy; ties go
    to the lowest node numbers, so the result is deterministic."""
    n = len(g)
    parent = np.arange(n)
    a = np.array([gi * math.log2(v) if v > 0 else 0.0 for gi, v in zip(g, vol)])
    state = {i: [float(g[i]), float(vol[i]), float(a[i]), float(g[i])] for i in range(n)}
    neighbours = {i: {} for i in range(n)}
    for (i, j), w in cut.items():
        neighbours[i][j] = neighbours[i].get(j, 0.0) + w
        neighbours[j][i] = neighbours[j].get(i, 0.0) + w

    def entropy(s):
        return _group_entropy(s[0], s[1], s[2], s[3], total)

    def delta(i, j):
        si, sj, w = state[i], state[j], neighbours[i][j]
        merged = [si[0] + sj[0] - 2 * w, si[1] + sj[1], si[2] + sj[2], si[3] + sj[3]]
        return entropy(merged) - entropy(si) - entropy(sj), merged

    heap = [(delta(i, j)[0], i, j) for i in range(n) for j in neighbours[i] if i < j]
    heapq.heapify(heap)
    version = {i: 0 for i in range(n)}
    stamps = {(i, j): (0, 0) for _, i, j in heap}
    while heap:
        d, i, j = heapq.heappop(heap)
        if i not in state or j not in state or stamps.get((i, j)) != (version[i], version[j]):
            continue
        if d >= 0:
            break
        _, merged = delta(i, j)
        state[i] = merged                                    # j joins i
        del state[j]
        parent[parent == j] = i
        for k, w in neighbours.pop(j).items():
            neighbours[k].pop(j, None)
            if k != i:
                neighbours[i][k] = neighbours[i].get(k, 0.0) + w
                neighbours[k][i] = neighbours[i][k]
        neighbours[i].pop(j, None)
        version[i] += 1
        for k in neighbours[i]:
            pair = (min(i, k), max(i, k))
            stamps[pair] = (version[pair[0]], version[pair[1]])
            heapq.heappush(heap, (delta(*pair)[0], *pair))
    _, group = np.unique(parent, return_inverse=True)     # groups numbered by first member
    return group.astype(np.int64)


def coding_tree(edges, n: int, height: int = 2) -> list[np.ndarray]:
    """A coding tree of height ``height`` over the graph of ``n`` nodes with the undirected
    unit-weight ``edges`` (pairs of node numbers): ``parents[i]`` (i = 0 .. height - 1)
    gives, for each node of layer i (layer 0: the n graph nodes), its parent in layer i + 1;
    the last layer is the root (one node). See the module docstring."""
    if height < 1:
        raise ValueError(f"a coding tree has height >= 1, got {height}")
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    cut: dict = {}
    for i, j in edges:
        if i != j:
            key = (int(min(i, j)), int(max(i, j)))
            cut[key] = cut.get(key, 0.0) + 1.0
    degree = np.zeros(n)
    for (i, j), w in cut.items():
        degree[i] += w
        degree[j] += w
    total = max(float(degree.sum()), 1.0)
    g, vol = degree.copy(), degree.copy()
    parents = []
    for _ in range(height - 1):
        group = _partition(g, vol, cut, total)
        m = int(group.max()) + 1 if len(group) else 0
        contracted: dict = {}
        for (i, j), w in cut.items():
            a, b = int(group[i]), int(group[j])
            if a != b:
                key = (min(a, b), max(a, b))
                contracted[key] = contracted.get(key, 0.0) + w
        vol = np.bincount(group, weights=vol, minlength=m)
        g = np.zeros(m)
        for (a, b), w in contracted.items():
            g[a] += w
            g[b] += w
        parents.append(group)
        cut = contracted
    parents.append(np.zeros(len(g), dtype=np.int64))       # every top node under the root
    return parents


def structural_entropy(edges, n: int, parents: list[np.ndarray]) -> float:
    """H_T(G) of the coding tree ``parents`` (as ``coding_tree`` returns it)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    membership = [np.arange(n)]               # each layer-i node of every graph node
    for p in parents:
        membership.append(p[membership[-1]])
    degree = np.bincount(edges.ravel(), minlength=n).astype(float)
    total = degree.sum()
    h = 0.0
    for layer in range(len(parents)):
        node, up = membership[layer], membership[layer + 1]
        vol = np.bincount(node, weights=degree)
        up_vol = np.bincount(up, weights=degree)
        crossing = node[edges[:, 0]] != node[edges[:, 1]]
        g = np.bincount(node[edges[crossing].ravel()], minlength=len(vol)).astype(float)
        parent_of = parents[layer]
        for a in range(len(vol)):
            if vol[a] > 0 and g[a] > 0:
                h -= g[a] / total * math.log2(vol[a] / up_vol[parent_of[a]])
    return h


# ---------------------------------------------------------------------- network
class TreeIsomorphism(nn.Module):
    """HiTIN's structure encoder: from the label nodes (layer 0) up the coding tree, each
    node's vector is an MLP of the sum of its children's (GIN-style, ``mlp_layers`` linear
    layers with ReLU between), then layer norm and ReLU; returns every layer's vectors."""

    def __init__(self, parents: list[np.ndarray], in_dim: int, hidden_dim: int,
                 mlp_layers: int = 2):
        super().__init__()
        self.sizes = [len(parents[0])] + [int(p.max()) + 1 if len(p) else 1 for p in parents]
        for i, p in enumerate(parents):
            self.register_buffer(f"parent_{i}", torch.as_tensor(p, dtype=torch.long))
        self.mlps = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(len(parents)):
            dims = [in_dim if layer == 0 else hidden_dim] + [hidden_dim] * mlp_layers
            blocks = []
            for k in range(mlp_layers):
                blocks.append(nn.Linear(dims[k], dims[k + 1]))
                if k < mlp_layers - 1:
                    blocks.append(nn.ReLU())
            self.mlps.append(nn.Sequential(*blocks))
            self.norms.append(nn.LayerNorm(hidden_dim))

    def forward(self, h0) -> list[torch.Tensor]:
        layers = [h0]
        for i, (mlp, norm) in enumerate(zip(self.mlps, self.norms)):
            child = layers[-1]
            parent = getattr(self, f"parent_{i}")
            pooled = torch.zeros(child.shape[0], self.sizes[i + 1], child.shape[2],
                                 dtype=child.dtype, device=child.device).index_add(1, parent,
                                                                                   child)
            layers.append(torch.relu(norm(mlp(pooled))))
        return layers


class HiTINNet(TextClassifier):
    """HiTIN: the HiAGM-TP text vector (a TextCNN over the token states) projected onto the
    label nodes, the ``TreeIsomorphism`` encoder up the coding tree of the label hierarchy,
    and a read-out per layer (the layer's node vectors summed and divided by the square root
    of their number, dropout, a linear map to every label's logit), the read-outs added.
    ``recursive_penalty``: HiAGM's recursive regularisation of the read-outs' label weights
    (parent against child)."""

    def __init__(self, encoder, hierarchy, height: int = 2, kernel_sizes=(2, 3, 4),
                 n_filters: int = 100, node_dim: int = 64, hidden_dim: int = 128,
                 mlp_layers: int = 2, recursive_penalty: float = 1e-6, dropout: float = 0.1):
        super().__init__(encoder)
        self.n_labels, self.node_dim = len(hierarchy), int(node_dim)
        self.edges = label_edges(hierarchy)
        self.register_buffer("edge_index", torch.as_tensor(self.edges.T.copy()),
                             persistent=False)
        parents = coding_tree(self.edges, self.n_labels, int(height))
        self.features = TextCNN(encoder.hidden_size, kernel_sizes, n_filters)
        self.projection = nn.Linear(self.features.out_dim, self.n_labels * self.node_dim)
        self.structure = TreeIsomorphism(parents, self.node_dim, int(hidden_dim),
                                         int(mlp_layers))
        dims = [self.node_dim] + [int(hidden_dim)] * len(parents)
        self.readouts = nn.ModuleList(nn.Linear(d, self.n_labels) for d in dims)
        for readout in self.readouts:   # the scores start at the prior (set_prior)
            nn.init.zeros_(readout.weight)
            nn.init.zeros_(readout.bias)
        self.recursive_penalty = float(recursive_penalty)
        self.dropout = nn.Dropout(dropout)

    @property
    def tree_sizes(self) -> list[int]:
        """Nodes per layer of the coding tree, leaves (labels) first, the root last."""
        return list(self.structure.sizes)

    def set_prior(self, prior_logits: np.ndarray) -> None:
        with torch.no_grad():
            self.readouts[-1].bias.copy_(torch.as_tensor(prior_logits, dtype=torch.float32))

    def init_from_labels(self, Y: sp.csr_matrix) -> None:
        self.set_prior(prior_logits(Y))

    def classify(self, states, mask) -> torch.Tensor:
        x = self.dropout(self.features(states, mask))
        v = self.dropout(self.projection(x)).view(-1, self.n_labels, self.node_dim)
        logits = 0
        for h, readout in zip(self.structure(v), self.readouts):
            logits = logits + readout(self.dropout(h.sum(dim=1) / math.sqrt(h.shape[1])))
        return logits

    def training_loss(self, states, mask, targets) -> torch.Tensor:
        loss = self.loss(self.classify(states, mask), targets)
        if self.recursive_penalty > 0 and self.edge_index.shape[1]:
            parent, child = self.edge_index
            for readout in self.readouts:
                diff = readout.weight[parent] - readout.weight[child]
                loss = loss + 0.5 * self.recursive_penalty * diff.pow(2).sum()
        return loss
