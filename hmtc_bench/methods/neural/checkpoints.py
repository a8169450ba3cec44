"""Checkpoints of the neural methods: safetensors and JSON, no pickle anywhere.

``config.json`` (method, parameters, hierarchy, network spec), the encoder config and
tokenizer as their own JSON files, weights and optimizer state as safetensors, the training
state as JSON. A run resumes from its last finished epoch.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch
from torch import nn

CHECKPOINT_FORMAT = "hmtc-bench-neural-checkpoint"
CHECKPOINT_VERSION = 1


class Checkpoint:
    """A checkpoint folder (no pickle):

    ``config.json``       method, parameters, hierarchy, network spec (written at the start);
    ``tokenizer/``, ``encoder/``  the tokenizer's and the encoder config's own JSON files;
    ``model.safetensors``  the best weights so far (the final model once finished);
    ``last.safetensors``, ``optimizer.safetensors``  the last epoch's weights, AdamW moments
                          and torch random state, for resuming (removed once finished);
    ``train_state.json``   epoch, step, best score and epoch, patience count, history.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # files
    def _write_json(self, name: str, obj) -> None:
        tmp = self.path / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path / name)

    def _read_json(self, name: str):
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def _save_tensors(self, name: str, tensors: dict, metadata: dict | None = None) -> None:
        from safetensors.torch import save_file
        tmp = self.path / (name + ".tmp")
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)
        os.replace(tmp, self.path / name)

    def load_tensors(self, name: str) -> dict:
        from safetensors.torch import load_file
        return load_file(str(self.path / name))

    # config
    def start(self, config: dict, tokenizer, encoder_config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(self.path / "tokenizer"))
        encoder_config.save_pretrained(str(self.path / "encoder"))
        self._write_json("config.json", {"format": CHECKPOINT_FORMAT,
                                         "version": CHECKPOINT_VERSION, **config})
        for name in ("train_state.json", "last.safetensors", "optimizer.safetensors",
                     "model.safetensors"):
            (self.path / name).unlink(missing_ok=True)

    def config(self) -> dict:
        if not (self.path / "config.json").exists():
            raise FileNotFoundError(f"{self.path}: no config.json (not an hmtc-bench checkpoint)")
        config = self._read_json("config.json")
        if config.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.path / 'config.json'}: not an hmtc-bench neural checkpoint")
        return config

    def train_state(self) -> dict | None:
        path = self.path / "train_state.json"
        return self._read_json("train_state.json") if path.exists() else None

    # weights
    def save_weights(self, network: nn.Module, name: str = "model.safetensors") -> None:
        self._save_tensors(name, network.state_dict())

    def load_weights(self, network: nn.Module, name: str = "model.safetensors") -> None:
        if not (self.path / name).exists():
            raise FileNotFoundError(f"{self.path / name}: no weights (training not finished?)")
        network.load_state_dict(self.load_tensors(name), strict=True)

    # training state
    def save_epoch(self, network, optimizer, state: dict, improved: bool) -> None:
        if improved:
            self.save_weights(network, "model.safetensors")
        self.save_weights(network, "last.safetensors")
        tensors, groups = _flatten_optimizer(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        self._save_tensors("optimizer.safetensors", tensors)
        self._write_json("train_state.json", {**state, "param_groups": groups})

    def load_epoch(self, network, optimizer) -> dict:
        state = self._read_json("train_state.json")
        self.load_weights(network, "last.safetensors")
        tensors = self.load_tensors("optimizer.safetensors")
        torch.set_rng_state(tensors.pop("rng.torch"))
        cuda_keys = sorted(k for k in list(tensors) if k.startswith("rng.cuda."))
        cuda_states = [tensors.pop(k) for k in cuda_keys]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        _restore_optimizer(optimizer, tensors, state.pop("param_groups"))
        return state

    def finish(self, state: dict) -> None:
        self._write_json("train_state.json", {**state, "finished": True})
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


def import_object(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj
