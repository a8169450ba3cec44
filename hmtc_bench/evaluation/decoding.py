"""Decoding: probabilities (n, L) -> label sets (sparse indicator matrix). Kept apart from
methods so that every method is decoded the same way and the policy is recorded with the run.

``threshold``
    label j when p[j] >= threshold.
``top-down``
    label j when p[j] >= threshold and its parents are accepted (all of them in a DAG):
    consistent by construction.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hmtc_bench.hierarchy import LabelHierarchy

POLICIES = ("threshold", "top-down")
DEFAULT_POLICY = "threshold"
DEFAULT_THRESHOLD = 0.5


def decode(proba, hierarchy: LabelHierarchy, policy: str = DEFAULT_POLICY,
           threshold: float = DEFAULT_THRESHOLD) -> sp.csr_matrix:
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[1] != len(hierarchy):
        raise ValueError(f"expected probabilities of shape (n, {len(hierarchy)}), "
                         f"got {proba.shape}")
    if policy not in POLICIES:
        raise ValueError(f"unknown decoding policy {policy!r}; choose one of {POLICIES}")
    accepted = proba >= threshold
    if policy == "top-down":
        # labels are ordered by level, so parents are settled before their children
        parents = hierarchy.parent_matrix.tocsc()
        for level in range(2, hierarchy.depth + 1):
            for c in hierarchy.level_columns(level):
                own = parents.indices[parents.indptr[c]:parents.indptr[c + 1]]
                if len(own) == 1:
                    accepted[:, c] &= accepted[:, own[0]]
                elif len(own) > 1:
                    accepted[:, c] &= accepted[:, own].all(axis=1)
    return sp.csr_matrix(accepted, dtype=np.int8)
