"""The training loop shared by the encoder methods (``Trainer``).

* **Training modes** (CPU speed): ``full`` fine-tunes everything; ``top-k`` trains only the
  top k encoder layers (embeddings and lower layers frozen, in eval mode, run without
  gradients); ``top-k-cached`` also computes the frozen part once per text and caches its
  output (``batching.StateCache``).
* **Optimisation**: AdamW with one learning rate for the encoder and one for the heads,
  linear warm-up then linear decay, gradient clipping.
* **Early stopping** on ONE criterion: micro-F1 on the dev set at threshold 0.5 (ties keep
  the earlier epoch), best weights restored at the end; seeded and deterministic on CPU;
  progress on stderr (``hmtc_bench.progress``: a bar on a terminal, plain lines in a log)
  and one line per epoch with its own time. With a ``checkpoints.Checkpoint`` every epoch
  is saved and an interrupted run resumes after its last finished epoch.
* **No silent divergence**: a NaN or infinite batch loss stops training at once, before its
  step, with ``TrainingError`` (epoch, step, batch, and a hint: learning rates, precision);
  so do non-finite weights at the end of an epoch. The epoch is neither kept nor saved.

``Trainer.fit`` runs these steps: ``_start`` (resume or a fresh state), ``_caches``,
then per epoch ``_train_epoch`` (the batches), ``_dev_score`` and ``_end_epoch`` (best
weights, history, stopping, checkpoint), and ``_finish`` (best weights back).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hmtc_bench import progress, shared_work
from hmtc_bench.errors import TrainingError
from hmtc_bench.methods.base import report_epoch
from hmtc_bench.methods.neural.batching import (StateCache, dense_rows, length_batches,
                                                network_pad_id, pad_ids, predict_proba)
from hmtc_bench.methods.neural.checkpoints import Checkpoint
from hmtc_bench.methods.neural.devices import autocast, check_precision
from hmtc_bench.methods.neural.heads import TextClassifier

TRAIN_MODES = ("full", "top-k", "top-k-cached")
CRITERION = "dev micro-F1 at threshold 0.5"  # the one early-stopping criterion


class NonFiniteLoss(TrainingError):
    """A batch whose training loss is NaN or infinite (raised by ``Trainer.train_step``
    before any gradient is taken; ``Trainer.fit`` adds the epoch, step and a hint)."""

    def __init__(self, value: float):
        super().__init__(f"non-finite training loss ({value})")
        self.value = value


def micro_f1_at(proba: np.ndarray, Y: sp.csr_matrix, threshold: float = 0.5) -> float:
    from hmtc_bench.evaluation.metrics import micro_f1
    return float(micro_f1(Y, sp.csr_matrix(proba >= threshold)))


@dataclass
class _Fit:
    """What one ``Trainer.fit`` call works on, passed between its steps."""

    network: TextClassifier
    optimizer: torch.optim.Optimizer
    n_frozen: int
    trainable: set[str]                   # names of the trained parameters
    train_ids: list
    Y_train: sp.csr_matrix
    dev_ids: list | None
    Y_dev: sp.csr_matrix | None
    checkpoint: Checkpoint | None
    total_steps: int
    lengths: np.ndarray                   # tokens per training text
    started: float = 0.0                  # perf_counter() at the start, less resumed time
    train_cache: StateCache | None = None
    dev_cache: StateCache | None = None
    best: dict | None = None              # the best epoch's trained weights

    @property
    def has_dev(self) -> bool:
        return self.dev_ids is not None and len(self.dev_ids) > 0


class Trainer:
    """The training loop shared by the encoder methods.

    Parameters
    ----------
    mode : "full", "top-k" or "top-k-cached"  (see the module docstring)
    top_k_layers : encoder layers trained in the top-k modes
    batch_size, epochs
    lr_encoder, lr_head : AdamW learning rates of the trained layers of a pretrained encoder
        and of the rest (the heads, and a word encoder trained from scratch)
    weight_decay : AdamW weight decay (not on biases and LayerNorm weights)
    warmup : share of the planned steps with a linear warm-up; linear decay to 0 afterwards
    patience : epochs without a better dev micro-F1 before stopping; epochs before the model
        predicts any dev label (micro-F1 0 so far) do not count
    max_seconds : time budget for caching and training (checked after each batch; None =
        no budget); the epoch in progress is evaluated and kept if best. A budget makes the
        result depend on the machine's speed.
    max_grad_norm : gradient clipping
    precision : "auto", "bf16" or "fp32" (see the module docstring)
    """

    def __init__(self, *, mode: str = "top-k-cached", top_k_layers: int = 2, batch_size: int = 32,
                 epochs: int = 5, lr_encoder: float = 1e-4, lr_head: float = 3e-3,
                 weight_decay: float = 0.01, warmup: float = 0.1, patience: int = 2,
                 max_seconds: float | None = None, max_grad_norm: float = 1.0,
                 eval_batch_size: int = 64, cache_max_mb: float = 1024, seed: int = 0,
                 device=None, precision: str = "auto", progress: bool = True,
                 desc: str = "train"):
        if mode not in TRAIN_MODES:
            raise ValueError(f"unknown train_mode {mode!r}; choose one of {TRAIN_MODES}")
        self.precision = check_precision(precision)
        self.mode = mode
        self.top_k_layers = int(top_k_layers)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.lr_encoder = float(lr_encoder)
        self.lr_head = float(lr_head)
        self.weight_decay = float(weight_decay)
        self.warmup = float(warmup)
        self.patience = int(patience)
        self.max_seconds = max_seconds
        self.max_grad_norm = max_grad_norm
        self.eval_batch_size = int(eval_batch_size)
        self.cache_max_mb = cache_max_mb
        self.seed = int(seed)
        self.device = device or torch.device("cpu")
        self.progress = progress
        self.desc = desc
        # what names the frozen bottom's weights (a pretrained encoder's name): with it, the
        # state cache of the same texts is shared inside shared_work.scope(); None: never
        self.share_key: str | None = None

    # ------------------------------------------------------------------ set-up
    def n_frozen(self, network: TextClassifier) -> int:
        if self.mode == "full":
            return 0
        encoder = network.encoder
        if not encoder.splittable:
            raise ValueError(f"train_mode {self.mode!r} needs an encoder with embeddings and "
                             "encoder.layer (BERT-like); use train_mode='full'")
        if not 0 <= self.top_k_layers <= encoder.n_layers:
            raise ValueError(f"top_k_layers={self.top_k_layers} must be between 0 and "
                             f"{encoder.n_layers}")
        return encoder.n_layers - self.top_k_layers

    def optimizer(self, network: TextClassifier, n_frozen: int):
        """AdamW over the trained parameters (frozen ones get requires_grad False)."""
        for module in network.encoder.frozen_modules(n_frozen):
            module.requires_grad_(False)
        groups = {}
        for name, p in network.named_parameters():
            if not p.requires_grad:
                continue
            part = ("encoder" if name.startswith("encoder.") and network.encoder.pretrained
                    else "head")
            decay = not (name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name)
            groups.setdefault((part, decay), []).append(p)
        param_groups = []
        for (part, decay), params in sorted(groups.items()):
            lr = self.lr_encoder if part == "encoder" else self.lr_head
            param_groups.append({"params": params, "lr": lr, "base_lr": lr,
                                 "weight_decay": self.weight_decay if decay else 0.0})
        device = next(network.parameters()).device
        fused = device.type in ("cpu", "cuda")  # 4x faster steps on CPU
        return torch.optim.AdamW(param_groups, fused=fused)

    def _lr_factor(self, step: int, total: int) -> float:
        warm = max(1, math.ceil(self.warmup * total)) if self.warmup > 0 else 0
        if step <= warm:
            return step / warm
        return max(0.0, (total - step) / max(1, total - warm))

    def set_train(self, network, n_frozen: int) -> None:
        """Training mode, with the frozen modules in eval mode (no dropout there)."""
        network.train()
        for module in network.encoder.frozen_modules(n_frozen):
            module.eval()

    # ------------------------------------------------------------------ one step
    def train_step(self, network, optimizer, targets, mask, n_frozen: int, ids=None,
                   states=None, lr_factor: float = 1.0) -> float:
        """One AdamW step on a batch given as token ids, or (top-k-cached) as the frozen
        bottom's output ``states``; returns the loss. A NaN or infinite loss raises
        ``NonFiniteLoss`` before the step."""
        device = targets.device
        with autocast(device, self.precision):
            if states is None:
                with torch.no_grad() if n_frozen else contextlib.nullcontext():
                    states = network.encoder.bottom(ids, mask, n_frozen)
            loss = network.training_loss(network.encoder.top(states, mask, n_frozen), mask,
                                         targets)
        value = float(loss.detach())
        if not math.isfinite(value):  # before backward: no step, weights untouched
            raise NonFiniteLoss(value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                     self.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor
        optimizer.step()
        return value

    # ------------------------------------------------------------------ loop
    def fit(self, network: TextClassifier, train_ids, Y_train: sp.csr_matrix,
            dev_ids=None, Y_dev: sp.csr_matrix | None = None,
            checkpoint: Checkpoint | None = None, resume: bool = False) -> dict:
        """Train ``network`` in place and leave the best epoch's weights in it.

        Returns the training state: epochs run, best epoch and dev micro-F1, history, and
        ``train_seconds`` (caching and training so far, earlier sessions of a resumed run
        included). The history holds one record per epoch: ``epoch``, ``train_loss`` (mean
        batch loss), ``batches``, ``dev_micro_f1`` (with a dev set), ``seconds`` (the
        epoch's own time: its batches, dev scoring and record keeping; the state cache
        built before the first epoch is in none of them) and ``elapsed`` (``train_seconds``
        at the end of the epoch, the cache included).
        """
        n_frozen = self.n_frozen(network)
        optimizer = self.optimizer(network, n_frozen)
        run = _Fit(network, optimizer, n_frozen,
                   trainable={name for name, p in network.named_parameters() if p.requires_grad},
                   train_ids=train_ids, Y_train=Y_train, dev_ids=dev_ids, Y_dev=Y_dev,
                   checkpoint=checkpoint,
                   total_steps=math.ceil(len(train_ids) / self.batch_size) * self.epochs,
                   lengths=np.array([len(s) for s in train_ids]))
        state, finished = self._start(run, resume)
        if finished:
            return state
        run.started = time.perf_counter() - state["train_seconds"]
        try:
            self._caches(run)
            first_epoch = self.epochs + 1 if state["stopped"] else state["epoch"] + 1
            for epoch in range(first_epoch, self.epochs + 1):
                epoch_start = time.perf_counter()
                losses, out_of_time = self._train_epoch(run, state, epoch)
                record = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                          "batches": len(losses)}
                if run.has_dev:
                    record["dev_micro_f1"] = self._dev_score(run)
                self._end_epoch(run, state, record, out_of_time, epoch_start)
                report_epoch(epoch, record.get("dev_micro_f1"))
                if state["stopped"]:
                    break
        finally:
            for cache in (run.train_cache, run.dev_cache):
                if cache is not None and not shared_work.is_shared(cache):
                    cache.close()
        return self._finish(run, state)

    def _start(self, run: _Fit, resume: bool) -> tuple[dict, bool]:
        """The training state to start from, and whether training is already done: a fresh
        state, or with ``resume`` the checkpoint's (the last finished epoch's weights,
        optimizer and random state loaded; a finished run's final weights loaded)."""
        state = {"epoch": 0, "step": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0,
                 "history": [], "stopped": None, "criterion": CRITERION,
                 "train_seconds": 0.0}
        checkpoint = run.checkpoint
        saved = checkpoint.train_state() if checkpoint is not None and resume else None
        if saved is not None and saved.get("finished"):
            checkpoint.load_weights(run.network)
            return saved, True
        if saved is not None:
            # every file verified before anything is loaded: the best epoch's weights
            # (model.safetensors) first, then the last epoch's inside load_epoch
            saved_best = checkpoint.weights() if saved["best_epoch"] else None
            state = checkpoint.load_epoch(run.network, run.optimizer)
            if saved_best is not None:
                run.best = {k: saved_best[k] for k in run.trainable}
            progress.say(f"{self.desc}: resuming after epoch {state['epoch']}", self.progress)
        return state, False

    def _caches(self, run: _Fit) -> None:
        """In top-k-cached mode, the frozen bottom's output of the training and dev texts."""
        if self.mode != "top-k-cached":
            return
        run.train_cache = self._cache(run, run.train_ids, f"{self.desc} cache")
        if run.has_dev:
            run.dev_cache = self._cache(run, run.dev_ids, f"{self.desc} cache dev")

    def _cache(self, run: _Fit, ids, desc: str) -> StateCache:
        def compute():
            return StateCache(run.network, ids, run.n_frozen, self.device,
                              self.eval_batch_size, self.cache_max_mb, self.progress, desc,
                              self.precision)
        if self.share_key is None or not shared_work.active():
            return compute()
        key = (self.share_key, run.n_frozen, self.precision, str(self.device),
               self.eval_batch_size, self.cache_max_mb, shared_work.digest(ids))
        return shared_work.memo("states", key, compute)

    def _train_epoch(self, run: _Fit, state: dict, epoch: int) -> tuple[list[float], bool]:
        """One pass over the training texts in batches of similar length, in an order seeded
        by (seed, epoch); returns the batch losses and whether the time budget ran out."""
        batches = length_batches(run.lengths, self.batch_size,
                                 np.random.default_rng([self.seed, epoch]))
        self.set_train(run.network, run.n_frozen)
        pad_id = network_pad_id(run.network)
        with progress.Progress(len(batches), f"{self.desc} epoch {epoch}/{self.epochs}",
                               unit="batches", enabled=self.progress) as bar:
            return self._batches(run, state, epoch, batches, pad_id, bar)

    def _batches(self, run: _Fit, state: dict, epoch: int, batches, pad_id: int,
                 bar: progress.Progress) -> tuple[list[float], bool]:
        losses = []
        for batch, rows in enumerate(batches, 1):
            targets = dense_rows(run.Y_train, rows, self.device)
            state["step"] += 1
            factor = self._lr_factor(state["step"], run.total_steps)
            try:
                if run.train_cache is not None:
                    states, mask = run.train_cache.batch(rows, self.device)
                    loss = self.train_step(run.network, run.optimizer, targets, mask,
                                           run.n_frozen, states=states, lr_factor=factor)
                else:
                    ids, mask = pad_ids([run.train_ids[i] for i in rows], pad_id, self.device)
                    loss = self.train_step(run.network, run.optimizer, targets, mask,
                                           run.n_frozen, ids=ids, lr_factor=factor)
            except NonFiniteLoss as err:
                raise self._non_finite(f"training loss {err.value}", epoch, state["step"],
                                       f", batch {batch} of {len(batches)}") from None
            losses.append(loss)
            if bar.shown:
                bar.postfix(f"loss {np.mean(losses[-20:]):.4f}")
            bar.update()
            if (self.max_seconds is not None
                    and time.perf_counter() - run.started > self.max_seconds):
                return losses, True
        return losses, False

    def _non_finite(self, what: str, epoch: int, step: int, where: str = "") -> TrainingError:
        """The error that stops training on a NaN or infinite value: where, and a hint."""
        bf16 = self.precision == "bf16" or (self.precision == "auto"
                                            and torch.device(self.device).type == "cuda")
        hint = ("a lower learning rate (lr_encoder={:g}, lr_head={:g})"
                .format(self.lr_encoder, self.lr_head)
                + (" or precision='fp32' (bf16 now)" if bf16 else ""))
        return TrainingError(f"{self.desc}: non-finite {what} at epoch {epoch}, step {step}"
                             f"{where}; training stopped, nothing of this epoch kept or saved; "
                             f"try {hint}")

    def _dev_score(self, run: _Fit) -> float:
        """The early-stopping criterion: dev micro-F1 at threshold 0.5."""
        proba = predict_proba(run.network, run.dev_ids, self.device, self.eval_batch_size,
                              cache=run.dev_cache, n_frozen=run.n_frozen,
                              precision=self.precision)
        return micro_f1_at(proba, run.Y_dev)

    def _end_epoch(self, run: _Fit, state: dict, record: dict, out_of_time: bool,
                   epoch_start: float) -> None:
        """After an epoch (begun at ``perf_counter()`` ``epoch_start``): keep its weights if
        best, record it, decide whether to stop (``state["stopped"]``), and save it to the
        checkpoint."""
        bad = next((name for name in sorted(run.trainable)
                    if not bool(torch.isfinite(run.network.get_parameter(name)).all())), None)
        if bad is not None:
            raise self._non_finite(f"weights ({bad})", record["epoch"], state["step"],
                                   " (after the epoch's last step)")
        score = record.get("dev_micro_f1")
        # while no dev label has been predicted yet (micro-F1 0 so far) the score says
        # nothing: such epochs do not count against the patience (a model trained from
        # scratch can sit at the label prior for several epochs)
        improved = (not run.has_dev or state["best_score"] is None
                    or score > state["best_score"] or score == state["best_score"] == 0)
        if improved:
            state["best_score"] = score
            state["best_epoch"] = record["epoch"]
            state["bad_epochs"] = 0
            run.best = {k: v.detach().clone() for k, v in run.network.state_dict().items()
                        if k in run.trainable}
        else:
            state["bad_epochs"] += 1
        state["epoch"] = record["epoch"]
        now = time.perf_counter()
        state["train_seconds"] = now - run.started
        record["seconds"] = now - epoch_start          # this epoch's own time
        record["elapsed"] = state["train_seconds"]     # since training began, cache included
        state["history"].append(record)
        dev_text = f", dev micro-F1 {score:.4f}" if run.has_dev else ""
        progress.say(f"{self.desc} epoch {record['epoch']}/{self.epochs}: loss "
                     f"{record['train_loss']:.4f}{dev_text} ({record['seconds']:.1f} s; "
                     f"{record['elapsed']:.0f} s in all)", self.progress)
        if out_of_time:
            state["stopped"] = f"time budget of {self.max_seconds}s"
        elif run.has_dev and state["bad_epochs"] >= self.patience:
            state["stopped"] = f"no dev improvement for {self.patience} epochs"
        if run.checkpoint is not None:
            run.checkpoint.save_epoch(run.network, run.optimizer, state, improved)

    def _finish(self, run: _Fit, state: dict) -> dict:
        """The best epoch's weights back into the network; the checkpoint marked finished."""
        if run.best is not None:
            run.network.load_state_dict(run.best, strict=False)
        if run.checkpoint is not None:
            if state["best_epoch"] == 0:
                run.checkpoint.save_weights(run.network)
            run.checkpoint.finish(state)
        run.network.eval()
        return state
