"""MSML-BERT (Huang & Liu 2022), its ablations, and flat-BERT.

MSML-BERT treats the classifier of each level of the label hierarchy as one task of a
multi-task model. What follows the paper's description, and what is ours (the paper's
tables and exact equations were not available to us):

From the paper
    * hard parameter sharing: one BERT encoder shared by every level, its last layers'
      token states feeding the level tasks;
    * MSFEM (multi-scale feature extraction): one TextCNN per level over the token states,
      wider kernels for upper levels (coarse features), narrower for lower levels;
    * MLIPM (multi-level information propagation): level l-1's output is concatenated into
      the input of level l's classifier;
    * HGM (hierarchical gating): a gate computed from both levels' representations decides
      how much of the upper level's information enters the lower level;
    * joint training: a binary cross-entropy loss per level, summed with per-level weights.

Our choices (each a parameter)
    * token states: the last encoder layer's output (``n_state_layers=1``; n > 1 averages
      the last n hidden states);
    * kernel widths (``kernel_sizes=None``): level l of a depth-D hierarchy gets
      ``(D-l+1, D-l+2, D-l+3)``: (3, 4, 5), (2, 3, 4), (1, 2, 3) for depth 3; ``n_filters=128``
      per width; 'same' padding, max-pool over the text's own tokens;
    * "level l-1's output" is its hidden representation ``h_{l-1}`` (256 units,
      ``hidden_size``), which itself carries what flowed from above, so information travels
      down every level; the level classifier is ``h_l = GELU(W_l [f_l ; g_l * h_{l-1}])``,
      logits ``V_l h_l`` (GELU because ReLU units of the leaf level died under 2,000 rare
      labels);
    * the gate is a vector ``g_l = sigmoid(G_l [f_l ; h_{l-1}] + c_l)``, one value per unit
      of ``h_{l-1}``, from the lower level's features f_l and the upper representation;
    * per-level loss = binary cross-entropy averaged over the level's labels, weights 1
      (``level_weights=None``);
    * output biases start at the labels' training log-odds; AdamW, lr 1e-4 for the trained
      encoder layers and 3e-3 for the heads (1e-2 made the ICD-10-CM heads collapse),
      batches of 32, 10 % warm-up then linear decay over 5 epochs, dropout 0.1, early
      stopping on dev micro-F1 at threshold 0.5 with patience 2, best epoch restored;
      texts cut at 64 tokens; by default only the top 2 of MiniLM's 6 layers are trained,
      with the 4 frozen layers' output cached (CPU speed, see ``neural``). These defaults
      were chosen so that the embedded ICD-10-CM dataset trains in a few minutes on two
      CPU cores; longer texts or larger datasets want more tokens and more epochs;
    * decoding is not the method's: ``predict`` applies the named policy (threshold 0.5 by
      default) to ``predict_proba``;
    * a DAG label's level is ``LabelHierarchy.level``: 1 + its longest path from the root,
      so every parent sits on a higher level than its children; one task per level.

Ablations (registered variants, all else equal)
    ``msml-no-msfem``: one TextCNN shared by every level, with the middle level's widths
    ((2, 3, 4) for depth 3); ``msml-no-mlipm``: no propagation between levels;
    ``msml-no-hgm``: propagation by plain concatenation, no gate.

flat-BERT (``flat-bert``)
    The same encoder, the mean of its token states, and one sigmoid layer over all labels;
    the same training loop, budget and early stopping as msml.
"""

from __future__ import annotations

import functools
import inspect
from typing import ClassVar

from hmtc_bench.methods.neural_method import NeuralMethod

# a tiny random BERT that learns the synthetic data's top level in about a second
TINY_TEST_PARAMS = {"encoder": "tiny-random", "max_length": 32, "train_mode": "full",
                    "batch_size": 64, "epochs": 6, "lr_encoder": 3e-3, "lr_head": 1e-2,
                    "warmup": 0.0, "patience": 6, "dropout": 0.0, "progress": False,
                    "device": "cpu"}


class MSML(NeuralMethod):
    """MSML-BERT: a shared BERT encoder with one task per hierarchy level, multi-scale
    TextCNN features per level (MSFEM), the upper level's representation propagated to the
    lower level (MLIPM) through a hierarchical gate (HGM). See the module docstring for
    what is the paper's and what is ours, and ``neural_method`` for the shared parameters.

    Parameters specific to MSML
    ---------------------------
    kernel_sizes : None or a list (one per level, top first) of kernel-width lists
        None: ``(D-l+1, D-l+2, D-l+3)`` for level l of a depth-D hierarchy.
    n_filters : int  filters per kernel width
    hidden_size : int  units of each level's representation h_l
    msfem, mlipm, gate : bool  the three modules (the ablations switch one off)
    level_weights : None or a list of floats, one per level (None: all 1)
    """

    TAGS: ClassVar[dict] = {"family": "global", "requires": ("torch", "transformers", "safetensors"),
            "consistent_by_construction": False, "supports_dag": True}

    def __init__(self, encoder: str = "default", max_length: int = 64,
                 train_mode: str = "top-k-cached", top_k_layers: int = 2,
                 n_state_layers: int = 1, attention_dropout: float | None = 0.0,
                 batch_size: int = 32, epochs: int = 5, lr_encoder: float = 1e-4,
                 lr_head: float = 3e-3, weight_decay: float = 0.01, warmup: float = 0.1,
                 patience: int = 2, dropout: float = 0.1, kernel_sizes=None,
                 n_filters: int = 128, hidden_size: int = 256, msfem: bool = True,
                 mlipm: bool = True, gate: bool = True, level_weights=None,
                 max_train_seconds: float | None = None, dev_fraction: float = 0.1,
                 cache_max_mb: float = 1024, device: str = "auto", precision: str = "auto",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 progress: bool = True, random_state: int = 0):
        self.encoder = encoder
        self.max_length = max_length
        self.train_mode = train_mode
        self.top_k_layers = top_k_layers
        self.n_state_layers = n_state_layers
        self.attention_dropout = attention_dropout
        self.batch_size = batch_size
        self.epochs = epochs
        self.lr_encoder = lr_encoder
        self.lr_head = lr_head
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.patience = patience
        self.dropout = dropout
        self.kernel_sizes = kernel_sizes
        self.n_filters = n_filters
        self.hidden_size = hidden_size
        self.msfem = msfem
        self.mlipm = mlipm
        self.gate = gate
        self.level_weights = level_weights
        self.max_train_seconds = max_train_seconds
        self.dev_fraction = dev_fraction
        self.cache_max_mb = cache_max_mb
        self.device = device
        self.precision = precision
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return {**TINY_TEST_PARAMS, "n_filters": 16, "hidden_size": 32}

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.msml_model import MSMLNet, kernel_schedule
        depth = hierarchy.depth
        kernel_sizes = (kernel_schedule(depth) if self.kernel_sizes is None
                        else [tuple(ks) for ks in self.kernel_sizes])
        return MSMLNet(encoder_stack, [hierarchy.level_columns(level)
                                       for level in range(1, depth + 1)],
                       kernel_sizes, n_filters=self.n_filters, hidden_size=self.hidden_size,
                       dropout=self.dropout, msfem=self.msfem, mlipm=self.mlipm,
                       gate=self.gate, level_weights=self.level_weights)


def _with_defaults(init, **defaults):
    """``init`` with other default values, keeping an explicit signature (the registry and
    ``get_params`` read parameters from the signature)."""
    signature = inspect.signature(init)
    unknown = set(defaults) - set(signature.parameters)
    if unknown:
        raise TypeError(f"no parameters {sorted(unknown)} to change")
    new_signature = signature.replace(parameters=[
        p.replace(default=defaults[name]) if name in defaults else p
        for name, p in signature.parameters.items()])

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        bound = new_signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(**bound.arguments)

    wrapped.__signature__ = new_signature
    return wrapped


class MSMLNoMSFEM(MSML):
    """Ablation of MSML: one TextCNN shared by every level (no multi-scale extraction)."""

    __init__ = _with_defaults(MSML.__init__, msfem=False)


class MSMLNoMLIPM(MSML):
    """Ablation of MSML: no information propagated between levels (independent tasks over
    the shared encoder)."""

    __init__ = _with_defaults(MSML.__init__, mlipm=False)


class MSMLNoHGM(MSML):
    """Ablation of MSML: the upper level's representation is concatenated without a gate."""

    __init__ = _with_defaults(MSML.__init__, gate=False)


class FlatBERT(NeuralMethod):
    """flat-BERT: the encoder, mean-pooled token states (``pooling="mean"``, or ``"cls"``),
    dropout and one sigmoid layer over all labels. The same encoder, training loop, budget
    and early stopping as MSML (shared parameters in ``neural_method``)."""

    TAGS: ClassVar[dict] = {"family": "flat", "requires": ("torch", "transformers", "safetensors"),
            "consistent_by_construction": False, "supports_dag": True}

    def __init__(self, encoder: str = "default", max_length: int = 64,
                 train_mode: str = "top-k-cached", top_k_layers: int = 2,
                 n_state_layers: int = 1, attention_dropout: float | None = 0.0,
                 batch_size: int = 32, epochs: int = 5, lr_encoder: float = 1e-4,
                 lr_head: float = 3e-3, weight_decay: float = 0.01, warmup: float = 0.1,
                 patience: int = 2, dropout: float = 0.1, pooling: str = "mean",
                 max_train_seconds: float | None = None, dev_fraction: float = 0.1,
                 cache_max_mb: float = 1024, device: str = "auto", precision: str = "auto",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 progress: bool = True, random_state: int = 0):
        self.encoder = encoder
        self.max_length = max_length
        self.train_mode = train_mode
        self.top_k_layers = top_k_layers
        self.n_state_layers = n_state_layers
        self.attention_dropout = attention_dropout
        self.batch_size = batch_size
        self.epochs = epochs
        self.lr_encoder = lr_encoder
        self.lr_head = lr_head
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.patience = patience
        self.dropout = dropout
        self.pooling = pooling
        self.max_train_seconds = max_train_seconds
        self.dev_fraction = dev_fraction
        self.cache_max_mb = cache_max_mb
        self.device = device
        self.precision = precision
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return dict(TINY_TEST_PARAMS)

    def _build_network(self, encoder_stack, hierarchy):
        from hmtc_bench.methods.msml_model import FlatNet
        return FlatNet(encoder_stack, len(hierarchy), pooling=self.pooling, dropout=self.dropout)
