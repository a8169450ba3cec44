"""``cond-softmax``: a BERT encoder with a conditional-softmax loss, logit adjustment and
top-down scores (network: ``cond_softmax_net``), after "Revisiting Hierarchical Text
Classification: Inference and Metrics" (Plaud et al., CoNLL 2024).

The text vector is the masked mean of the encoder's token states (the shared encoder,
MiniLM-L6 by default, trained as every encoder method is, ``neural.base``). Each internal
node of the label tree (and the root) has a distribution over its children:

* **softmax groups**: where no training document holds two children of the node, a softmax
  over its children, plus a "stop here" option where some training document holds the node
  but none of its children (gold paths that end at an internal node); the loss is the
  negative log-likelihood of the gold child (or of stopping) at every node the document
  reaches;
* **sigmoid groups** (our answer for multi-path corpora, e.g. RCV1-V2, where a document
  holds several children of one node): an independent "descend into this child" sigmoid per
  child, trained with binary cross-entropy at every node the document reaches.

The kind of each node is decided on the training labels, node by node, so a corpus can mix
both (single-path below a multi-path top level).

**Logit adjustment** (Menon et al., 2021, as the Revisiting paper uses it): in training, each
child's logit is shifted by ``adjust`` x log P(child | parent) counted on the training labels
(add-one smoothed, stopping counted as a child; the log-odds of it for sigmoid children);
prediction uses the raw logits. The shift lets the rare children win more often than their
frequency alone would give them. ``adjust=0`` is the plain conditional softmax.

**Scores and decoding**: a label's score is the product of the conditional probabilities
along its path (its marginal probability), so no label scores above its parent and every
threshold gives a consistent label set; thresholding at 0.5 keeps at most one child of a
softmax node (descending while the path's probability stays above 0.5: top-down decoding).
Output biases start at 0 (the adjustment carries the prior). Trees only: a label with two
parents would have two conditional distributions (refused with an error).
"""

from __future__ import annotations

from hmtc_bench.methods.neural.base import TINY_TEST_PARAMS, NeuralMethod
from hmtc_bench.methods.params import number


class CondSoftmax(NeuralMethod):
    """Conditional softmax per internal node (sigmoids where documents hold several
    children), logit adjustment in training, path-product scores. See the module docstring.
    Shared parameters: see ``hmtc_bench.methods.neural.base``.

    Parameters specific to cond-softmax
    -----------------------------------
    adjust : weight of the logit adjustment (1 = Menon et al.'s; 0 = none)
    """

    TAGS = {**NeuralMethod.TAGS, "supports_dag": False, "consistent_by_construction": True}
    PARAMS = {"adjust": 1.0}
    PARAM_SPECS = {"adjust": number(ge=0)}

    @classmethod
    def get_test_params(cls) -> dict:
        return dict(TINY_TEST_PARAMS)

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.neural.cond_softmax_net import CondSoftmaxNet
        return CondSoftmaxNet(encoder_stack, hierarchy, dropout=self.dropout,
                              adjust=self.adjust)
