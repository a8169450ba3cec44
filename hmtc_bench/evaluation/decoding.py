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
        parent_matrix = hierarchy.parent_matrix.tocsc()
        needed = hierarchy.n_parents
        for level in range(2, hierarchy.depth + 1):
            cols = hierarchy.level_columns(level)
            have = (sp.csr_matrix(accepted, dtype=np.int32) @ parent_matrix[:, cols]).toarray()
            accepted[:, cols] &= have >= needed[cols]
    return sp.csr_matrix(accepted, dtype=np.int8)
