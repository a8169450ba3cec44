"""One grid cell as a task: what it names, how a worker runs it, what it sends back.

A ``Cell`` is one fit of (dataset, method, parameters, seed, split seed), decoded with every
policy of the grid still to run (its decodings stay together). It holds names and values
only (no data, no store), so that it pickles to another process or machine.

``run_cell(cell, data, results)`` runs it in a worker:

* ``results="driver"``: nothing is written where the worker runs. The runner logs to a
  ``RecordingStore`` that keeps the finished (or failed) records as plain dicts and a
  logged model as the bytes of a tar file; the driver writes both to its store.
* ``results="worker"``: the worker logs to the store at ``cell.store_uri`` itself (an
  ``mlflow server`` every node reaches), claiming the cell as a serial grid does.

``worker_data`` gives a worker its dataset once: a process-wide cache keyed by what names
the dataset (its folder or name, split seed, reading options), filled either from the Ray
object store (the driver puts each dataset there once) or by reading the dataset from its
path (``--data path``: a file system every worker sees). ``share_work`` turns on
``hmtc_bench.shared_work`` in a worker: work that depends only on the data (TF-IDF
matrices, token ids, frozen encoder states) is done once per worker, not per cell.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hmtc_bench.tracking.checks import sqlite_path


@dataclass
class Cell:
    """One task of a grid: a fit and its decodings."""
    index: int                     # position in the grid's plan (for ordering and labels)
    dataset: str                   # a registered name or an absolute folder
    method: str
    params: dict
    seed: int
    policies: list[str]
    threshold: float
    split_seed: int | None = None
    strict: bool = False
    dag: bool = False
    log_model: bool = False
    store_uri: str | None = None   # results="worker": the store the worker logs to
    label: str = ""
    resources: dict = field(default_factory=dict)   # {"cpus": n, "gpu": bool}
    token: str = ""                # the task's claims in the store (its retries share it)

    @property
    def data_key(self) -> tuple:
        return (self.dataset, self.split_seed, self.strict, self.dag)


class RecordingStore:
    """What the runner writes, kept in memory instead of a store: the records' ends (as
    dicts) and a logged model (tar bytes). Used by a worker whose driver writes."""

    uri = "memory:"

    def __init__(self):
        self.records: list[dict] = []
        self.model: bytes | None = None

    def start(self, records, claim: bool = False, token=None) -> bool:
        return True

    def heartbeat(self, records):
        return contextlib.nullcontext()

    def finish(self, record, plot: bool = True, model=None) -> str:
        self.records.append(record.to_dict())
        if model is not None and self.model is None:
            self.model = pack(model)
        return ""


def pack(folder) -> bytes:
    """A folder as the bytes of an uncompressed tar file (model files are mostly binary)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(folder), arcname="model")
    return buffer.getvalue()


@contextlib.contextmanager
def unpacked(blob: bytes | None):
    """The folder a ``pack``-ed blob holds, in a temporary folder for the block (None for
    None)."""
    if blob is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="hmtc-bench-model-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "model"


_DATA: dict[tuple, object] = {}   # this process's datasets (a worker's, or the driver's)
_DATA_KEEP = 2                    # how many datasets a worker keeps in memory


def worker_data(cell: Cell, data_ref=None):
    """The cell's dataset in this process: from the cache, else from ``data_ref`` (a
    one-element list holding a Ray object ref) or read from its path; counted in
    ``DATA_LOADS`` (a test checks that a worker reads each dataset once)."""
    key = cell.data_key
    if key not in _DATA:
        if data_ref is not None:
            import ray
            data = _writable(ray.get(data_ref[0]))
        else:
            from hmtc_bench.data import load_dataset
            data = load_dataset(cell.dataset, strict=cell.strict, dag=cell.dag,
                                seed=cell.split_seed)
        while len(_DATA) >= _DATA_KEEP:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = data
        DATA_LOADS[key] = DATA_LOADS.get(key, 0) + 1
    return _DATA[key]


DATA_LOADS: dict[tuple, int] = {}


def _writable(data):
    """A dataset from Ray's object store with label matrices this process may write (its
    arrays arrive read-only, shared with the store)."""
    import scipy.sparse as sp
    for name in ("train", "dev", "test"):
        split = getattr(data, name)
        split.Y = sp.csr_matrix(split.Y, copy=True)
    return data


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class cpu_threads:
    """BLAS / OpenMP and torch threads limited to ``n`` (a cell's CPUs) for a block: the
    libraries already loaded through threadpoolctl and torch's setter, and those the cell
    loads itself (torch is imported inside the first neural fit of a worker) through the
    environment they read when they start."""

    def __init__(self, n: int):
        self.n = max(1, int(n))

    def __enter__(self):
        from threadpoolctl import threadpool_limits
        self._env = {name: os.environ.get(name) for name in THREAD_ENV}
        os.environ.update({name: str(self.n) for name in THREAD_ENV})
        self._limits = threadpool_limits(self.n)
        import sys
        torch = sys.modules.get("torch")
        self._torch = (torch, torch.get_num_threads()) if torch is not None else None
        if torch is not None:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        self._limits.restore_original_limits()
        if self._torch is not None:
            self._torch[0].set_num_threads(self._torch[1])
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def share_work() -> None:
    """Turn on ``shared_work`` for the rest of this worker process's life (once)."""
    from hmtc_bench import shared_work
    if not shared_work.active():
        shared_work.enable()


def worker_name() -> str:
    """``host:pid`` of this process (the progress lines and records name it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_cell(cell: Cell, data, results: str = "driver") -> dict:
    """Run ``cell`` on ``data`` here; returns ``{"records": [...dicts], "model": bytes or
    None, "worker": "host:pid", "error": str or None, "taken": bool, "loads": n}``. A fit
    that fails gives failed records and its error, never an exception (an interruption
    does raise)."""
    if hasattr(cell, "run"):      # another kind of task (a tuning trial) does its own work
        return cell.run(data)
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.runner import CellTaken, run_decodings
    from hmtc_bench.tracking import Store
    info = inspect_method(cell.method)
    recording = RecordingStore() if results == "driver" else None
    store = recording if recording is not None else Store(cell.store_uri)
    out = {"records": [], "model": None, "worker": worker_name(), "error": None,
           "taken": False, "loads": DATA_LOADS.get(cell.data_key, 0)}
    try:
        records = run_decodings(info, data, cell.seed, cell.params, cell.policies,
                                cell.threshold, store, quiet=True, claim=results != "driver",
                                show_progress=False, log_model=cell.log_model,
                                split_seed=cell.split_seed, claim_token=cell.token or None)
        if recording is None:
            out["records"] = [r.to_dict() for r in records]
    except CellTaken:
        # an earlier attempt of this task (its worker lost after it wrote) may have
        # finished the cell: then the cell is finished, not skipped
        mine = store.finished_by(cell.token) if recording is None and cell.token else []
        if len(mine) == len(cell.policies):
            out["records"] = [r.to_dict() for r in mine]
        else:
            out["taken"] = True
    except Exception as err:  # recorded as failed (in the recording or in the store)
        out["error"] = f"{type(err).__name__}: {err}"
    if recording is not None:
        out["records"], out["model"] = recording.records, recording.model
    _release_gpu_memory()
    return out


def _release_gpu_memory() -> None:
    """Give back the GPU memory torch's allocator keeps after a neural cell, so that the next
    cell of this worker (or another process sharing the GPU) has it."""
    import sys
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def store_is_local(uri: str) -> bool:
    """Whether ``uri`` is a file that only this machine may see (an sqlite database)."""
    return sqlite_path(uri) is not None
