"""cond-softmax on hand-made trees: groups, statistics, path-product scores, the loss."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench.hierarchy import LabelHierarchy
from hmtc_bench.methods.neural.cond_softmax_net import CondSoftmaxNet, Groups

# root -> A, B; A -> A1, A2; B -> B1
TREE = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "A1"), ("A", "A2"),
                                  ("B", "B1")], tree=True)


def _Y(*label_sets):
    return TREE.encode([set(s) for s in label_sets])


# doc 4 holds both top-level labels (the root is then a sigmoid group); doc 3 stops at B
TRAIN = _Y({"A", "A1"}, {"A", "A2"}, {"B"}, {"A", "A1", "B", "B1"})


class _Encoder(nn.Module):
    hidden_size = 4


def _net(adjust=1.0, Y=TRAIN):
    net = CondSoftmaxNet(_Encoder(), TREE, dropout=0.0, adjust=adjust)
    net.init_from_labels(Y)
    return net


def _col(label):
    return TREE.index[label]


def test_groups_and_statistics():
    groups = Groups(TREE)
    assert len(groups) == 3                                   # root, A, B
    labels = [TREE.labels[i] if i >= 0 else "root" for i in groups.group_label]
    softmax, may_stop, child_adjust, stop_adjust = groups.statistics(TRAIN)
    kinds = dict(zip(labels, zip(softmax, may_stop)))
    assert kinds == {"root": (False, False), "A": (True, False), "B": (True, True)}
    # A is held by 3 documents, A1 by 2: (2 + 1) / (3 + 2 options)
    assert child_adjust[_col("A1")] == pytest.approx(math.log(3 / 5))
    # B held by 2, B1 by 1, one stops: B1 (1 + 1) / (2 + 2), stop (1 + 1) / 4
    assert child_adjust[_col("B1")] == pytest.approx(math.log(2 / 4))
    assert stop_adjust[labels.index("B")] == pytest.approx(math.log(2 / 4))
    # root sigmoids: A in 3 of 4 documents: log-odds of (3 + 1) / (4 + 2)
    assert child_adjust[_col("A")] == pytest.approx(math.log((4 / 6) / (2 / 6)))


def test_scores_are_path_products():
    """Zero weights: the root's sigmoids give 0.5, A's softmax 0.5 each, B's softmax over
    B1 and stop 0.5: every child scores its conditional times its parent's score."""
    net = _net()
    for layer in (net.output, net.stop):
        nn.init.zeros_(layer.weight)
    states, mask = torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.long)
    p = torch.sigmoid(net.classify(states, mask)).detach().numpy()
    expected = {"A": 0.5, "B": 0.5, "A1": 0.25, "A2": 0.25, "B1": 0.25}
    for label, value in expected.items():
        np.testing.assert_allclose(p[:, _col(label)], value, rtol=1e-5)


def test_children_never_score_above_parents():
    torch.manual_seed(0)
    net = _net()
    p = torch.sigmoid(net.classify(torch.randn(16, 5, 4) * 3,
                                   torch.ones(16, 5, dtype=torch.long))).detach().numpy()
    for child, parent in [("A1", "A"), ("A2", "A"), ("B1", "B")]:
        assert (p[:, _col(child)] <= p[:, _col(parent)] + 1e-7).all()


def test_loss_by_hand():
    """Document {B} at zero logits, no adjustment: the root's two sigmoids (log 2 each) and
    B's softmax choosing stop among {B1, stop} (log 2); A is not entered."""
    net = _net(adjust=0.0)
    for layer in (net.output, net.stop):
        nn.init.zeros_(layer.weight)
    target = torch.as_tensor(_Y({"B"}).toarray(), dtype=torch.float32)
    loss = net.training_loss(torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.long), target)
    assert loss.item() == pytest.approx(3 * math.log(2), rel=1e-5)
    # document {A, A1}: root sigmoids (2 log 2) and A's softmax picking A1 (log 2)
    target = torch.as_tensor(_Y({"A", "A1"}).toarray(), dtype=torch.float32)
    loss = net.training_loss(torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.long), target)
    assert loss.item() == pytest.approx(3 * math.log(2), rel=1e-5)


def test_adjustment_shifts_training_logits_only():
    net = _net(adjust=1.0)
    for layer in (net.output, net.stop):
        nn.init.zeros_(layer.weight)
    states, mask = torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.long)
    target = torch.as_tensor(_Y({"A", "A1"}).toarray(), dtype=torch.float32)
    plain = _net(adjust=0.0)
    plain.load_state_dict(net.state_dict())
    assert net.training_loss(states, mask, target).item() != pytest.approx(
        plain.training_loss(states, mask, target).item())
    assert torch.equal(net.classify(states, mask), plain.classify(states, mask))


def test_a_dag_is_refused():
    dag = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "C"), ("B", "C")])
    with pytest.raises(ValueError, match="needs a tree"):
        Groups(dag)


def test_single_path_corpus_uses_softmax_everywhere(synthetic):
    groups = Groups(synthetic.hierarchy)
    softmax, may_stop, _, _ = groups.statistics(sp.csr_matrix(synthetic.train.Y))
    paths = np.asarray(synthetic.train.Y[:, synthetic.hierarchy.level_columns(1)].sum(axis=1))
    assert softmax[0] == (paths.max() <= 1)
