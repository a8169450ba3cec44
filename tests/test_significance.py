"""The significance tests on cases with known answers."""

import numpy as np
import pytest
import scipy.sparse as sp

from hmtc_bench.evaluation.metrics import macro_f1, micro_f1
from hmtc_bench.evaluation.significance import (average_ranks, friedman, nemenyi_q,
                                                paired_bootstrap, paired_seed_test)


def test_nemenyi_q_reproduces_demsars_table():
    # Demšar (2006), Table 5(a), alpha = 0.05
    for k, q in [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (10, 3.164)]:
        assert nemenyi_q(k) == pytest.approx(q, abs=1e-3)


def test_friedman_on_demsars_example_ranks():
    """Demšar's C4.5 example: 4 methods on 14 data sets with average ranks 3.143, 2.000,
    2.893, 1.964; chi2_F = 9.28 and CD = 1.25. A table with exactly those rank sums."""
    # 14 rows of ranks (one with a tie) whose column sums are 44, 28, 40.5 and 27.5
    ranks = np.array([(1, 2, 3, 4), (1, 2, 4, 3), (2, 1, 4, 3), (3, 1, 4, 2), (3, 2, 4, 1),
                      (3, 2, 4, 1), (3, 4, 2, 1), (4, 1, 2, 3), (4, 1, 2, 3), (4, 1, 3, 2),
                      (4, 2, 3, 1), (4, 3, 2, 1), (4, 3, 2, 1), (4, 3, 1.5, 1.5)])
    table = -ranks                         # higher score = better = lower rank
    got = friedman(table)
    assert got["ranks"] == pytest.approx([44 / 14, 28 / 14, 40.5 / 14, 27.5 / 14], abs=1e-9)
    assert got["cd"] == pytest.approx(1.2536, abs=1e-3)
    k, n, r = 4, 14, np.array(got["ranks"])
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(r ** 2) - k * (k + 1) ** 2 / 4)
    assert chi2 == pytest.approx(9.28, abs=0.02)
    assert got["p_value"] < 0.05


def test_average_ranks_share_ties():
    assert average_ranks([[0.9, 0.9, 0.1]]).tolist() == [1.5, 1.5, 3.0]


def test_paired_seed_test():
    assert paired_seed_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])["p_value"] == 1.0
    result = paired_seed_test([0.61, 0.72, 0.55, 0.66], [0.60, 0.70, 0.52, 0.65])
    from scipy import stats
    assert result["p_value"] == pytest.approx(
        stats.ttest_rel([0.61, 0.72, 0.55, 0.66], [0.60, 0.70, 0.52, 0.65]).pvalue)


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    Y = sp.csr_matrix(rng.random((300, 8)) < 0.3, dtype=np.int8)
    noisy = Y.toarray().copy()
    flip = rng.random(noisy.shape) < 0.15
    noisy[flip] = 1 - noisy[flip]
    return Y, sp.csr_matrix(noisy)


def test_bootstrap_of_identical_predictions_is_exactly_zero(labels):
    Y, P = labels
    result = paired_bootstrap(Y, P, P, n_resamples=200)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.significant


@pytest.mark.parametrize("metric, function", [("micro_f1", micro_f1), ("macro_f1", macro_f1)])
def test_bootstrap_difference_and_a_clear_winner(labels, metric, function):
    Y, P = labels
    result = paired_bootstrap(Y, Y, P, metric=metric, n_resamples=300, seed=1)
    assert result.difference == pytest.approx(function(Y, Y) - function(Y, P))
    assert result.significant and result.low > 0
    # every resample favours a, yet 300 resamples cannot claim more than p = 2 / 301
    assert result.p_value == pytest.approx(2 / 301)
    # a tiny difference (one document changed) is not significant
    Q = P.toarray().copy()
    Q[0] = Y.toarray()[0]
    close = paired_bootstrap(Y, sp.csr_matrix(Q), P, metric=metric, n_resamples=300)
    assert not close.significant
