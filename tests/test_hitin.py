"""HiTIN's coding tree on hand-made graphs, and its network's layers."""

import numpy as np
import pytest
import torch
from torch import nn

from hmtc_bench.methods.neural.heads import label_edges
from hmtc_bench.methods.neural.hitin_net import HiTINNet, coding_tree, structural_entropy


def _cliques_with_bridge():
    """Two 4-cliques (0-3, 4-7) joined by the edge 3-4."""
    edges = [(i, j) for block in (range(4), range(4, 8)) for i in block for j in block if i < j]
    return edges + [(3, 4)]


def test_two_cliques_become_two_groups():
    edges = _cliques_with_bridge()
    parents = coding_tree(edges, 8, height=2)
    groups = parents[0]
    assert len(set(groups[:4])) == 1 and len(set(groups[4:])) == 1
    assert groups[0] != groups[4]
    assert list(parents[1]) == [0, 0]              # both groups under the root


def test_the_tree_lowers_the_entropy_and_has_every_leaf_at_depth_k():
    edges = _cliques_with_bridge()
    flat = structural_entropy(edges, 8, coding_tree(edges, 8, height=1))
    expected_flat = -sum(d / 26 * np.log2(d / 26) for d in [3, 3, 3, 4, 4, 3, 3, 3])
    assert flat == pytest.approx(expected_flat)    # height 1: the degree entropy
    for height in (2, 3):
        parents = coding_tree(edges, 8, height=height)
        assert len(parents) == height and parents[-1].max() == 0
        for child, parent in zip(parents, parents[1:]):
            assert len(parent) == child.max() + 1    # every node has a parent above it
        assert structural_entropy(edges, 8, parents) < flat


def test_deterministic_and_isolated_nodes_kept():
    edges = [(0, 1), (1, 2)]                        # node 3 has no edge
    a, b = coding_tree(edges, 4, 2), coding_tree(edges, 4, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a[0]) == 4 and a[0][3] not in a[0][:3]
    with pytest.raises(ValueError, match="height >= 1"):
        coding_tree(edges, 4, 0)


class _Encoder(nn.Module):
    hidden_size = 6


def test_network_reads_every_layer(synthetic):
    net = HiTINNet(_Encoder(), synthetic.hierarchy, height=2, kernel_sizes=(2,), n_filters=4,
                   node_dim=3, hidden_dim=5)
    sizes = net.tree_sizes
    assert sizes[0] == len(synthetic.hierarchy) and sizes[-1] == 1 and len(sizes) == 3
    assert len(net.readouts) == 3
    net.eval()
    states, mask = torch.randn(4, 7, 6), torch.ones(4, 7, dtype=torch.long)
    logits = net.classify(states, mask)
    assert logits.shape == (4, len(synthetic.hierarchy))
    # a text's scores do not depend on its batch (layer norm, not batch norm)
    torch.testing.assert_close(net.classify(states[:1], mask[:1]), logits[:1])
    target = torch.zeros(4, len(synthetic.hierarchy))
    net.train()
    assert net.training_loss(states, mask, target).item() > 0
    assert len(label_edges(synthetic.hierarchy)) == net.edge_index.shape[1]
