"""Batches of the neural methods: length bucketing, padding, the cache of frozen encoder
states, and batched inference.

* **Length bucketing** (``length_batches``): batches group texts of similar length and are
  padded only to their longest member (``pad_ids``).
* **State cache** (``StateCache``): in the ``top-k-cached`` training mode the frozen part of
  the encoder runs once per text and its output is cached, in memory up to
  ``cache_max_mb``, in a temporary file on disk beyond.
* **Inference** (``predict_proba``): sigmoid outputs in input order, from token ids or from
  cached states.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from hmtc_bench.methods.neural.devices import autocast
from hmtc_bench.progress import track

if TYPE_CHECKING:
    from hmtc_bench.methods.neural.heads import TextClassifier


def length_batches(lengths, batch_size: int, rng: np.random.Generator | None = None,
                   pool_batches: int = 50) -> list[np.ndarray]:
    """Index batches of texts of similar length.

    Without ``rng`` (inference): all texts sorted by length, cut into batches. With ``rng``
    (training): a random permutation cut into pools of ``pool_batches`` batches, each pool
    sorted by length and cut into batches, the batches shuffled: random batches that pay
    little padding.
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    perm = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_ids(sequences, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) tensors padded to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, seq in enumerate(sequences):
        ids[i, :len(seq)] = seq
        mask[i, :len(seq)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def dense_rows(Y: sp.csr_matrix, rows, device) -> torch.Tensor:
    return torch.from_numpy(Y[rows].toarray().astype(np.float32)).to(device)


class StateCache:
    """The frozen bottom's output for each text, computed once: a flat float32 array of
    all tokens (texts one after another), in memory up to ``max_mb`` MiB, otherwise a
    memory-mapped temporary file (removed by ``close``)."""

    def __init__(self, network: TextClassifier, ids, n_frozen: int, device, batch_size: int,
                 max_mb: float, progress: bool = False, desc: str = "cache",
                 precision: str = "auto"):
        self.lengths = np.array([len(s) for s in ids], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        width = network.encoder.hidden_size
        nbytes = int(self.offsets[-1]) * width * 4
        self._tmpdir = None
        if nbytes > max_mb * 2**20:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="hmtc-state-cache-")
            self.states = np.lib.format.open_memmap(
                os.path.join(self._tmpdir.name, "states.npy"), mode="w+", dtype=np.float32,
                shape=(int(self.offsets[-1]), width))
        else:
            self.states = np.empty((int(self.offsets[-1]), width), dtype=np.float32)
        pad_id = network_pad_id(network)
        was_training = network.training
        network.eval()
        batches = length_batches(self.lengths, batch_size)
        with torch.no_grad(), autocast(device, precision):
            for rows in track(batches, len(batches), desc, unit="batches", enabled=progress):
                batch_ids, mask = pad_ids([ids[i] for i in rows], pad_id, device)
                out = network.encoder.bottom(batch_ids, mask, n_frozen).float().cpu().numpy()
                for j, i in enumerate(rows):
                    self.states[self.offsets[i]:self.offsets[i + 1]] = out[j, :self.lengths[i]]
        network.train(was_training)

    @property
    def on_disk(self) -> bool:
        return self._tmpdir is not None

    def batch(self, rows, device) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(self.lengths[rows].max())
        states = np.zeros((len(rows), width, self.states.shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(rows):
            states[j, :self.lengths[i]] = self.states[self.offsets[i]:self.offsets[i + 1]]
            mask[j, :self.lengths[i]] = 1
        return torch.from_numpy(states).to(device), torch.from_numpy(mask).to(device)

    def close(self) -> None:
        if self._tmpdir is not None:
            del self.states
            self._tmpdir.cleanup()
            self._tmpdir = None


def network_pad_id(network) -> int:
    return int(network.encoder.pad_id)


# ---------------------------------------------------------------------------- inference
def predict_proba(network: TextClassifier, ids, device, batch_size: int = 64,
                  cache: StateCache | None = None, n_frozen: int = 0,
                  precision: str = "auto", progress: bool = False,
                  desc: str = "predicting") -> np.ndarray:
    """Sigmoid outputs (n, L) in input order; from the cached bottom states when given.
    ``progress``: report the batches (``hmtc_bench.progress``)."""
    network.eval()
    lengths = [len(s) for s in ids] if cache is None else cache.lengths
    out = None
    pad_id = network_pad_id(network)
    batches = length_batches(lengths, batch_size)
    with torch.no_grad(), autocast(device, precision):
        for rows in track(batches, len(batches), desc, unit="batches", enabled=progress):
            if cache is None:
                batch_ids, mask = pad_ids([ids[i] for i in rows], pad_id, device)
                logits = network(batch_ids, mask)
            else:
                states, mask = cache.batch(rows, device)
                logits = network.classify(network.encoder.top(states, mask, n_frozen), mask)
            proba = torch.sigmoid(logits.float()).cpu().numpy()
            if out is None:
                out = np.empty((len(lengths), proba.shape[1]), dtype=np.float32)
            out[rows] = proba
    return out
