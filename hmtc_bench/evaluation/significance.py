"""Is a difference real? Paired tests between methods, and ranks across datasets.

* ``paired_bootstrap``: two methods' predictions on the same test documents; the documents
  are resampled with replacement (the same resample for both) and the difference of micro-
  or macro-F1 recomputed on each: its percentile confidence interval, and the share of
  resamples on the other side of 0 (a two-sided p-value, counted as (k + 1) / (r + 1) so
  that r resamples never claim p = 0: the smallest it reports is 2 / (r + 1)).
* ``paired_seed_test``: per-seed metric values of two methods on the same splits; a paired
  t-test of the per-seed differences (``scipy.stats.ttest_rel``).
* ``friedman``: a (datasets x methods) table of scores; average ranks (1 = best), the
  Friedman test (``scipy.stats.friedmanchisquare``) and the Nemenyi critical difference
  (Demšar 2006): two methods whose average ranks differ by less than ``cd`` are not
  significantly different at ``alpha``. The critical values q_alpha are the studentized
  range quantiles over sqrt(2) (``scipy.stats.studentized_range``), which reproduce
  Demšar's Table 5.

Only scipy is used: it has every test needed here, and it is already a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

METRICS = ("micro_f1", "macro_f1")


def _indicator(Y) -> sp.csr_matrix:
    Y = sp.csr_matrix(Y)
    Y.eliminate_zeros()
    return Y.astype(bool).astype(np.float64)


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=np.float64),
                     where=denom > 0)


@dataclass
class Bootstrap:
    metric: str
    difference: float      # metric(a) - metric(b) on the test documents
    low: float             # confidence interval of the difference
    high: float
    p_value: float
    level: float
    n_resamples: int

    @property
    def significant(self) -> bool:
        return not (self.low <= 0.0 <= self.high)


def paired_bootstrap(Y_true, pred_a, pred_b, metric: str = "micro_f1",
                     n_resamples: int = 1000, level: float = 0.95, seed: int = 0,
                     chunk: int = 100) -> Bootstrap:
    """The bootstrap over documents of metric(a) - metric(b) (see the module docstring)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: choose one of {METRICS}")
    T, A, B = _indicator(Y_true), _indicator(pred_a), _indicator(pred_b)
    if not (T.shape == A.shape == B.shape):
        raise ValueError(f"shapes differ: true {T.shape}, a {A.shape}, b {B.shape}")
    n = T.shape[0]
    counts = {}
    for name, P in (("a", A), ("b", B)):
        tp = T.multiply(P).tocsr()
        counts[name] = (tp, (P - tp).tocsr(), (T - tp).tocsr())
        if metric == "micro_f1":     # micro-F1 needs only each document's totals
            counts[name] = tuple(np.asarray(m.sum(axis=1)).ravel() for m in counts[name])

    def score(weights, name):        # weights (r, n): how often each document is drawn
        if metric == "micro_f1":
            return _f1(*(weights @ totals for totals in counts[name]))
        tp, fp, fn = (np.asarray((sp.csr_matrix(weights) @ m).todense()) for m in counts[name])
        return _f1(tp, fp, fn).mean(axis=1)

    ones = np.ones((1, n))
    observed = float(score(ones, "a")[0] - score(ones, "b")[0])
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(r, n))
        cells = (np.arange(r)[:, None] * n + draws).ravel()
        weights = np.bincount(cells, minlength=r * n).reshape(r, n).astype(np.float64)
        diffs.append(score(weights, "a") - score(weights, "b"))
    diffs = np.concatenate(diffs)
    alpha = 1 - level
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    beyond = min(np.count_nonzero(diffs <= 0), np.count_nonzero(diffs >= 0))
    p = 2 * (beyond + 1) / (len(diffs) + 1)
    return Bootstrap(metric, observed, float(low), float(high), float(min(p, 1.0)), level,
                     n_resamples)


def paired_seed_test(a, b) -> dict:
    """Paired t-test of per-seed values ``a[i]``, ``b[i]`` (same seed and split)."""
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("a and b must be 1-d of the same length (one value per seed)")
    diff = a - b
    if len(diff) < 2:
        return {"mean_difference": float(diff.mean()) if len(diff) else 0.0, "p_value": 1.0,
                "n": int(len(diff))}
    if np.allclose(diff, diff[0]):        # no spread: t undefined; exact when all zero
        return {"mean_difference": float(diff[0]),
                "p_value": 1.0 if diff[0] == 0 else 0.0, "n": int(len(diff))}
    result = stats.ttest_rel(a, b)
    return {"mean_difference": float(diff.mean()), "p_value": float(result.pvalue),
            "n": int(len(diff))}


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Demšar's q_alpha for k methods: the studentized range quantile over sqrt(2)."""
    from scipy.stats import studentized_range
    return float(studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def average_ranks(table) -> np.ndarray:
    """(datasets x methods) scores, higher better -> mean rank per method (ties share)."""
    from scipy.stats import rankdata
    table = np.asarray(table, dtype=float)
    return rankdata(-table, axis=1).mean(axis=0)


def friedman(table, alpha: float = 0.05) -> dict:
    """Average ranks, the Friedman test and the Nemenyi critical difference of a
    (datasets x methods) score table (higher better)."""
    from scipy import stats
    table = np.asarray(table, dtype=float)
    n, k = table.shape
    ranks = average_ranks(table)
    out = {"ranks": ranks.tolist(), "n_datasets": n, "n_methods": k, "alpha": alpha,
           "cd": nemenyi_q(k, alpha) * np.sqrt(k * (k + 1) / (6 * n)) if k >= 2 else 0.0}
    if k >= 3 and n >= 2:
        statistic, p = stats.friedmanchisquare(*table.T)
        out.update(statistic=float(statistic), p_value=float(p))
    else:
        out.update(statistic=None, p_value=None)
    return out


__all__ = ["Bootstrap", "average_ranks", "friedman", "nemenyi_q", "paired_bootstrap",
           "paired_seed_test"]
