"""HiTIN (``hitin``), a global hierarchy-aware model (network: ``hitin_net``).

Zhu et al., ACL 2023, "HiTIN: Hierarchy-aware Tree Isomorphism Network for Hierarchical Text
Classification". From the paper: the label hierarchy (root left out, as an undirected
unweighted graph) is turned into a **coding tree** of height K that lowers its structural
entropy (K = 2 is the paper's default); the text vector is projected onto the label nodes
(HiAGM-TP's text propagation), which are the coding tree's leaves; the **tree isomorphism
network** passes the node vectors from the leaves up to the root, each node an MLP of the
sum of its children's (GIN-style, 2 layers); a read-out per layer (the layer's vectors
pooled, dropout, a linear map to all labels), the read-outs added into one sigmoid per
label; binary cross-entropy plus HiAGM's recursive regularisation of the output weights.
The text encoder is the one of every global baseline (``heads``: the HiAGM paper's TextCNN
over the token states of MiniLM-L6, or with ``encoder="textrcnn"`` of the TextRCNN).

What the paper leaves open, and what we chose:

* **Coding tree construction.** The paper builds it with the merge / combine / compress
  operators of Li & Pan (2016) (a binary tree compressed to height K). Ours builds the K
  levels bottom-up: each level the greedy entropy-lowering partition of the level below
  (adjacent groups merged, best merge first, while a merge lowers the K-level structural
  entropy), groups contracted into the next level's nodes, every leaf at depth K
  (``hitin_net.coding_tree``). Both minimise the same objective greedily; ours is
  deterministic (ties by node number) and linear-ish in the number of edges.
* **Read-out pooling**: the paper sums each layer's node vectors; the sum grows with the
  number of labels (2,000 on ICD-10-CM) and, at the shared learning rates, the first steps
  overshoot (measured on the synthetic corpus: training stalled at the prior). Ours divides
  the sum by the square root of the layer's node count, and starts every read-out at zero
  weights (scores start at the label priors, as for every method here).
* **Normalisation**: layer norm after each MLP instead of the authors' batch norm, so that a
  text's scores never depend on the other texts of its batch (our method contract) and no
  running statistics are needed.
* **Sizes**: ``node_dim=64`` per label node (as our hiagm default; the paper's 300 or 768
  does not fit 2,000-label hierarchies on CPUs), ``hidden_dim=128`` in the tree network (the
  authors' default 512), dropout = the shared ``dropout`` (0.1) everywhere.
* **Edges**: a DAG's label with two parents is simply a node with two neighbours in the
  graph (the coding tree needs no tree).
"""

from __future__ import annotations

from hmtc_bench.methods.neural.base import TINY_TEST_PARAMS, NeuralMethod
from hmtc_bench.methods.params import integer, number, sequence


class HiTIN(NeuralMethod):
    """HiTIN: the text vector projected onto the label nodes, a tree isomorphism network up
    the label hierarchy's coding tree, one read-out per tree layer. See the module docstring
    for what is the paper's and what is ours. Shared parameters: see
    ``hmtc_bench.methods.neural.base``.

    Parameters specific to HiTIN
    ----------------------------
    tree_height : height K of the coding tree (the paper: 2)
    kernel_sizes, n_filters : the TextCNN that reads the text vector (None: widths 2, 3, 4)
    node_dim : width of each label node's vector
    hidden_dim : width of the tree network's node vectors
    mlp_layers : linear layers in each node's MLP (the paper: 2)
    recursive_penalty : weight of the recursive regularisation of the output weights
    """

    PARAMS = {"tree_height": 2, "kernel_sizes": None, "n_filters": 100, "node_dim": 64,
              "hidden_dim": 128, "mlp_layers": 2, "recursive_penalty": 1e-6}
    PARAM_SPECS = {"tree_height": integer(ge=1), "kernel_sizes": sequence(integer(ge=1),
                                                                          none=True),
                   "n_filters": integer(ge=1), "node_dim": integer(ge=1),
                   "hidden_dim": integer(ge=1), "mlp_layers": integer(ge=1),
                   "recursive_penalty": number(ge=0)}

    @classmethod
    def get_test_params(cls) -> dict:
        return {**TINY_TEST_PARAMS, "n_filters": 16, "node_dim": 8, "hidden_dim": 16,
                "epochs": 10}

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.neural.heads import text_kernels
        from hmtc_bench.methods.neural.hitin_net import HiTINNet
        return HiTINNet(encoder_stack, hierarchy, height=self.tree_height,
                        kernel_sizes=text_kernels(self.kernel_sizes), n_filters=self.n_filters,
                        node_dim=self.node_dim, hidden_dim=self.hidden_dim,
                        mlp_layers=self.mlp_layers, recursive_penalty=self.recursive_penalty,
                        dropout=self.dropout)
