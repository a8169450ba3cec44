"""Work that depends only on the data, computed once and reused by every fit that needs it.

Several cells of a grid repeat work that does not depend on what a method learns: the
classical methods vectorize the same texts with the same TF-IDF settings, the neural
methods tokenize the same texts for the same encoder and run the same frozen bottom layers
of the same pretrained encoder over them. Inside ``scope()`` (a grid turns it on for its
cells, a parallel executor's worker for its whole life) such results are kept in a
process-wide memo and reused; outside it nothing is kept and every fit computes its own.

What is shared, and by what key (``memo(kind, key, compute)``):

============ ========================================== =====================================
kind         key                                        value
============ ========================================== =====================================
``tfidf``    vectorizer settings + digest of the texts  the fitted vectorizer and the matrix
``features`` the fitted vectorizer + digest of texts     the TF-IDF matrix of other texts
``tokens``   encoder, length (and, for encoders whose   the token ids
             vocabulary comes from the training texts,
             their digest) + digest of the texts
``states``   pretrained encoder, frozen layers, length,  the frozen bottom's output
             precision, device + digest of the ids       (``batching.StateCache``)
============ ========================================== =====================================

Only exact reuse: a key names everything the value depends on, so a cell that reuses a value
gets bit for bit what it would have computed. Randomly initialised encoders (``tiny-random``,
``textrcnn``) depend on the seed: their states are never shared.

Memory: the memo keeps at most ``HMTC_SHARED_MB`` MiB (default 2048) of values in host or
GPU memory, the least recently used dropped first (a state cache kept on disk counts nothing
against it). A worker process has its own memo: with N workers, shared work is done at most
once per worker, not once per grid.

Time: ``ledger()`` collects, for the block, the seconds that the reused values once cost.
The runner adds them to a run's fit (or predict) seconds, so a record's times are those of a
fit on its own and compare across grids, executors and cell orders; the seconds a grid saves
show in its wall time, and in ``stats()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from array import array
from collections import OrderedDict

_ENABLED = 0
_MEMO: OrderedDict = OrderedDict()   # key -> (value, cost seconds, bytes)
_LEDGERS: list[dict] = []
STATS = {"computed": 0, "reused": 0, "seconds_saved": 0.0}


def limit_bytes() -> int:
    return int(float(os.environ.get("HMTC_SHARED_MB", "2048")) * 2**20)


def active() -> bool:
    return _ENABLED > 0


@contextlib.contextmanager
def scope():
    """Share data-only work between the fits of the block (nested scopes are one); the
    memo is emptied when the outermost scope ends."""
    enable()
    try:
        yield
    finally:
        disable()


def enable() -> None:
    global _ENABLED
    _ENABLED += 1


def disable() -> None:
    global _ENABLED
    _ENABLED = max(0, _ENABLED - 1)
    if not _ENABLED:
        clear()


def clear() -> None:
    while _MEMO:
        _release(_MEMO.popitem(last=False)[1][0])


def digest(items) -> str:
    """A digest of a sequence of texts or of token id lists."""
    h = hashlib.blake2b(digest_size=16)
    for item in items:
        if isinstance(item, str):
            h.update(item.encode("utf-8", "surrogatepass"))
        else:
            h.update(array("q", item).tobytes())
        h.update(b"\x00")
    h.update(str(len(items)).encode())
    return h.hexdigest()


def memo(kind: str, key: tuple, compute, size=None):
    """``compute()``'s value, computed once per key while sharing is on (otherwise always
    computed); ``size(value)``: its bytes against the memory limit (default: estimated)."""
    if not active():
        return compute()
    full = (kind, *key)
    if full in _MEMO:
        _MEMO.move_to_end(full)
        value, cost, _ = _MEMO[full]
        STATS["reused"] += 1
        STATS["seconds_saved"] += cost
        for ledger in _LEDGERS:
            ledger[kind] = ledger.get(kind, 0.0) + cost
        return value
    start = time.perf_counter()
    value = compute()
    cost = time.perf_counter() - start
    STATS["computed"] += 1
    nbytes = (size or nbytes_of)(value)
    if nbytes <= limit_bytes():
        _MEMO[full] = (value, cost, nbytes)
        while sum(entry[2] for entry in _MEMO.values()) > limit_bytes():
            _MEMO.popitem(last=False)   # dropped, not closed: a fit may still hold it
    return value


def is_shared(value) -> bool:
    """Whether the memo owns ``value`` (its user must not close or change it)."""
    return any(entry[0] is value for entry in _MEMO.values())


@contextlib.contextmanager
def ledger():
    """The seconds the block's reused values once cost, by kind: {kind: seconds}."""
    book: dict = {}
    _LEDGERS.append(book)
    try:
        yield book
    finally:
        _LEDGERS.remove(book)


def nbytes_of(value) -> int:
    """Estimated bytes of arrays, sparse matrices, lists of id lists and tuples of them."""
    import numpy as np
    import scipy.sparse as sp
    if isinstance(value, tuple):
        return sum(nbytes_of(v) for v in value)
    if sp.issparse(value):
        value = value.tocsr() if not sp.isspmatrix_csr(value) else value
        return int(value.data.nbytes + value.indices.nbytes + value.indptr.nbytes)
    if isinstance(value, np.memmap):
        return 0
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if hasattr(value, "transformer_list"):    # a FeatureUnion of vectorizers
        return sum(nbytes_of(part) for _, part in value.transformer_list)
    if hasattr(value, "vocabulary_"):         # a fitted vectorizer: about 100 B a term
        return 100 * len(value.vocabulary_)
    if hasattr(value, "nbytes_held"):
        return int(value.nbytes_held)
    if isinstance(value, list):
        return sum(28 + 8 * len(v) if isinstance(v, list) else 64 for v in value)
    return 1024


def _release(value) -> None:
    """At the end of the scope: close what holds a temporary file (a state cache on disk)."""
    close = getattr(value, "close", None)
    if callable(close) and hasattr(value, "nbytes_held"):
        close()
