"""HMCN-F (``hmcn``), a global hierarchy-aware baseline (network: ``hmcn_net``).

The text vector and the encoders are those of every global baseline (``heads``: the HiAGM
paper's TextCNN over the token states of MiniLM-L6 or, with ``encoder="textrcnn"``, of the
paper's TextRCNN); training, early stopping, checkpoints and devices those of every encoder
method (``neural.base``).

HMCN-F (Wehrmann, Cerri, Barros, ICML 2018)
    From the paper: one fully connected layer per level in a chain, each fed the previous
    layer and the input features; a local output per level (through a transition layer) and
    a global output over all labels from the last layer; final score
    ``beta * local + (1 - beta) * global`` (beta 0.5); loss = global + local binary
    cross-entropies; the hierarchical violation penalty ``lambda * max(0, p_child -
    p_parent)^2`` as an option (``violation_penalty``, off by default). 384 units per
    layer as in the paper. Ours: ReLU and dropout 0.1 (the paper used 0.6 dropout over
    fixed features); the penalty is averaged over texts and edges; output biases start at
    the labels' log-odds.

In a DAG, HMCN's levels are ``LabelHierarchy.level``: 1 + the longest path from the root.
"""

from __future__ import annotations

from hmtc_bench.methods.neural.base import TINY_TEST_PARAMS, NeuralMethod
from hmtc_bench.methods.params import integer, number, sequence


class HMCN(NeuralMethod):
    """HMCN-F: a chain of one fully connected layer per level over the text vector, local
    outputs per level and a global output, mixed with weight ``beta``. See the module
    docstring for what is the paper's and what is ours. Shared parameters: see
    ``hmtc_bench.methods.neural.base``.

    Parameters specific to HMCN
    ---------------------------
    kernel_sizes, n_filters : the TextCNN that reads the text vector (None: widths 2, 3, 4)
    global_size, local_size : units of the chain layers and of the local transition layers
    beta : weight of the local outputs in the final score (1 - beta for the global output)
    violation_penalty : lambda of the hierarchical violation penalty (0 = off)
    """

    PARAMS = {"kernel_sizes": None, "n_filters": 100, "global_size": 384, "local_size": 384,
              "beta": 0.5, "violation_penalty": 0.0}
    PARAM_SPECS = {"kernel_sizes": sequence(integer(ge=1), none=True),
                   "n_filters": integer(ge=1), "global_size": integer(ge=1),
                   "local_size": integer(ge=1), "beta": number(ge=0, le=1),
                   "violation_penalty": number(ge=0)}

    @classmethod
    def get_test_params(cls) -> dict:
        return {**TINY_TEST_PARAMS, "n_filters": 16, "global_size": 32, "local_size": 32}

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.neural.heads import label_edges, text_kernels
        from hmtc_bench.methods.neural.hmcn_net import HMCNNet
        return HMCNNet(encoder_stack, [hierarchy.level_columns(level)
                                       for level in range(1, hierarchy.depth + 1)],
                       label_edges(hierarchy), kernel_sizes=text_kernels(self.kernel_sizes),
                       n_filters=self.n_filters, global_size=self.global_size,
                       local_size=self.local_size, beta=self.beta,
                       violation_penalty=self.violation_penalty, dropout=self.dropout)
