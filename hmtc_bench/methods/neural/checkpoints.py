"""Checkpoints of the neural methods: safetensors and JSON, no pickle anywhere.

``config.json`` (method, parameters, hierarchy, training data hash, network spec), the
encoder config and tokenizer as their own JSON files, weights and optimizer state as
safetensors, the training state as JSON. A run resumes from its last finished epoch.

Nothing is loaded unverified: every file written beside the JSON has its SHA-256 recorded
(the tensor files in ``train_state.json``, written after them; the tokenizer and encoder
files in ``config.json``), and every read checks it first. A file that is missing,
unreadable or fails its checksum raises ``CheckpointError``, one line naming the file.
An interruption while an epoch is being saved (between its files) can leave a checkpoint
that fails verification; train again with ``resume=False``. Checkpoints of format version
1 (no checksums, no data hash) cannot be verified and are refused likewise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from hmtc_bench.errors import CheckpointError
from hmtc_bench.methods import import_object, registered_name  # noqa: F401 (re-exported)

CHECKPOINT_FORMAT = "hmtc-bench-neural-checkpoint"
CHECKPOINT_VERSION = 2  # 2: SHA-256 of every file, training data hash, method name
TENSOR_FILES = ("model.safetensors", "last.safetensors", "optimizer.safetensors")
ENCODER_FOLDERS = ("tokenizer", "encoder")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Checkpoint:
    """A checkpoint folder (no pickle):

    ``config.json``       method (registered name and ``module:Class``), parameters,
                          hierarchy, training data hash, SHA-256 of the tokenizer and
                          encoder files (written at the start);
    ``tokenizer/``, ``encoder/``  the tokenizer's and the encoder config's own JSON files;
    ``model.safetensors``  the best weights so far (the final model once finished);
    ``last.safetensors``, ``optimizer.safetensors``  the last epoch's weights, AdamW moments
                          and torch random state, for resuming (removed once finished);
    ``train_state.json``   epoch, step, best score and epoch, patience count, history, and
                          the SHA-256 of the tensor files (``files``).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._written: dict[str, str] = {}  # tensor file -> SHA-256, not yet in train_state

    # files
    def _write_json(self, name: str, obj) -> None:
        tmp = self.path / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path / name)

    def _read_bytes(self, name: str) -> bytes:
        path = self.path / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing from the checkpoint; nothing was "
                                  "loaded") from None
        except OSError as err:
            raise CheckpointError(f"{path}: unreadable ({err.strerror or err}); nothing was "
                                  "loaded") from None

    def _read_json(self, name: str):
        try:
            return json.loads(self._read_bytes(name).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{self.path / name}: not valid JSON ({err})") from None

    def _read_verified(self, name: str, expected: str | None) -> bytes:
        """The bytes of file ``name`` once they match the recorded SHA-256 ``expected``."""
        path = self.path / name
        if expected is None:
            raise CheckpointError(f"{path}: no checksum recorded for it (training not "
                                  "finished, or the checkpoint's JSON was changed)")
        data = self._read_bytes(name)
        if sha256(data) != expected:
            raise CheckpointError(f"{path}: SHA-256 checksum mismatch (corrupted or changed "
                                  "since it was written); nothing was loaded; train again "
                                  "with resume=False")
        return data

    def _save_tensors(self, name: str, tensors: dict, metadata: dict | None = None) -> None:
        from safetensors.torch import save
        data = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
                    metadata=metadata)
        tmp = self.path / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path / name)
        self._written[name] = sha256(data)

    def _files(self) -> dict:
        """The SHA-256 of the tensor files: those recorded in train_state.json, updated by
        the ones written since."""
        recorded = {}
        if (self.path / "train_state.json").exists():
            recorded = self._read_json("train_state.json").get("files", {})
        return {**recorded, **self._written}

    def load_tensors(self, name: str) -> dict:
        """The tensors of file ``name``, verified against its recorded SHA-256 first."""
        from safetensors.torch import load
        data = self._read_verified(name, self._files().get(name))
        try:
            return load(data)
        except Exception as err:  # checksum right, content not: written wrongly
            raise CheckpointError(f"{self.path / name}: not a safetensors file ({err})") from None

    # config
    def start(self, config: dict, tokenizer, encoder_config) -> None:
        """A fresh checkpoint: the tokenizer and encoder files, then ``config.json`` with
        their SHA-256; files of an earlier run in the folder are removed."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in ("train_state.json", *TENSOR_FILES):
            (self.path / name).unlink(missing_ok=True)
        self._written = {}
        tokenizer.save_pretrained(str(self.path / "tokenizer"))
        encoder_config.save_pretrained(str(self.path / "encoder"))
        files = {name: sha256((self.path / name).read_bytes())
                 for name in self._encoder_files()}
        self._write_json("config.json", {"format": CHECKPOINT_FORMAT,
                                         "version": CHECKPOINT_VERSION, **config,
                                         "files": files})

    def _encoder_files(self) -> list[str]:
        return sorted(p.relative_to(self.path).as_posix() for folder in ENCODER_FOLDERS
                      for p in (self.path / folder).rglob("*") if p.is_file())

    def config(self) -> dict:
        if not (self.path / "config.json").exists():
            raise CheckpointError(f"{self.path}: no config.json (not an hmtc-bench checkpoint)")
        config = self._read_json("config.json")
        if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.path / 'config.json'}: not an hmtc-bench neural "
                                  "checkpoint")
        if config.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{self.path}: checkpoint format version "
                                  f"{config.get('version')}, this hmtc-bench reads version "
                                  f"{CHECKPOINT_VERSION} (checksums and data hash); train "
                                  "again with resume=False")
        return config

    def verify_encoder_files(self) -> None:
        """Check the tokenizer and encoder files against ``config.json`` before they are
        read."""
        for name, expected in self.config()["files"].items():
            self._read_verified(name, expected)

    def train_state(self) -> dict | None:
        """The saved training state (without the file checksums), or None before the
        first epoch is saved."""
        if not (self.path / "train_state.json").exists():
            return None
        state = self._read_json("train_state.json")
        state.pop("files", None)
        return state

    # weights
    def save_weights(self, network: nn.Module, name: str = "model.safetensors") -> None:
        self._save_tensors(name, network.state_dict())

    def weights(self, name: str = "model.safetensors") -> dict:
        """The verified weights of file ``name`` (checksum right, all finite)."""
        if not (self.path / "train_state.json").exists():
            raise CheckpointError(f"{self.path}: no train_state.json (no epoch finished yet)")
        tensors = self.load_tensors(name)
        bad = sorted(k for k, v in tensors.items()
                     if v.is_floating_point() and not bool(torch.isfinite(v).all()))
        if bad:
            raise CheckpointError(f"{self.path / name}: non-finite weights in {bad[0]} "
                                  f"({len(bad)} tensors); not loaded")
        return tensors

    def load_weights(self, network: nn.Module, name: str = "model.safetensors",
                     tensors: dict | None = None) -> None:
        """The verified weights of file ``name`` (or ``tensors`` read from it) into
        ``network``, every key."""
        tensors = self.weights(name) if tensors is None else tensors
        try:
            network.load_state_dict(tensors, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"{self.path / name}: does not fit the network "
                                  f"({first})") from None

    # training state
    def save_epoch(self, network, optimizer, state: dict, improved: bool) -> None:
        """The epoch's weights (and, if ``improved``, the best weights), optimizer and
        random state, then ``train_state.json`` with their SHA-256."""
        if improved:
            self.save_weights(network, "model.safetensors")
        self.save_weights(network, "last.safetensors")
        tensors, groups = _flatten_optimizer(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        self._save_tensors("optimizer.safetensors", tensors)
        self._write_json("train_state.json", {**state, "param_groups": groups,
                                              "files": self._files()})

    def load_epoch(self, network, optimizer) -> dict:
        """The last saved epoch's weights, optimizer and random state (all verified before
        any is loaded); returns its training state."""
        state = self.train_state()
        weights = self.weights("last.safetensors")
        tensors = self.load_tensors("optimizer.safetensors")
        self.load_weights(network, "last.safetensors", weights)
        torch.set_rng_state(tensors.pop("rng.torch"))
        cuda_keys = sorted(k for k in list(tensors) if k.startswith("rng.cuda."))
        cuda_states = [tensors.pop(k) for k in cuda_keys]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        _restore_optimizer(optimizer, tensors, state.pop("param_groups"))
        return state

    def finish(self, state: dict) -> None:
        files = {"model.safetensors": self._files().get("model.safetensors")}
        self._write_json("train_state.json", {**state, "finished": True, "files": files})
        self._written = {}
        for name in ("last.safetensors", "optimizer.safetensors"):
            (self.path / name).unlink(missing_ok=True)


def _flatten_optimizer(optimizer) -> tuple[dict, list]:
    sd = optimizer.state_dict()
    tensors = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"state.{index}.{key}"] = (value if torch.is_tensor(value)
                                               else torch.tensor(value))
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, groups


def _restore_optimizer(optimizer, tensors: dict, groups: list) -> None:
    state: dict = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def data_hash(train_texts, Y_train, dev_texts=None, Y_dev=None) -> str:
    """SHA-256 (first 16 hex) of what a fit trains on: the training texts and labels and
    the dev split used for early stopping (texts and labels)."""
    import numpy as np
    import scipy.sparse as sp
    digest = hashlib.sha256(b"hmtc-bench-fit-data-1")
    for part, texts, Y in (("train", train_texts, Y_train), ("dev", dev_texts, Y_dev)):
        digest.update(f"\x02{part}:{len(texts or ())}".encode())
        for text in texts or ():
            digest.update(text.encode("utf-8", "replace") + b"\x01")
        if Y is not None:
            Y = sp.csr_matrix(Y != 0)
            Y.sort_indices()
            digest.update(np.asarray(Y.shape, dtype=np.int64).tobytes())
            digest.update(Y.indptr.astype(np.int64).tobytes())
            digest.update(Y.indices.astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


def saved_method(config: dict, where) -> type:
    """The class a checkpoint's ``config.json`` names: through the registry when its
    registered name is known there, else by its ``module:Class`` path."""
    from hmtc_bench.methods import GROUP, get_method
    from hmtc_bench.plugins import list_plugins
    name = config.get("method_name")
    if name and name in list_plugins(GROUP):
        return get_method(name)
    try:
        return import_object(config["method"])
    except (ImportError, AttributeError, ValueError) as err:
        raise CheckpointError(f"{where}: method {name or '?'} ({config['method']}) is neither "
                              f"registered nor importable ({err})") from None


def same_method(saved: dict, config: dict) -> bool:
    """Whether two checkpoint configs name the same method: by registered name when both
    have one, else by ``module:Class`` path."""
    if saved.get("method_name") and config.get("method_name"):
        return saved["method_name"] == config["method_name"]
    return saved["method"] == config["method"]
