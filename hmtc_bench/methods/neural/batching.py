"""Batches of the neural methods: length bucketing, padding, the cache of frozen encoder
states, and batched inference.

* **Length bucketing** (``length_batches``): batches group texts of similar length and are
  padded only to their longest member (``pad_ids``).
* **State cache** (``StateCache``): in the ``top-k-cached`` training mode the frozen part of
  the encoder runs once per text and its output is cached: on the GPU when it fits there,
  else in memory up to ``cache_max_mb``, in a temporary file on disk beyond. In a grid the
  cache of the same pretrained encoder, frozen layers and texts is computed once and shared
  by the cells (``hmtc_bench.shared_work``).
* **Transfers** (``to_device``): to a GPU through pinned memory, asynchronously.
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


def to_device(array: np.ndarray, device) -> torch.Tensor:
    """A host array on ``device``; to a GPU through pinned memory, copied asynchronously."""
    tensor = torch.from_numpy(array)
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def pad_ids(sequences, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) tensors padded to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, seq in enumerate(sequences):
        ids[i, :len(seq)] = seq
        mask[i, :len(seq)] = 1
    return to_device(ids, device), to_device(mask, device)


def dense_rows(Y: sp.csr_matrix, rows, device) -> torch.Tensor:
    return to_device(Y[rows].toarray().astype(np.float32), device)


class StateCache:
    """The frozen bottom's output for each text, computed once: all tokens (texts one after
    another) in one float32 array of width ``hidden_size``. Where it lives:

    * on the GPU (a tensor on ``device``) when ``device`` is CUDA and the cache takes at most
      ``GPU_FRACTION`` of the GPU's free memory: batches are gathered there, nothing crosses
      the bus per step (``on_device=True`` forces it on any device, ``False`` forbids it);
    * otherwise in host memory up to ``max_mb`` MiB (batches sent through pinned memory);
    * beyond that in a memory-mapped temporary file (removed by ``close``).
    """

    GPU_FRACTION = 0.4

    def __init__(self, network: TextClassifier, ids, n_frozen: int, device, batch_size: int,
                 max_mb: float, progress: bool = False, desc: str = "cache",
                 precision: str = "auto", on_device: bool | None = None):
        self.lengths = np.array([len(s) for s in ids], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        width = network.encoder.hidden_size
        shape = (int(self.offsets[-1]), width)
        nbytes = shape[0] * width * 4
        self._tmpdir = None
        device = torch.device(device)
        if on_device is None:
            on_device = device.type == "cuda" and \
                nbytes <= self.GPU_FRACTION * torch.cuda.mem_get_info(device)[0]
        if on_device:
            self.states = torch.empty(shape, dtype=torch.float32, device=device)
        elif nbytes > max_mb * 2**20:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="hmtc-state-cache-")
            self.states = np.lib.format.open_memmap(
                os.path.join(self._tmpdir.name, "states.npy"), mode="w+", dtype=np.float32,
                shape=shape)
        else:
            self.states = np.empty(shape, dtype=np.float32)
        pad_id = network_pad_id(network)
        was_training = network.training
        network.eval()
        batches = length_batches(self.lengths, batch_size)
        with torch.no_grad(), autocast(device, precision):
            for rows in track(batches, len(batches), desc, unit="batches", enabled=progress):
                batch_ids, mask = pad_ids([ids[i] for i in rows], pad_id, device)
                out = network.encoder.bottom(batch_ids, mask, n_frozen).float()
                if not on_device:
                    out = out.cpu().numpy()
                for j, i in enumerate(rows):
                    self.states[self.offsets[i]:self.offsets[i + 1]] = out[j, :self.lengths[i]]
        network.train(was_training)

    @property
    def on_disk(self) -> bool:
        return self._tmpdir is not None

    @property
    def on_gpu(self) -> bool:
        return isinstance(self.states, torch.Tensor) and self.states.device.type == "cuda"

    @property
    def nbytes_held(self) -> int:
        """Host or GPU memory it holds (a cache on disk: none)."""
        if self.on_disk:
            return 0
        if isinstance(self.states, torch.Tensor):
            return self.states.numel() * self.states.element_size()
        return int(self.states.nbytes)

    def batch(self, rows, device) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.lengths[rows]
        width = int(lengths.max())
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        if isinstance(self.states, torch.Tensor):
            # gather on the cache's device: padding positions read row 0, then zeroed
            index = np.where(mask, self.offsets[rows][:, None] + np.arange(width)[None, :], 0)
            index = torch.as_tensor(index, device=self.states.device)
            keep = torch.as_tensor(mask, device=self.states.device)
            states = torch.where(keep[..., None].bool(), self.states[index], 0.0)
            return states.to(device), keep.to(device)
        states = np.zeros((len(rows), width, self.states.shape[1]), dtype=np.float32)
        for j, i in enumerate(rows):
            states[j, :self.lengths[i]] = self.states[self.offsets[i]:self.offsets[i + 1]]
        return to_device(states, device), to_device(mask, device)

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
