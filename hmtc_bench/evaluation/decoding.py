"""Decoding: probabilities (n, L) -> label sets (sparse indicator matrix). Kept apart from
methods so that every method is decoded the same way and the policy is recorded with the run.

Policies (``POLICIES``); ``t`` is the run's threshold (default 0.5):

``threshold``
    label j when p[j] >= t.
``top-down``
    label j when p[j] >= t and its parents are accepted (all of them in a DAG): consistent.
``clamp``
    each label's score capped at its parents' (capped) scores, then thresholded at t: the
    same sets as ``top-down`` on a tree; on a DAG a label needs every parent too. Consistent.
``level-top-k`` (``level-top-k:K``, K = 1 by default)
    the K best labels of level 1, then the K best children of the accepted labels on each
    next level, down to the leaves (no threshold): consistent; K = 1 gives one full path,
    the natural decoder of single-path corpora such as WOS.
``mandatory-leaf``
    top-down at t, but a document always goes on from an accepted inner node (and from the
    root) to its best child when no child passes t: every prediction is a set of full paths
    to leaves, for corpora whose gold paths always end at a leaf. Trees only.
``tuned`` (fitted on dev)
    a threshold per label, the one that maximises that label's F1 on the dev split, for
    labels with at least ``MIN_DEV_POSITIVES`` dev documents; the other labels take the
    threshold that maximises the micro-F1 of their level on dev (and ``t`` where their level
    has no dev positive either). Then thresholded (not made consistent).
``tuned-global`` (fitted on dev)
    one threshold for every label, the one that maximises micro-F1 on dev.

A threshold chosen on dev is the midpoint between the lowest dev score it accepts and the
next lower one (the best cut of the sorted dev scores), so that scores equal to a dev score
are decided as on dev. Policies fitted on dev never see test labels: ``fit_decoder`` takes
the dev scores and labels only, and the runner calls it before test labels are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from hmtc_bench.errors import ParameterError
from hmtc_bench.hierarchy import LabelHierarchy

POLICIES = ("threshold", "top-down", "clamp", "level-top-k", "mandatory-leaf", "tuned",
            "tuned-global")
FITTED = ("tuned", "tuned-global")   # need dev scores and labels
DEFAULT_POLICY = "threshold"
DEFAULT_THRESHOLD = 0.5
MIN_DEV_POSITIVES = 5   # dev documents a label needs for a threshold of its own (``tuned``)


def parse_policy(policy: str) -> tuple[str, int | None]:
    """(name, K) of a policy string: ``level-top-k:2`` -> ("level-top-k", 2)."""
    name, _, k = str(policy).partition(":")
    if name not in POLICIES:
        raise ParameterError(f"unknown decoding policy {policy!r}; choose one of "
                             f"{', '.join(POLICIES)} (level-top-k:K for K labels per level)")
    if name != "level-top-k":
        if k:
            raise ParameterError(f"decoding policy {policy!r}: only level-top-k takes :K")
        return name, None
    if not k:
        return name, 1
    if not k.isdigit() or int(k) < 1:
        raise ParameterError(f"decoding policy {policy!r}: K must be a whole number >= 1")
    return name, int(k)


def check_policy(policy: str, hierarchy: LabelHierarchy | None = None,
                 has_dev: bool = True) -> None:
    """Refuse a policy that is unknown, needs a tree on a DAG, or needs dev data on a
    corpus without a dev split (``ParameterError``, one line)."""
    name, _ = parse_policy(policy)
    if hierarchy is not None and name == "mandatory-leaf" and not hierarchy.is_tree:
        raise ParameterError(f"decoding policy {policy!r} needs a tree; this hierarchy has "
                             "labels with several parents (a DAG)")
    if name in FITTED and not has_dev:
        raise ParameterError(f"decoding policy {policy!r} is fitted on the dev split, and "
                             "this dataset has none")


@dataclass
class Decoder:
    """A decoding policy with what it fitted on dev (``params``, JSON-able)."""

    policy: str
    hierarchy: LabelHierarchy
    threshold: float = DEFAULT_THRESHOLD
    thresholds: np.ndarray | None = None     # (L,) per label, for the fitted policies
    params: dict = field(default_factory=dict)

    def __call__(self, proba) -> sp.csr_matrix:
        proba = _checked(proba, self.hierarchy)
        name, k = parse_policy(self.policy)
        if name in FITTED:
            if self.thresholds is None:
                raise ValueError(f"decoding policy {self.policy!r} is not fitted: "
                                 "use fit_decoder with the dev scores")
            return sp.csr_matrix(proba >= self.thresholds[None, :], dtype=np.int8)
        return _fixed(proba, self.hierarchy, name, k, self.threshold)


def decode(proba, hierarchy: LabelHierarchy, policy: str = DEFAULT_POLICY,
           threshold: float = DEFAULT_THRESHOLD) -> sp.csr_matrix:
    """Decode with a policy that fits nothing (every one but ``tuned``, ``tuned-global``)."""
    name, _ = parse_policy(policy)
    if name in FITTED:
        raise ValueError(f"decoding policy {policy!r} is fitted on dev: use fit_decoder")
    check_policy(policy, hierarchy)
    return Decoder(policy, hierarchy, threshold)(proba)


def fit_decoder(policy: str, hierarchy: LabelHierarchy, threshold: float = DEFAULT_THRESHOLD,
                dev_proba=None, dev_Y=None) -> Decoder:
    """The decoder of ``policy``, fitted on the dev scores and labels when it needs them."""
    name, _ = parse_policy(policy)
    check_policy(policy, hierarchy, has_dev=dev_proba is not None and len(dev_proba) > 0)
    decoder = Decoder(policy, hierarchy, threshold)
    if name not in FITTED:
        return decoder
    P = _checked(dev_proba, hierarchy)
    Y = sp.csc_matrix(dev_Y, dtype=np.int8)
    if Y.shape != P.shape:
        raise ValueError(f"dev labels {Y.shape} and dev scores {P.shape} differ in shape")
    if name == "tuned-global":
        t, f1 = best_threshold(P.ravel(), Y.toarray().ravel().astype(bool), threshold)
        decoder.thresholds = np.full(len(hierarchy), t)
        decoder.params = {"threshold": t, "dev_micro_f1": f1, "n_dev": int(P.shape[0])}
        return decoder
    positives = np.diff(Y.indptr)
    dense = Y.toarray().astype(bool)
    thresholds = np.full(len(hierarchy), float(threshold))
    levels = {}
    for level in range(1, hierarchy.depth + 1):
        cols = hierarchy.level_columns(level)
        if positives[cols].sum() > 0:
            t, _ = best_threshold(P[:, cols].ravel(), dense[:, cols].ravel(), threshold)
            thresholds[cols] = t
            levels[level] = t
    own = np.flatnonzero(positives >= MIN_DEV_POSITIVES)
    for j in own:
        thresholds[j], _ = best_threshold(P[:, j], dense[:, j], threshold)
    decoder.thresholds = thresholds
    decoder.params = {"min_dev_positives": MIN_DEV_POSITIVES, "own_thresholds": int(len(own)),
                      "level_thresholds": {str(k): v for k, v in levels.items()},
                      "median_threshold": float(np.median(thresholds)),
                      "n_dev": int(P.shape[0])}
    return decoder


def fitted_decoder(policy: str, hierarchy: LabelHierarchy, params: dict | None,
                   threshold: float = DEFAULT_THRESHOLD) -> Decoder:
    """The decoder of ``policy`` from what it fitted on dev as a run records it
    (``runner.decoder_params``: ``thresholds`` per label in label order for ``tuned``, one
    ``threshold`` for ``tuned-global``): how a saved model applies a fitted decoding. A
    policy that fits nothing ignores ``params``; a fitted one without them, or with
    thresholds of another number of labels, is refused (ValueError)."""
    name, _ = parse_policy(policy)
    check_policy(policy, hierarchy)
    if name not in FITTED:
        return Decoder(policy, hierarchy, threshold)
    params = params or {}
    if name == "tuned-global" and "threshold" in params:
        thresholds = np.full(len(hierarchy), float(params["threshold"]))
    elif name == "tuned" and "thresholds" in params:
        thresholds = np.asarray(params["thresholds"], dtype=np.float64)
    else:
        raise ValueError(f"decoding policy {policy!r}: no thresholds fitted on dev")
    if thresholds.shape != (len(hierarchy),) or not np.all((0 <= thresholds) &
                                                          (thresholds <= 1)):
        raise ValueError(f"decoding policy {policy!r}: {thresholds.size} thresholds for "
                         f"{len(hierarchy)} labels (each must be in [0, 1])")
    return Decoder(policy, hierarchy, threshold, thresholds=thresholds,
                   params={k: v for k, v in params.items() if k != "thresholds"})


def dev_predictions(policy: str, hierarchy: LabelHierarchy, threshold: float, dev_proba,
                    dev_Y, folds: int = 2) -> sp.csr_matrix:
    """What ``policy`` predicts on dev, honestly: a policy fitted on dev (``FITTED``) is
    cross-fitted (fitted on the other folds of a fixed random partition of the dev rows,
    applied to each fold), so that its dev score does not reward fitting on the very rows
    it is scored on; any other policy is applied as it is."""
    name, _ = parse_policy(policy)
    P = np.asarray(dev_proba)
    if name not in FITTED:
        return Decoder(policy, hierarchy, threshold)(P)
    Y = sp.csr_matrix(dev_Y)
    order = np.random.default_rng(0).permutation(P.shape[0])
    parts = [np.sort(part) for part in np.array_split(order, folds)]
    out = sp.lil_matrix(P.shape, dtype=np.int8)
    for k, part in enumerate(parts):
        rest = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != k]))
        decoder = fit_decoder(policy, hierarchy, threshold, P[rest], Y[rest])
        out[part] = decoder(P[part])
    return out.tocsr()


def best_threshold(scores: np.ndarray, truth: np.ndarray,
                   default: float = DEFAULT_THRESHOLD) -> tuple[float, float]:
    """(threshold, F1): the cut of ``scores`` that maximises the F1 of accepting
    ``scores >= threshold`` against the boolean ``truth``; ``default`` (F1 0) without a
    positive. Ties of F1 go to the higher threshold (fewer labels)."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    n_true = int(truth.sum())
    if n_true == 0 or scores.size == 0:
        return float(default), 0.0
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], truth[order]
    tp = np.cumsum(hits)
    # cut after position i is allowed only where the next score is lower (ties stay together)
    last_of_value = np.append(s[1:] < s[:-1], True)
    k = np.arange(1, len(s) + 1)
    f1 = np.where(last_of_value, 2 * tp / (k + n_true), -1.0)
    best = int(np.argmax(f1))       # the first maximum: the highest threshold
    lower = s[best + 1] if best + 1 < len(s) else max(s[best] - 1e-6, 0.0)
    return float((s[best] + lower) / 2), float(f1[best])


# ---------------------------------------------------------------------- fixed policies
def _checked(proba, hierarchy) -> np.ndarray:
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[1] != len(hierarchy):
        raise ValueError(f"expected probabilities of shape (n, {len(hierarchy)}), "
                         f"got {proba.shape}")
    return proba


def _fixed(proba, hierarchy: LabelHierarchy, name: str, k: int | None,
           threshold: float) -> sp.csr_matrix:
    if name == "threshold":
        return sp.csr_matrix(proba >= threshold, dtype=np.int8)
    parents = hierarchy.parent_matrix.tocsc()

    def own(c):
        return parents.indices[parents.indptr[c]:parents.indptr[c + 1]]

    if name in ("top-down", "clamp"):
        # labels are ordered by level, so parents are settled before their children
        if name == "clamp":
            capped = np.array(proba, dtype=np.float64, copy=True)
            for level in range(2, hierarchy.depth + 1):
                for c in hierarchy.level_columns(level):
                    ps = own(c)
                    if len(ps):
                        capped[:, c] = np.minimum(capped[:, c], capped[:, ps].min(axis=1))
            return sp.csr_matrix(capped >= threshold, dtype=np.int8)
        accepted = proba >= threshold
        for level in range(2, hierarchy.depth + 1):
            for c in hierarchy.level_columns(level):
                ps = own(c)
                if len(ps):
                    accepted[:, c] &= accepted[:, ps].all(axis=1)
        return sp.csr_matrix(accepted, dtype=np.int8)
    if name == "level-top-k":
        return _level_top_k(proba, hierarchy, k or 1, own)
    return _mandatory_leaf(proba, hierarchy, threshold)


def _level_top_k(proba, hierarchy, k: int, own) -> sp.csr_matrix:
    n = proba.shape[0]
    accepted = np.zeros(proba.shape, dtype=bool)
    for level in range(1, hierarchy.depth + 1):
        cols = hierarchy.level_columns(level)
        if level == 1:
            allowed = np.ones((n, len(cols)), dtype=bool)
        else:
            allowed = np.stack([accepted[:, own(c)].all(axis=1) if len(own(c)) else
                                np.ones(n, dtype=bool) for c in cols], axis=1)
        scores = np.where(allowed, proba[:, cols], -np.inf)
        take = min(k, len(cols))
        best = np.argsort(-scores, axis=1, kind="stable")[:, :take]
        rows = np.repeat(np.arange(n), take)
        chosen = best.ravel()
        ok = np.isfinite(scores[rows, chosen])
        accepted[rows[ok], cols[chosen[ok]]] = True
    return sp.csr_matrix(accepted, dtype=np.int8)


def _mandatory_leaf(proba, hierarchy, threshold: float) -> sp.csr_matrix:
    n = proba.shape[0]
    index = hierarchy.index
    children = {node: np.array([index[c] for c in hierarchy.children(node)], dtype=np.int64)
                for node in (hierarchy.root, *hierarchy.labels)}
    accepted = np.zeros(proba.shape, dtype=bool)
    rows = np.arange(n)
    frontier = [(hierarchy.root, np.ones(n, dtype=bool))]   # (node, documents at it)
    while frontier:
        node, here = frontier.pop()
        kids = children[node]
        if not len(kids) or not here.any():
            continue
        passed = (proba[:, kids] >= threshold) & here[:, None]
        none = here & ~passed.any(axis=1)
        best = kids[np.argmax(proba[:, kids], axis=1)]
        accepted[rows[none], best[none]] = True
        accepted[:, kids] |= passed
        for j, kid in enumerate(kids):
            frontier.append((hierarchy.labels[kid], accepted[:, kid] & here))
    return sp.csr_matrix(accepted, dtype=np.int8)


__all__ = ["DEFAULT_POLICY", "DEFAULT_THRESHOLD", "Decoder", "FITTED", "MIN_DEV_POSITIVES",
           "POLICIES", "best_threshold", "check_policy", "decode", "fit_decoder", "fitted_decoder",
           "parse_policy"]
