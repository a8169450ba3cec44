import numpy as np
import pytest
import scipy.sparse as sp

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


# ---------------------------------------------------------------------- round 2 policies
from hmtc_bench.errors import ParameterError  # noqa: E402
from hmtc_bench.evaluation.decoding import (best_threshold, check_policy,  # noqa: E402
                                            fit_decoder, parse_policy)

# tree order: A, B, A1, B1, A1x (levels 1, 1, 2, 2, 3)
P2 = np.array([[0.9, 0.2, 0.8, 0.7, 0.6],
               [0.4, 0.6, 0.9, 0.1, 0.9],
               [0.1, 0.2, 0.3, 0.1, 0.2]])


def test_clamp_caps_children_at_their_parents(tree):
    assert tree.decode(decode(P2, tree, "clamp")) == [["A", "A1", "A1x"], ["B"], []]
    assert tree.decode(decode(P2, tree, "clamp", threshold=0.15)) == \
        [["A", "B", "A1", "B1", "A1x"], ["A", "B", "A1", "A1x"], ["B"]]


def test_level_top_k(tree):
    assert tree.decode(decode(P2, tree, "level-top-k")) == [["A", "A1", "A1x"],
                                                            ["B", "B1"], ["B", "B1"]]
    assert tree.decode(decode(P2, tree, "level-top-k:2")) == \
        [["A", "B", "A1", "B1", "A1x"]] * 3


def test_mandatory_leaf_ends_every_path_at_a_leaf(tree):
    # row 0: A passes, A1 passes, A1x passes; B fails. Row 1: B passes -> B1 forced.
    # row 2: nothing passes -> the best top label (B) and its best child (B1).
    assert tree.decode(decode(P2, tree, "mandatory-leaf")) == [["A", "A1", "A1x"],
                                                               ["B", "B1"], ["B", "B1"]]
    dag = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "C"), ("B", "C")])
    with pytest.raises(ParameterError, match="needs a tree"):
        decode(np.zeros((1, 3)), dag, "mandatory-leaf")


def test_policy_names_are_checked():
    assert parse_policy("level-top-k:3") == ("level-top-k", 3)
    for bad in ("beam", "top-down:2", "level-top-k:0", "level-top-k:x"):
        with pytest.raises(ParameterError):
            parse_policy(bad)


def test_best_threshold_maximises_f1_at_a_midpoint():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    truth = np.array([True, True, False, True, False])
    t, f1 = best_threshold(scores, truth)
    # cuts: 1 -> F1 2/4, 2 -> 4/5, 3 -> 4/6, 4 -> 6/7, 5 -> 6/8: best is 4 (>= 0.3)
    assert f1 == pytest.approx(6 / 7) and t == pytest.approx(0.25)
    assert best_threshold(scores, np.zeros(5, bool), default=0.4) == (0.4, 0.0)
    tied = best_threshold(np.array([0.5, 0.5, 0.1]), np.array([True, False, False]))
    assert tied[0] == pytest.approx(0.3)       # ties are cut together


def test_tuned_thresholds_per_label_with_a_level_fallback(tree):
    rng = np.random.default_rng(0)
    n = 40
    Y = np.zeros((n, 5), dtype=int)
    Y[:20, 0] = 1                                # A: 20 positives, scores separate at 0.3
    Y[:2, 1] = 1                                 # B: 2 positives: too few, level fallback
    P = rng.random((n, 5)) * 0.2
    P[:20, 0] = 0.35 + rng.random(20) * 0.1
    P[:2, 1] = 0.9
    decoder = fit_decoder("tuned", tree, 0.5, P, Y)
    t = decoder.thresholds
    assert P[20:, 0].max() < t[0] < P[:20, 0].min()
    assert t[1] == pytest.approx(decoder.params["level_thresholds"]["1"])
    assert decoder.params["own_thresholds"] == 1
    assert t[4] == 0.5                           # level 3: no dev positive, the default
    assert (decoder(P).toarray()[:, 0] == Y[:, 0]).all()


def test_tuned_global_is_one_threshold_for_micro_f1(tree):
    Y = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 1, 0]])
    P = np.array([[0.3, 0.1, 0.35, 0.0, 0.05], [0.1, 0.4, 0.0, 0.32, 0.0]])
    decoder = fit_decoder("tuned-global", tree, 0.5, P, Y)
    assert decoder.params["dev_micro_f1"] == 1.0
    assert 0.1 < decoder.params["threshold"] < 0.3


def test_fitted_policies_need_a_dev_split(tree):
    with pytest.raises(ParameterError, match="fitted on the dev split"):
        fit_decoder("tuned", tree, 0.5, None, None)
    check_policy("tuned", tree, has_dev=True)
    with pytest.raises(ValueError, match="use fit_decoder"):
        decode(P2, tree, "tuned")


@pytest.mark.parametrize("policy", ["clamp", "level-top-k", "level-top-k:2", "mandatory-leaf",
                                    "top-down"])
def test_hierarchical_policies_are_consistent_on_random_scores(synthetic, policy):
    h = synthetic.hierarchy
    P = np.random.default_rng(1).random((200, len(h)))
    assert inconsistency(decode(P, h, policy), h) == (0.0, 0.0)


def test_dev_predictions_of_fitted_policies_are_cross_fitted():
    """A dev row's prediction under a policy fitted on dev never depends on that row's own
    labels (each half is decoded by thresholds fitted on the other half)."""
    from hmtc_bench.data import load_dataset
    from hmtc_bench.evaluation.decoding import dev_predictions
    data = load_dataset("synthetic")
    rng = np.random.default_rng(1)
    P = np.clip(data.dev.Y.toarray() * 0.35 + rng.random(data.dev.Y.shape) * 0.6, 0, 1)
    order = np.random.default_rng(0).permutation(P.shape[0])
    first = np.sort(np.array_split(order, 2)[0])
    changed = data.dev.Y.tolil()
    for i in first:                 # the first half's labels scrambled
        changed[i] = data.dev.Y[rng.integers(P.shape[0])].toarray()
    for policy in ("tuned", "tuned-global"):
        a = dev_predictions(policy, data.hierarchy, 0.5, P, data.dev.Y)
        b = dev_predictions(policy, data.hierarchy, 0.5, P, changed.tocsr())
        assert (a[first] != b[first]).nnz == 0
    plain = dev_predictions("threshold", data.hierarchy, 0.5, P, data.dev.Y)
    assert (plain != sp.csr_matrix(P >= 0.5, dtype=np.int8)).nnz == 0


def test_a_fitted_decoder_rebuilt_from_its_recorded_params(tree):
    from hmtc_bench.evaluation.decoding import fitted_decoder
    L = len(tree)             # 5 labels (columns in the hierarchy's order)
    P = np.array([[0.9, 0.2, 0.35, 0.1, 0.6], [0.3, 0.8, 0.0, 0.5, 0.25]])
    cuts = [0.5, 0.5, 0.3, 0.6, 0.2]
    got = fitted_decoder("tuned", tree, {"thresholds": cuts})(P).toarray()
    assert got.tolist() == (P >= np.array(cuts)).astype(int).tolist()
    got = fitted_decoder("tuned-global", tree, {"threshold": 0.3, "n_dev": 9})(P).toarray()
    assert got.tolist() == (P >= 0.3).astype(int).tolist()
    # a policy that fits nothing ignores the params; a fitted one needs its own
    assert (fitted_decoder("threshold", tree, None)(P).toarray() == (P >= 0.5)).all()
    for policy, params, message in [("tuned", None, "no thresholds fitted"),
                                    ("tuned", {"threshold": 0.3}, "no thresholds fitted"),
                                    ("tuned", {"thresholds": cuts[:3]}, f"3 thresholds for {L}"),
                                    ("tuned", {"thresholds": [2.0] * L}, "in \\[0, 1\\]")]:
        with pytest.raises(ValueError, match=message):
            fitted_decoder(policy, tree, params)
