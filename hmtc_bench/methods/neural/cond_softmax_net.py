"""The torch network of ``cond-softmax`` (imported only inside fit / predict).

The label tree as groups: group 0 is the root, group g >= 1 an internal label; each group's
children (padded to the widest group) and a "stop here" option per group. Which groups are
softmax or sigmoid groups, which may stop, and the training-time logit adjustments are
buffers set from the training labels (``init_from_labels``), so that they are saved and
loaded with the weights.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench.methods.neural.encoders import EncoderStack
from hmtc_bench.methods.neural.heads import TextClassifier, masked_mean

EPS = 1e-6     # marginal probabilities clipped to [EPS, 1 - EPS] before the logit


class Groups:
    """The label tree as groups of siblings: ``parent_group`` (L,) the group of each label's
    parent (0 = root), ``group_label`` (G,) the label of each group (-1 for the root),
    ``members`` (G, C) the label columns of each group's children, padded with -1,
    ``depth_order`` the label columns by level (parents before children)."""

    def __init__(self, hierarchy):
        if not hierarchy.is_tree:
            raise ValueError("cond-softmax needs a tree: a label with two parents has two "
                             "conditional distributions")
        pm = hierarchy.parent_matrix.tocsc()
        n = len(hierarchy)
        parent = np.full(n, -1, dtype=np.int64)
        for c in range(n):
            rows = pm.indices[pm.indptr[c]:pm.indptr[c + 1]]
            if len(rows):
                parent[c] = rows[0]
        internal = np.unique(parent[parent >= 0])
        self.group_label = np.concatenate([[-1], internal]).astype(np.int64)
        group_of = {int(label): g for g, label in enumerate(self.group_label)}
        self.parent_group = np.array([group_of[int(p)] for p in parent], dtype=np.int64)
        members = [np.flatnonzero(self.parent_group == g) for g in range(len(self.group_label))]
        width = max(len(m) for m in members)
        self.members = np.full((len(members), width), -1, dtype=np.int64)
        for g, m in enumerate(members):
            self.members[g, :len(m)] = m
        self.depth_order = [np.flatnonzero(hierarchy.levels == level)
                            for level in range(1, hierarchy.depth + 1)]
        self.parent = parent

    def __len__(self) -> int:
        return len(self.group_label)

    def statistics(self, Y: sp.csr_matrix):
        """From training labels (ancestor-closed): (softmax, may_stop, child_adjust,
        stop_adjust). A group is a softmax group when no training document holds two of its
        children, else a sigmoid group; it may stop when a document holds its label but none
        of its children. Adjustments: log P(child | parent) for softmax groups (add-one
        smoothed, the stop option counted as a child), the log-odds of P(child | parent) for
        sigmoid groups; stop: log P(stop | parent)."""
        Y = sp.csr_matrix(Y, dtype=np.float64)
        n = Y.shape[0]
        counts = np.asarray(Y.sum(axis=0)).ravel()
        parent_docs = np.array([n if label < 0 else counts[label]
                                for label in self.group_label], dtype=np.float64)
        G = len(self)
        membership = sp.csr_matrix((np.ones(Y.shape[1]), (np.arange(Y.shape[1]),
                                                          self.parent_group)),
                                   shape=(Y.shape[1], G))
        per_group = (Y @ membership).tocsr()       # (n, G): gold children per group
        softmax = np.asarray(per_group.max(axis=0).todense()).ravel() <= 1
        children_docs = np.asarray(per_group.sum(axis=0)).ravel()
        holds = np.ones((n, G), dtype=bool)
        internal = self.group_label >= 0
        holds[:, internal] = Y[:, self.group_label[internal]].toarray() > 0
        has_child = per_group.toarray() > 0
        may_stop = (holds & ~has_child).any(axis=0)
        may_stop[0] = False        # every document descends from the root
        stop_docs = np.clip(parent_docs - children_docs, 0, None)
        width = (self.members >= 0).sum(axis=1) + may_stop
        denom = parent_docs + width               # add-one over children and stop
        g = self.parent_group
        child_p = (counts + 1.0) / denom[g]
        sig_p = (counts + 1.0) / (parent_docs[g] + 2.0)
        child_adjust = np.where(softmax[g], np.log(child_p), np.log(sig_p / (1 - sig_p)))
        stop_adjust = np.where(may_stop, np.log((stop_docs + 1.0) / denom), 0.0)
        return softmax, may_stop, child_adjust.astype(np.float32), \
            stop_adjust.astype(np.float32)


class CondSoftmaxNet(TextClassifier):
    """Pooled text vector (masked mean), dropout, one logit per label and one "stop" logit
    per group; per group a softmax over its children (and stop, where allowed) or a sigmoid
    per child; label scores are path products of the conditional probabilities."""

    def __init__(self, encoder: EncoderStack, hierarchy, dropout: float = 0.1,
                 adjust: float = 1.0):
        super().__init__(encoder)
        groups = Groups(hierarchy)
        self.adjust_weight = float(adjust)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(encoder.hidden_size, len(hierarchy))
        self.stop = nn.Linear(encoder.hidden_size, len(groups))
        for layer in (self.output, self.stop):
            nn.init.zeros_(layer.bias)
        G = len(groups)
        self.register_buffer("members", torch.as_tensor(groups.members))
        self.register_buffer("parent_group", torch.as_tensor(groups.parent_group))
        self.register_buffer("group_label", torch.as_tensor(groups.group_label))
        self.register_buffer("parent", torch.as_tensor(groups.parent))
        self.register_buffer("is_softmax", torch.ones(G, dtype=torch.bool))
        self.register_buffer("may_stop", torch.zeros(G, dtype=torch.bool))
        self.register_buffer("child_adjust", torch.zeros(len(hierarchy)))
        self.register_buffer("stop_adjust", torch.zeros(G))
        self.depth_order = [torch.as_tensor(d) for d in groups.depth_order]
        self._groups = groups

    def init_from_labels(self, Y: sp.csr_matrix) -> None:
        """Group kinds, stop options and logit adjustments from the training labels (the
        output biases start at 0: with the adjustment the raw logits model balanced
        classes)."""
        softmax, may_stop, child_adjust, stop_adjust = self._groups.statistics(Y)
        with torch.no_grad():
            self.is_softmax.copy_(torch.as_tensor(softmax))
            self.may_stop.copy_(torch.as_tensor(may_stop))
            self.child_adjust.copy_(torch.as_tensor(child_adjust))
            self.stop_adjust.copy_(torch.as_tensor(stop_adjust))

    def _logits(self, states, mask):
        h = self.dropout(masked_mean(states, mask).float())
        return self.output(h).float(), self.stop(h).float()

    def _group_log_probs(self, z, s):
        """(B, G, C + 1) log-probabilities of each group's children and stop (-inf where
        absent), for the softmax groups."""
        pad = self.members < 0
        gathered = z[:, self.members.clamp(min=0)].masked_fill(pad, float("-inf"))
        stop = s.masked_fill(~self.may_stop, float("-inf")).unsqueeze(-1)
        return torch.log_softmax(torch.cat([gathered, stop], dim=-1), dim=-1)

    def conditional(self, z, s) -> torch.Tensor:
        """P(label | its parent) (B, L) from raw logits."""
        probs = self._group_log_probs(z, s).exp()          # (B, G, C + 1)
        B, L = z.shape
        flat = torch.zeros(B, L, dtype=probs.dtype, device=z.device)
        valid = self.members >= 0
        g_idx, c_idx = valid.nonzero(as_tuple=True)
        flat[:, self.members[g_idx, c_idx]] = probs[:, g_idx, c_idx]
        sig = torch.sigmoid(z)
        return torch.where(self.is_softmax[self.parent_group], flat, sig)

    def classify(self, states, mask) -> torch.Tensor:
        z, s = self._logits(states, mask)
        cond = self.conditional(z, s)
        marginal = torch.empty_like(cond)
        for columns in self.depth_order:
            columns = columns.to(z.device)
            parents = self.parent[columns]
            above = torch.where(parents >= 0, marginal[:, parents.clamp(min=0)],
                                torch.ones_like(cond[:, columns]))
            marginal[:, columns] = cond[:, columns] * above
        p = marginal.clamp(EPS, 1 - EPS)
        return torch.log(p) - torch.log1p(-p)

    def training_loss(self, states, mask, targets) -> torch.Tensor:
        """Per document: the negative log-likelihood of each softmax group it enters (the
        gold child, or stop), plus the binary cross-entropy of each sigmoid group's children
        it enters, on logits shifted by ``adjust`` x the training log-priors (logit
        adjustment: the rare children are not drowned by the frequent ones)."""
        z, s = self._logits(states, mask)
        z = z + self.adjust_weight * self.child_adjust
        s = s + self.adjust_weight * self.stop_adjust
        targets = targets.float()
        B = targets.shape[0]
        ones = torch.ones(B, 1, dtype=targets.dtype, device=targets.device)
        holds = torch.cat([ones, targets[:, self.group_label[1:]]], dim=1)   # (B, G)
        log_probs = self._group_log_probs(z, s)                              # (B, G, C+1)
        valid = (self.members >= 0).to(targets.dtype)
        gold = targets[:, self.members.clamp(min=0)] * valid                # (B, G, C)
        stop = (gold.sum(-1, keepdim=True) == 0).to(targets.dtype) * \
            self.may_stop.to(targets.dtype).unsqueeze(-1)                    # (B, G, 1)
        choice = torch.cat([gold, stop], dim=-1)
        picked = (choice * log_probs.masked_fill(choice == 0, 0.0)).sum(-1)  # (B, G)
        active = holds * self.is_softmax.to(targets.dtype) * (choice.sum(-1) > 0)
        softmax_loss = -(picked * active).sum() / B
        parent_holds = holds[:, self.parent_group]                           # (B, L)
        sigmoid_children = (~self.is_softmax[self.parent_group]).to(targets.dtype)
        bce = nn.functional.binary_cross_entropy_with_logits(z, targets, reduction="none")
        sigmoid_loss = (bce * parent_holds * sigmoid_children).sum() / B
        return softmax_loss + sigmoid_loss
