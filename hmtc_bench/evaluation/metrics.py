"""Pure metric functions over sparse indicator matrices and the hierarchy.

All matrices are (n, L) in the hierarchy's label order. Counting is vectorised over
columns, so 800,000 x 103 predictions evaluate in seconds.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hmtc_bench.hierarchy import LabelHierarchy

BUCKETS = ("head", "torso", "tail")


def _csr(Y) -> sp.csr_matrix:
    if sp.issparse(Y):
        Y = sp.csr_matrix(Y).astype(bool)   # a copy: the caller's matrix is left as it is
        Y.eliminate_zeros()
        Y = Y.astype(np.int32)
    else:
        Y = sp.csr_matrix(np.asarray(Y) != 0, dtype=np.int32)
    return Y


def _counts(Y_true: sp.csr_matrix, Y_pred: sp.csr_matrix):
    """Per-label true positives, predicted positives and actual positives."""
    tp = np.asarray(Y_true.multiply(Y_pred).sum(axis=0)).ravel().astype(np.int64)
    pred = np.asarray(Y_pred.sum(axis=0)).ravel().astype(np.int64)
    true = np.asarray(Y_true.sum(axis=0)).ravel().astype(np.int64)
    return tp, pred, true


def _f1(tp, pred, true):
    """F1 from counts (scalars or arrays), 0 where undefined (zero_division=0)."""
    tp, pred, true = (np.asarray(x, dtype=np.float64) for x in (tp, pred, true))
    denom = pred + true
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _prf(tp, pred, true):
    p = tp / pred if pred else 0.0
    r = tp / true if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return float(p), float(r), float(f)


def micro_f1(Y_true, Y_pred, columns=None) -> float:
    tp, pred, true = _counts(_csr(Y_true), _csr(Y_pred))
    if columns is not None:
        tp, pred, true = tp[columns], pred[columns], true[columns]
    return float(_f1(tp.sum(), pred.sum(), true.sum()))


def macro_f1(Y_true, Y_pred, columns=None, present_only: bool = False) -> float:
    """Mean F1 over labels; labels without test support count 0 unless ``present_only``."""
    tp, pred, true = _counts(_csr(Y_true), _csr(Y_pred))
    if columns is not None:
        tp, pred, true = tp[columns], pred[columns], true[columns]
    if present_only:
        keep = true > 0
        tp, pred, true = tp[keep], pred[keep], true[keep]
    if len(tp) == 0:
        return 0.0
    return float(_f1(tp, pred, true).mean())


def hierarchical_prf(Y_true, Y_pred, hierarchy: LabelHierarchy) -> tuple[float, float, float]:
    """Kiritchenko's hP, hR, hF: both sets augmented with their ancestors, pooled over
    documents (the root is never counted)."""
    T = hierarchy.close_matrix(_csr(Y_true)).astype(np.int32)
    P = hierarchy.close_matrix(_csr(Y_pred)).astype(np.int32)
    return _prf(int(T.multiply(P).sum()), int(P.sum()), int(T.sum()))


def lca_prf(Y_true, Y_pred, hierarchy: LabelHierarchy) -> tuple[float, float, float]:
    """Hierarchical P, R, F under the lowest-common-ancestor convention (Kosmopoulos et
    al. 2015, "Evaluation measures for hierarchical classification"), pooled over
    documents. Each set is reduced to its most specific labels (those without a descendant
    in the set); every such label is paired with the label of the other set with which it
    shares the deepest common ancestor (the LCA; the first such label in label order on a
    tie), and both sets are augmented with the labels on the way from each member of the
    pair up to that LCA, the LCA included and the root never. A label with no pair (the
    other set is empty) counts alone. So a sibling confusion costs half, as with ancestor
    augmentation, but ancestors shared high up are not counted once per label. In a DAG
    "the way up" is every ancestor of the label that descends from the LCA (or is it)."""
    T, P = _csr(Y_true), _csr(Y_pred)
    up = hierarchy.ancestor_matrix            # [c, a] = 1: a is c or an ancestor of c
    up_sets = [frozenset(up.indices[up.indptr[c]:up.indptr[c + 1]]) for c in range(up.shape[0])]
    levels = hierarchy.levels
    inter = n_pred = n_true = 0
    seen: dict = {}        # documents with the same gold and predicted sets count the same
    for i in range(T.shape[0]):
        key = (T.indices[T.indptr[i]:T.indptr[i + 1]].tobytes(),
               P.indices[P.indptr[i]:P.indptr[i + 1]].tobytes())
        counts = seen.get(key)
        if counts is None:
            counts = seen[key] = _lca_counts(T.indices[T.indptr[i]:T.indptr[i + 1]],
                                             P.indices[P.indptr[i]:P.indptr[i + 1]],
                                             up_sets, levels)
        inter, n_pred, n_true = inter + counts[0], n_pred + counts[1], n_true + counts[2]
    return _prf(inter, n_pred, n_true)


def _lca_counts(true_columns, pred_columns, up_sets, levels) -> tuple[int, int, int]:
    """(shared, predicted, true) sizes of one document's LCA-augmented sets."""
    t = _specific(true_columns, up_sets)
    p = _specific(pred_columns, up_sets)
    t_aug, p_aug = set(), set()
    for mine, other, mine_aug, other_aug in ((t, p, t_aug, p_aug), (p, t, p_aug, t_aug)):
        for a in mine:
            if not other:
                mine_aug.add(a)
                continue
            best_b, lca = None, None
            for b in other:
                common = up_sets[a] & up_sets[b]
                deepest = max(common, key=lambda c: (levels[c], -c)) if common else None
                if best_b is None or (deepest is not None and
                                      (lca is None or levels[deepest] > levels[lca])):
                    best_b, lca = b, deepest
            mine_aug.update(_way_up(a, lca, up_sets))
            other_aug.update(_way_up(best_b, lca, up_sets))
    return len(t_aug & p_aug), len(p_aug), len(t_aug)


def _specific(columns, up_sets) -> list[int]:
    members = set(int(c) for c in columns)
    return sorted(c for c in members
                  if not any(c in up_sets[d] for d in members if d != c))


def _way_up(label: int, lca: int | None, up_sets) -> set[int]:
    """``label`` and its ancestors that are the LCA or below it (the root excluded)."""
    if lca is None:                  # only the root in common: the whole way up
        return set(up_sets[label])
    return {a for a in up_sets[label] if lca in up_sets[a]}


def exact_match(Y_true, Y_pred, hierarchy: LabelHierarchy) -> float:
    """Share of documents whose predicted paths are exactly the gold ones: the prediction
    closed under ancestors equals the (closed) gold label set."""
    T = hierarchy.close_matrix(_csr(Y_true)).astype(np.int32)
    P = hierarchy.close_matrix(_csr(Y_pred)).astype(np.int32)
    if T.shape[0] == 0:
        return 0.0
    differs = abs(T - P).tocsr()
    differs.eliminate_zeros()
    return float(np.mean(np.diff(differs.indptr) == 0))


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as scikit-learn's ``average_precision_score``
    computes it: sum over the distinct scores, highest first, of (recall gained) x
    precision; 0 without a positive."""
    truth = np.asarray(truth, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_true = int(truth.sum())
    if n_true == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], truth[order]
    tp = np.cumsum(hits)
    last = np.append(s[1:] != s[:-1], True)        # the end of each group of equal scores
    tp = tp[last]
    k = np.flatnonzero(last) + 1
    recall_gain = np.diff(np.concatenate([[0], tp])) / n_true
    return float(np.sum(recall_gain * tp / k))


def average_precisions(Y_true, proba: np.ndarray, hierarchy: LabelHierarchy) -> dict:
    """Micro AP (every document-label pair pooled) and macro AP (mean over the labels with
    a test document), overall and per level."""
    T = _csr(Y_true).tocsc()
    proba = np.asarray(proba, dtype=np.float64)
    per_label = np.zeros(T.shape[1])
    present = np.diff(T.indptr) > 0
    for j in np.flatnonzero(present):
        truth = np.zeros(T.shape[0], dtype=bool)
        truth[T.indices[T.indptr[j]:T.indptr[j + 1]]] = True
        per_label[j] = average_precision(truth, proba[:, j])
    dense = None
    out = {}
    groups = [("", np.arange(T.shape[1]))] + [
        (f"_level_{level}", hierarchy.level_columns(level))
        for level in range(1, hierarchy.depth + 1)]
    for suffix, cols in groups:
        keep = cols[present[cols]]
        out[f"macro_ap{suffix}"] = float(per_label[keep].mean()) if len(keep) else 0.0
        if dense is None:
            dense = T.toarray().astype(bool)
        out[f"micro_ap{suffix}"] = average_precision(dense[:, cols], proba[:, cols])
    return out


def inconsistency(Y_pred, hierarchy: LabelHierarchy) -> tuple[float, float]:
    """(share of predicted labels with a parent not predicted, share of documents with at
    least one such label). In a DAG a label needs all of its parents."""
    P = _csr(Y_pred)
    n_labels = P.nnz
    if n_labels == 0:
        return 0.0, 0.0
    parents_present = (P @ hierarchy.parent_matrix).tocsr()  # [d, c] = predicted parents of c
    needed = hierarchy.n_parents
    rows, cols = P.nonzero()
    have = np.asarray(parents_present[rows, cols]).ravel()
    bad = have < needed[cols]
    docs = np.unique(rows[bad])
    return float(bad.sum() / n_labels), float(len(docs) / P.shape[0])


CURVE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))   # 0.05 .. 0.95


def threshold_curve(Y_true, proba: np.ndarray) -> dict[str, float]:
    """Micro-F1 of the scores thresholded (``proba >= t``, the ``threshold`` policy) at each
    t of ``CURVE_THRESHOLDS``: keys ``"0.05"`` .. ``"0.95"``."""
    Yt = _csr(Y_true)
    scores = np.asarray(proba)
    true = Yt.sum()
    rows = np.repeat(np.arange(Yt.shape[0]), np.diff(Yt.indptr))
    gold = scores[rows, Yt.indices]          # each gold label's score
    curve = {}
    for t in CURVE_THRESHOLDS:
        tp = int((gold >= t).sum())
        curve[f"{t:.2f}"] = float(_f1(tp, int((scores >= t).sum()), true))
    return curve


def frequency_buckets(train_counts: np.ndarray) -> dict[str, np.ndarray]:
    """Split labels into head / torso / tail thirds by training frequency (ties stay
    together by sorting stably on count, most frequent first)."""
    order = np.argsort(-np.asarray(train_counts), kind="stable")
    return {name: np.sort(part) for name, part in zip(BUCKETS, np.array_split(order, 3))}


def evaluate(Y_true, Y_pred, hierarchy: LabelHierarchy, train_counts=None,
             proba=None) -> dict[str, float]:
    """Every figure in one flat record (see the README for the definitions); with the
    scores ``proba`` the threshold-free ones too (average precision)."""
    Yt, Yp = _csr(Y_true), _csr(Y_pred)
    if Yt.shape != Yp.shape or Yt.shape[1] != len(hierarchy):
        raise ValueError(f"shapes differ: true {Yt.shape}, predicted {Yp.shape}, "
                         f"{len(hierarchy)} labels")
    tp, pred, true = _counts(Yt, Yp)
    f1 = _f1(tp, pred, true)
    present = true > 0
    record = {
        "micro_f1": float(_f1(tp.sum(), pred.sum(), true.sum())),
        "macro_f1": float(f1.mean()),
        "macro_f1_present": float(f1[present].mean()) if present.any() else 0.0,
    }
    for level in range(1, hierarchy.depth + 1):
        cols = hierarchy.level_columns(level)
        record[f"micro_f1_level_{level}"] = float(_f1(tp[cols].sum(), pred[cols].sum(),
                                                      true[cols].sum()))
        record[f"macro_f1_level_{level}"] = float(f1[cols].mean())
    hp, hr, hf = hierarchical_prf(Yt, Yp, hierarchy)
    record.update(hier_precision=hp, hier_recall=hr, hier_f1=hf)
    lp, lr, lf = lca_prf(Yt, Yp, hierarchy)
    record.update(lca_precision=lp, lca_recall=lr, lca_f1=lf,
                  exact_match=exact_match(Yt, Yp, hierarchy))
    if proba is not None:
        record.update(average_precisions(Yt, proba, hierarchy))
    ratio, docs = inconsistency(Yp, hierarchy)
    record.update(inconsistency_ratio=ratio, inconsistent_doc_share=docs)
    if train_counts is not None:
        for name, cols in frequency_buckets(train_counts).items():
            record[f"macro_f1_{name}"] = float(f1[cols].mean()) if len(cols) else 0.0
            record[f"micro_f1_{name}"] = float(_f1(tp[cols].sum(), pred[cols].sum(),
                                                   true[cols].sum()))
    return record
