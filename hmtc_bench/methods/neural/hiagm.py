"""HiAGM-TP (``hiagm``), a global hierarchy-aware baseline (network: ``hiagm_net``).

The text vector and the encoders are those of every global baseline (``heads``: the HiAGM
paper's TextCNN over the token states of MiniLM-L6 or, with ``encoder="textrcnn"``, of the
paper's TextRCNN); training, early stopping, checkpoints and devices those of every encoder
method (``neural.base``).

HiAGM-TP (Zhou et al., ACL 2020)
    From the paper: the text feature vector projected by a linear map onto every label node
    (``node_dim`` 300 in the paper), a hierarchy-aware GCN over the label tree with
    top-down edges weighted by the prior P(child | parent) counted on the training labels,
    bottom-up edges of weight 1 and self-loops, each message gated and given a per-node
    bias; then one sigmoid per label read from all nodes' vectors (``output="flatten"``);
    recursive regularisation of the output weights (1e-6). Ours: the root node is left out
    (its top-level children get no top-down message); one GCN layer; gates computed from
    the message's source node; edge weights fixed at the priors. The paper's flatten output
    has (labels x node_dim) x labels weights, which does not fit 2,000-label hierarchies:
    our defaults are ``node_dim=64, output="per-node"`` (one weight vector per node, read
    from that node's vector), and ``node_dim=300, output="flatten"`` is the paper's
    configuration (used in ``baselines/global.yaml`` on RCV1-V2 and 20 Newsgroups). The
    TreeLSTM structure encoder (HiAGM-LA's alternative) is not implemented.

In a DAG a label with two parents gets a top-down message from each.
"""

from __future__ import annotations

from hmtc_bench.methods.neural.base import TINY_TEST_PARAMS, NeuralMethod
from hmtc_bench.methods.params import choice, integer, number, sequence


class HiAGM(NeuralMethod):
    """HiAGM-TP: the text vector projected onto the label nodes, a hierarchy-aware GCN with
    prior-weighted top-down and bottom-up edges, one sigmoid per label. See the module
    docstring for what is the paper's and what is ours. Shared parameters: see
    ``hmtc_bench.methods.neural.base``.

    Parameters specific to HiAGM
    ----------------------------
    kernel_sizes, n_filters : the TextCNN that reads the text vector (None: widths 2, 3, 4)
    node_dim : width of each label node's vector (the paper: 300)
    output : "per-node" (default; scales to large label sets) or "flatten" (the paper's)
    recursive_penalty : weight of the recursive regularisation of the output weights
    """

    PARAMS = {"kernel_sizes": None, "n_filters": 100, "node_dim": 64, "output": "per-node",
              "recursive_penalty": 1e-6}
    PARAM_SPECS = {"kernel_sizes": sequence(integer(ge=1), none=True),
                   "n_filters": integer(ge=1), "node_dim": integer(ge=1),
                   "output": choice("per-node", "flatten"), "recursive_penalty": number(ge=0)}

    @classmethod
    def get_test_params(cls) -> dict:
        return {**TINY_TEST_PARAMS, "n_filters": 16, "node_dim": 8}

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.neural.heads import label_edges, text_kernels
        from hmtc_bench.methods.neural.hiagm_net import HiAGMNet
        return HiAGMNet(encoder_stack, len(hierarchy), label_edges(hierarchy),
                        kernel_sizes=text_kernels(self.kernel_sizes), n_filters=self.n_filters,
                        node_dim=self.node_dim, output=self.output,
                        recursive_penalty=self.recursive_penalty, dropout=self.dropout)
