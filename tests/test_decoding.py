import numpy as np
import pytest

from hmtc_bench.evaluation import decode
from hmtc_bench.evaluation.metrics import inconsistency
from hmtc_bench.hierarchy import LabelHierarchy


@pytest.fixture
def tree():
    return LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "A1"), ("A1", "A1x"),
                                      ("B", "B1")])


def test_threshold_and_top_down(tree):
    # order: A, B, A1, B1, A1x
    P = np.array([[0.9, 0.2, 0.8, 0.7, 0.6],
                  [0.4, 0.6, 0.9, 0.1, 0.9]])
    assert tree.decode(decode(P, tree, "threshold")) == [["A", "A1", "B1", "A1x"],
                                                         ["B", "A1", "A1x"]]
    assert tree.decode(decode(P, tree, "top-down")) == [["A", "A1", "A1x"], ["B"]]
    assert tree.decode(decode(P, tree, "threshold", threshold=0.85)) == [["A"], ["A1", "A1x"]]


def test_top_down_is_consistent_on_random_scores(synthetic):
    h = synthetic.hierarchy
    P = np.random.default_rng(0).random((300, len(h)))
    assert inconsistency(decode(P, h, "threshold"), h)[0] > 0
    assert inconsistency(decode(P, h, "top-down"), h) == (0.0, 0.0)


def test_top_down_dag_needs_all_parents():
    dag = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "C"), ("B", "C")])
    P = np.array([[0.9, 0.1, 0.9], [0.9, 0.9, 0.9]])  # A, B, C
    assert dag.decode(decode(P, dag, "top-down")) == [["A"], ["A", "B", "C"]]


def test_bad_policy_and_shape(tree):
    with pytest.raises(ValueError, match="unknown decoding policy"):
        decode(np.zeros((1, 5)), tree, "greedy")
    with pytest.raises(ValueError, match="shape"):
        decode(np.zeros((1, 4)), tree)
