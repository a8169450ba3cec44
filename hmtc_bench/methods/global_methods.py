"""Global hierarchy-aware baselines: HMCN-F (``hmcn``) and HiAGM-TP (``hiagm``), on the text
encoder shared with msml and flat-bert or on a TextRCNN trained from scratch.

Both use the training loop, early stopping, checkpoints and devices of the encoder methods
(``neural_method``, ``neural``). The text vector both read is the HiAGM paper's: a TextCNN
(widths 2, 3, 4; 100 filters each; max-pooled) over the encoder's token states. With
``encoder="textrcnn"`` the encoder is word embeddings (300-d) and a bidirectional GRU (64
units per direction), trained from scratch at ``lr_head``: with the TextCNN on top, the
TextRCNN of the HiAGM paper (without its pretrained GloVe vectors, which are not available
offline). With a BERT encoder (``"default"``: MiniLM-L6, top 2 layers trained over the cached
bottom 4, as msml), the TextCNN reads BERT's token states.

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

In a DAG a label with two parents gets a top-down message from each (HiAGM), and HMCN's
levels are ``LabelHierarchy.level``: 1 + the longest path from the root.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hmtc_bench.methods.msml import TINY_TEST_PARAMS
from hmtc_bench.methods.neural_method import NeuralMethod

TEXT_KERNELS = (2, 3, 4)     # the HiAGM paper's text CNN
_SHARED_DOC = "Shared parameters: see ``hmtc_bench.methods.neural_method``."


def _edges(hierarchy) -> np.ndarray:
    """(parent, child) label-column pairs, the root left out, in a fixed order."""
    pm = hierarchy.parent_matrix.tocoo()
    edges = np.column_stack([pm.row, pm.col]).astype(np.int64)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))] if len(edges) else edges.reshape(0, 2)


def _widths(kernel_sizes) -> tuple[int, ...]:
    return TEXT_KERNELS if kernel_sizes is None else tuple(int(k) for k in kernel_sizes)


class _GlobalMethod(NeuralMethod):
    TAGS: ClassVar[dict] = {"family": "global",
                            "requires": ("torch", "transformers", "safetensors"),
                            "consistent_by_construction": False, "supports_dag": True}

    def _set_shared(self, local_vars: dict) -> None:
        for name, value in local_vars.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)


class HMCN(_GlobalMethod):
    """HMCN-F: a chain of one fully connected layer per level over the text vector, local
    outputs per level and a global output, mixed with weight ``beta``. See the module
    docstring for what is the paper's and what is ours. {shared}

    Parameters specific to HMCN
    ---------------------------
    kernel_sizes, n_filters : the TextCNN that reads the text vector (None: widths 2, 3, 4)
    global_size, local_size : units of the chain layers and of the local transition layers
    beta : weight of the local outputs in the final score (1 - beta for the global output)
    violation_penalty : lambda of the hierarchical violation penalty (0 = off)
    """

    def __init__(self, encoder: str = "default", max_length: int = 64,
                 train_mode: str = "top-k-cached", top_k_layers: int = 2,
                 n_state_layers: int = 1, attention_dropout: float | None = 0.0,
                 batch_size: int = 32, epochs: int = 5, lr_encoder: float = 1e-4,
                 lr_head: float = 3e-3, weight_decay: float = 0.01, warmup: float = 0.1,
                 patience: int = 2, dropout: float = 0.1, kernel_sizes=None,
                 n_filters: int = 100, global_size: int = 384, local_size: int = 384,
                 beta: float = 0.5, violation_penalty: float = 0.0,
                 max_train_seconds: float | None = None, dev_fraction: float = 0.1,
                 cache_max_mb: float = 1024, device: str = "auto", precision: str = "auto",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 progress: bool = True, random_state: int = 0):
        self._set_shared(locals())

    @classmethod
    def get_test_params(cls) -> dict:
        return {**TINY_TEST_PARAMS, "n_filters": 16, "global_size": 32, "local_size": 32}

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.global_model import HMCNNet
        return HMCNNet(encoder_stack, [hierarchy.level_columns(level)
                                       for level in range(1, hierarchy.depth + 1)],
                       _edges(hierarchy), kernel_sizes=_widths(self.kernel_sizes),
                       n_filters=self.n_filters, global_size=self.global_size,
                       local_size=self.local_size, beta=self.beta,
                       violation_penalty=self.violation_penalty, dropout=self.dropout)


class HiAGM(_GlobalMethod):
    """HiAGM-TP: the text vector projected onto the label nodes, a hierarchy-aware GCN with
    prior-weighted top-down and bottom-up edges, one sigmoid per label. See the module
    docstring for what is the paper's and what is ours. {shared}

    Parameters specific to HiAGM
    ----------------------------
    kernel_sizes, n_filters : the TextCNN that reads the text vector (None: widths 2, 3, 4)
    node_dim : width of each label node's vector (the paper: 300)
    output : "per-node" (default; scales to large label sets) or "flatten" (the paper's)
    recursive_penalty : weight of the recursive regularisation of the output weights
    """

    def __init__(self, encoder: str = "default", max_length: int = 64,
                 train_mode: str = "top-k-cached", top_k_layers: int = 2,
                 n_state_layers: int = 1, attention_dropout: float | None = 0.0,
                 batch_size: int = 32, epochs: int = 5, lr_encoder: float = 1e-4,
                 lr_head: float = 3e-3, weight_decay: float = 0.01, warmup: float = 0.1,
                 patience: int = 2, dropout: float = 0.1, kernel_sizes=None,
                 n_filters: int = 100, node_dim: int = 64, output: str = "per-node",
                 recursive_penalty: float = 1e-6,
                 max_train_seconds: float | None = None, dev_fraction: float = 0.1,
                 cache_max_mb: float = 1024, device: str = "auto", precision: str = "auto",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 progress: bool = True, random_state: int = 0):
        self._set_shared(locals())

    @classmethod
    def get_test_params(cls) -> dict:
        return {**TINY_TEST_PARAMS, "n_filters": 16, "node_dim": 8}

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.global_model import HiAGMNet
        return HiAGMNet(encoder_stack, len(hierarchy), _edges(hierarchy),
                        kernel_sizes=_widths(self.kernel_sizes), n_filters=self.n_filters,
                        node_dim=self.node_dim, output=self.output,
                        recursive_penalty=self.recursive_penalty, dropout=self.dropout)


for _cls in (HMCN, HiAGM):
    _cls.__doc__ = _cls.__doc__.replace("{shared}", _SHARED_DOC)
