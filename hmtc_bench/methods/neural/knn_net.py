"""The torch part of ``knn`` (imported only inside fit / predict): text embeddings from an
encoder, exact cosine nearest neighbours in batches, and similarity-weighted label votes."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from hmtc_bench.methods.neural.batching import length_batches, pad_ids
from hmtc_bench.methods.neural.devices import autocast
from hmtc_bench.methods.neural.heads import masked_mean
from hmtc_bench.progress import track

SEARCH_ELEMENTS = 2**25    # similarities held at once in a search batch (128 MiB float32)


def embed(encoder, ids, device, batch_size: int = 64, precision: str = "auto",
          progress: bool = False, desc: str = "knn embedding") -> np.ndarray:
    """Unit-length text vectors (n, d), float32: the masked mean of the encoder's token
    states, L2-normalised; batches of similar length, in input order."""
    encoder.eval()
    out = np.empty((len(ids), encoder.hidden_size), dtype=np.float32)
    pad_id = int(encoder.pad_id)
    batches = length_batches([len(s) for s in ids], batch_size)
    with torch.no_grad(), autocast(device, precision):
        for rows in track(batches, len(batches), desc, unit="batches", enabled=progress):
            batch_ids, mask = pad_ids([ids[i] for i in rows], pad_id, device)
            vectors = masked_mean(encoder(batch_ids, mask).float(), mask)
            out[rows] = torch.nn.functional.normalize(vectors, dim=1).cpu().numpy()
    return out


def search(queries: np.ndarray, keys: np.ndarray, k: int, device) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """The ``k`` keys of highest cosine similarity to each query (both unit-length):
    (similarities, indices), each (n_queries, k), best first. Exact: queries in batches
    whose similarity block stays under ``SEARCH_ELEMENTS`` numbers."""
    k = min(int(k), len(keys))
    keys_t = torch.as_tensor(keys, device=device)
    step = max(1, SEARCH_ELEMENTS // max(1, len(keys)))
    sims = np.empty((len(queries), k), dtype=np.float32)
    index = np.empty((len(queries), k), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(queries), step):
            block = torch.as_tensor(queries[start:start + step], device=device) @ keys_t.T
            top = torch.topk(block, k, dim=1)       # ties: torch's order, deterministic
            sims[start:start + step] = top.values.cpu().numpy()
            index[start:start + step] = top.indices.cpu().numpy()
    return sims, index


def votes(sims: np.ndarray, index: np.ndarray, Y: sp.csr_matrix, power: float) -> np.ndarray:
    """Label scores (n, L) in [0, 1]: each neighbour's label set weighted by its similarity
    (clipped at 0) to the power ``power``, normalised by the sum of the weights. With
    ancestor-closed label sets a label never scores above its parent."""
    weights = np.clip(sims, 0.0, None).astype(np.float64) ** float(power)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    n, k = index.shape
    W = sp.csr_matrix((weights.ravel(), index.ravel(), np.arange(0, n * k + 1, k)),
                      shape=(n, Y.shape[0]))
    return np.asarray((W @ Y).todense(), dtype=np.float64).clip(0.0, 1.0)
