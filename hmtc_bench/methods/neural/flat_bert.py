"""flat-BERT (``flat-bert``): the baseline of the encoder methods (network:
``flat_bert_net``).

The same encoder as msml, the mean of its token states, and one sigmoid layer over all
labels; the same training loop, budget and early stopping as msml.
"""

from __future__ import annotations

from hmtc_bench.methods.neural.base import TINY_TEST_PARAMS, NeuralMethod
from hmtc_bench.methods.params import choice


class FlatBERT(NeuralMethod):
    """flat-BERT: the encoder, mean-pooled token states (``pooling="mean"``, or ``"cls"``),
    dropout and one sigmoid layer over all labels. The same encoder, training loop, budget
    and early stopping as MSML (shared parameters in ``neural.base``)."""

    TAGS = {**NeuralMethod.TAGS, "family": "flat"}
    PARAMS = {"pooling": "mean"}
    PARAM_SPECS = {"pooling": choice("mean", "cls")}

    @classmethod
    def get_test_params(cls) -> dict:
        return dict(TINY_TEST_PARAMS)

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.neural.flat_bert_net import FlatNet
        return FlatNet(encoder_stack, len(hierarchy), pooling=self.pooling, dropout=self.dropout)
