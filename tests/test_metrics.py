import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score

from hmtc_bench.evaluation.metrics import (evaluate, frequency_buckets, hierarchical_prf,
                                           inconsistency, macro_f1, micro_f1)
from hmtc_bench.hierarchy import LabelHierarchy


@pytest.fixture
def tree():
    # A(A1(A1x), A2), B(B1), C (never in the test set)
    return LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("Root", "C"), ("A", "A1"),
                                      ("A", "A2"), ("A1", "A1x"), ("B", "B1")])


def _random(rng, n, L, p):
    return sp.csr_matrix(rng.random((n, L)) < p, dtype=np.int8)


@pytest.mark.parametrize("seed", range(5))
def test_micro_macro_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    Yt, Yp = _random(rng, 200, 17, 0.15), _random(rng, 200, 17, 0.2)
    Yt = Yt.tolil()
    Yt[:, 3] = 0  # a label without test support
    Yt = Yt.tocsr()
    assert micro_f1(Yt, Yp) == pytest.approx(
        f1_score(Yt.toarray(), Yp.toarray(), average="micro", zero_division=0))
    assert macro_f1(Yt, Yp) == pytest.approx(
        f1_score(Yt.toarray(), Yp.toarray(), average="macro", zero_division=0))
    present = np.flatnonzero(Yt.toarray().sum(axis=0) > 0)
    assert macro_f1(Yt, Yp, present_only=True) == pytest.approx(
        f1_score(Yt.toarray()[:, present], Yp.toarray()[:, present], average="macro",
                 zero_division=0))


def test_evaluate_record_per_level_against_sklearn(tree):
    rng = np.random.default_rng(3)
    Yt = tree.close_matrix(_random(rng, 100, len(tree), 0.2))
    Yp = _random(rng, 100, len(tree), 0.25)
    record = evaluate(Yt, Yp, tree, train_counts=np.arange(len(tree)))
    T, P = Yt.toarray(), Yp.toarray()
    for level in (1, 2, 3):
        cols = tree.level_columns(level)
        assert record[f"micro_f1_level_{level}"] == pytest.approx(
            f1_score(T, P, labels=cols, average="micro", zero_division=0))
        assert record[f"macro_f1_level_{level}"] == pytest.approx(
            f1_score(T, P, labels=cols, average="macro", zero_division=0))
    assert record["micro_f1"] == pytest.approx(f1_score(T, P, average="micro", zero_division=0))
    expected = {"micro_f1", "macro_f1", "macro_f1_present", "hier_precision", "hier_recall",
                "hier_f1", "inconsistency_ratio", "inconsistent_doc_share", "macro_f1_head",
                "macro_f1_torso", "macro_f1_tail", "micro_f1_tail"}
    assert expected <= set(record)


def test_absent_labels_count_zero_in_macro(tree):
    Yt = tree.encode([["A", "A2"], ["B", "B1"]])
    record = evaluate(Yt, Yt, tree)
    present = 4
    assert record["macro_f1_present"] == 1.0
    assert record["macro_f1"] == pytest.approx(present / len(tree))


def test_hierarchical_prf_by_hand(tree):
    # true {A, A1, A1x}; predicted {A2} -> augmented {A, A2}: tp 1, |P| 2, |T| 3
    Yt = tree.encode([["A", "A1", "A1x"]])
    Yp = tree.encode([["A2"]])
    hp, hr, hf = hierarchical_prf(Yt, Yp, tree)
    assert (hp, hr) == (pytest.approx(0.5), pytest.approx(1 / 3))
    assert hf == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_inconsistency_by_hand(tree):
    Yp = tree.encode([["A1x"], ["A", "A1"], ["B1", "A2", "A"]])
    ratio, docs = inconsistency(Yp, tree)
    # inconsistent labels: A1x (no A1), B1 (no B); 6 predicted labels; 2 of 3 documents
    assert ratio == pytest.approx(2 / 6)
    assert docs == pytest.approx(2 / 3)


def test_inconsistency_dag_needs_all_parents():
    dag = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "C"), ("B", "C")])
    assert inconsistency(dag.encode([["A", "C"]]), dag)[0] == pytest.approx(0.5)
    assert inconsistency(dag.encode([["A", "B", "C"]]), dag)[0] == 0


def test_frequency_buckets_cover_all_labels():
    buckets = frequency_buckets(np.array([5, 1, 9, 0, 3, 7, 2]))
    assert sorted(np.concatenate(list(buckets.values()))) == list(range(7))
    assert set(buckets["head"]) == {2, 5, 0}
    assert 3 in buckets["tail"]


def test_shape_mismatch_is_an_error(tree):
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate(sp.csr_matrix((2, len(tree))), sp.csr_matrix((3, len(tree))), tree)


# ---------------------------------------------------------------------- round 2 metrics
def test_average_precision_equals_scikit_learns(synthetic):
    from sklearn.metrics import average_precision_score

    from hmtc_bench.evaluation.metrics import average_precision, average_precisions
    rng = np.random.default_rng(4)
    h = synthetic.hierarchy
    Y = synthetic.test.Y.toarray()
    P = np.clip(Y * 0.3 + np.round(rng.random(Y.shape), 2), 0, 1)   # ties included
    got = average_precisions(Y, P, h)
    present = Y.sum(axis=0) > 0
    assert got["micro_ap"] == pytest.approx(average_precision_score(Y, P, average="micro"))
    assert got["macro_ap"] == pytest.approx(
        average_precision_score(Y[:, present], P[:, present], average="macro"))
    for level in range(1, h.depth + 1):
        cols = h.level_columns(level)
        assert got[f"micro_ap_level_{level}"] == pytest.approx(
            average_precision_score(Y[:, cols], P[:, cols], average="micro"))
    for _ in range(20):
        y, s = rng.random(30) < 0.4, np.round(rng.random(30), 1)
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_lca_f1_on_textbook_cases():
    """Kosmopoulos et al. (2015): a sibling error costs half; a shared high ancestor is
    counted once, not once per label as ancestor augmentation does."""
    from hmtc_bench.evaluation.metrics import exact_match, hierarchical_prf, lca_prf
    h = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "A1"), ("A", "A2"),
                                   ("A1", "A1a"), ("A1", "A1b"), ("B", "B1")])
    same = h.encode([["A", "A1", "A1a"]])
    assert lca_prf(same, same, h) == (1.0, 1.0, 1.0)
    # A1a vs A1b: LCA A1, augmented {A1a, A1} and {A1b, A1}: 1 of 2
    assert lca_prf(same, h.encode([["A", "A1", "A1b"]]), h) == (0.5, 0.5, 0.5)
    # ancestor augmentation counts A and A1 as well: 2 of 3
    assert hierarchical_prf(same, h.encode([["A", "A1", "A1b"]]), h)[2] == pytest.approx(2 / 3)
    # A1a vs B1: only the root in common: nothing shared
    assert lca_prf(same, h.encode([["B", "B1"]]), h) == (0.0, 0.0, 0.0)
    # gold A1a, predicted A1a and A2: A2 pairs with A1a at A, so both sets take the way up
    # to A: pred {A1a, A2, A}, gold {A1a, A1, A}: 2 shared of 3 each
    p, r, f = lca_prf(same, h.encode([["A", "A1", "A1a", "A2"]]), h)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert exact_match(h.encode([["A", "A1", "A1a"], ["B"]]),
                       h.encode([["A1a"], ["B", "B1"]]), h) == 0.5   # closed, then equal


def test_threshold_curve_is_micro_f1_at_each_threshold():
    from sklearn.metrics import f1_score

    from hmtc_bench.evaluation.metrics import CURVE_THRESHOLDS, threshold_curve
    rng = np.random.default_rng(3)
    proba = rng.random((80, 9))
    truth = rng.random((80, 9)) < 0.25
    curve = threshold_curve(sp.csr_matrix(truth), proba)
    assert list(curve) == [f"{t:.2f}" for t in CURVE_THRESHOLDS]
    for t in CURVE_THRESHOLDS:
        expected = f1_score(truth, proba >= t, average="micro", zero_division=0)
        assert curve[f"{t:.2f}"] == pytest.approx(expected)
