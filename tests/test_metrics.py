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
