"""The run record and run identity.

A ``RunRecord`` is what one run of a method on a dataset produced, for one seed and one
decoding policy: the resolved parameters (with their types), the dataset and hierarchy
hashes, every metric, the timings, the training summary of neural methods, package versions,
git commit and status. It is written to a store (``hmtc_bench.tracking``) and to JSON lines
(``dump_records`` / ``load_records_file``), and read back from both as the same type.

Run identity lives here too. Two runs are the same **configuration** (one leaderboard row)
when their method, identity parameters, dataset hash, hierarchy hash, decoding policy and
threshold agree; the same **cell** (one grid cell, skipped once finished) when their seed
agrees as well. A run on a resampled split (``split_seed``) names its data by the corpus
hash instead (every split seed of one corpus is one configuration), and its cell by the
split seed too. The identity parameters are the resolved parameters without the seed
parameter (``random_state``, set from the seed) and without the parameters a method added
after runs were recorded, while at the value that keeps the earlier behaviour: the method
declares those (``HMTCMethod.ADDED_PARAMS``), the runner writes their names into the record
(``identity_omits``), and runs recorded before the parameter existed stay the same cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from hmtc_bench.errors import HMTCError

SEED_PARAMS = ("random_state",)
# Parameters added before records named their omitted parameters (hmtc-bench 0.1): a record
# without ``identity_omits`` leaves these out at this value. New parameters are declared on
# their method (``ADDED_PARAMS``), never here.
LEGACY_ADDED_PARAMS = {"precision": "auto"}
STATUSES = ("running", "finished", "failed")


class RecordError(HMTCError, ValueError):
    """A run-record file that cannot be read (names the file and line)."""


def canonical(value):
    """``value`` as JSON would give it back: tuples become lists, other objects strings."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def encode_param(value) -> str:
    """A parameter value as a string that ``decode_param`` turns back into the same value.

    Strings stay as they are (readable in the MLflow UI) unless they would read as another
    JSON value (``"1"``, ``"true"``, ``"null"``), which are quoted; everything else is JSON.
    """
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, default=str)


def decode_param(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _digest(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    method: str
    dataset: str
    seed: int
    decode: str
    threshold: float
    params: dict                      # resolved parameters (``get_params()``), typed
    dataset_hash: str
    hierarchy_hash: str
    family: str = "?"
    dataset_split: str = ""
    identity_omits: list | None = None  # None: recorded before records named them
    status: str = "running"
    metrics: dict = field(default_factory=dict)
    fit_seconds: float | None = None
    predict_seconds: float | None = None
    peak_memory_mb: float | None = None
    training: dict | None = None
    decode_params: dict | None = None   # what a policy fitted on dev (thresholds, ...)
    threshold_curve: dict | None = None  # test micro-F1 of the scores at 0.05 .. 0.95
    worker: dict | None = None          # where it ran: node, device, gpu, executor, process
    split_seed: int | None = None       # a resampled split's seed (None: the corpus's split)
    corpus_hash: str | None = None      # the corpus whatever its split (resampled splits)
    versions: dict = field(default_factory=dict)
    git_commit: str = "unknown"
    started_at: str = ""
    error: str | None = None
    run_id: str | None = None
    experiment_id: str | None = None
    # the test documents' labels and this run's predictions of them (``prediction_payload``
    # below), carried from the fit to the store, where they become the run's artifact
    # ``test_predictions.npz`` for tests over documents (``hmtc-bench compare``); not part
    # of the record's JSON as stored or exported
    test_predictions: dict | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ identity
    @property
    def omitted(self) -> list[str]:
        """Parameters left out of the identity (added later, at their earlier value)."""
        if self.identity_omits is not None:
            return list(self.identity_omits)
        return [k for k, v in LEGACY_ADDED_PARAMS.items()
                if k in self.params and canonical(self.params[k]) == v]

    def identity_params(self) -> dict:
        """The parameters that tell configurations apart (without seed and omitted ones)."""
        left_out = set(self.omitted) | set(SEED_PARAMS)
        return {k: canonical(v) for k, v in sorted(self.params.items()) if k not in left_out}

    def configuration(self) -> dict:
        """What a leaderboard row pools. On a resampled split (``split_seed`` set) the data
        is the corpus (``corpus_hash``) under resampled splits, not one split's hash."""
        data = ({"dataset_hash": self.dataset_hash} if self.split_seed is None else
                {"corpus_hash": self.corpus_hash, "split": "resampled"})
        return {"method": self.method, "params": self.identity_params(), **data,
                "hierarchy_hash": self.hierarchy_hash, "decode": self.decode,
                "threshold": float(self.threshold)}

    @property
    def config_key(self) -> str:
        """The same for runs that differ only in their seed (and split seed): one
        leaderboard row."""
        return _digest(self.configuration())

    @property
    def cell_key(self) -> str:
        """The same for runs of the same grid cell (configuration, seed, split seed)."""
        if self.split_seed is None:
            return _digest([self.configuration(), int(self.seed)])
        return _digest([self.configuration(), int(self.seed), int(self.split_seed)])

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    # ------------------------------------------------------------------ JSON
    def to_dict(self, predictions: bool = True) -> dict:
        """The record as JSON-able data (``predictions``: with its test predictions, when it
        carries them, as on its way from a worker to the store)."""
        out = {**dataclasses.asdict(self), "cell_key": self.cell_key}
        if not predictions or out["test_predictions"] is None:
            del out["test_predictions"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in data]
        if missing:
            raise RecordError(f"a run record needs {', '.join(missing)}")
        record = cls(**{k: v for k, v in data.items() if k in names})
        record.seed = int(record.seed)
        record.threshold = float(record.threshold)
        if record.split_seed is not None:
            record.split_seed = int(record.split_seed)
        return record


def dump_records(records, path: str | Path) -> Path:
    """Write records as JSON lines (sorted keys, one record a line); atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_finite(record.to_dict()), sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def _finite(obj):
    """NaN and infinities as null: JSON lines that every JSON reader accepts."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def load_records_file(path: str | Path) -> list[RunRecord]:
    """Records from a JSON-lines file, or from every ``*.jsonl`` file of a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise RecordError(f"{path}: no *.jsonl record files in this folder")
        return [r for f in files for r in load_records_file(f)]
    if not path.exists():
        raise RecordError(f"{path}: no such record file")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                records.append(RunRecord.from_dict(data))
            except (ValueError, TypeError) as err:
                raise RecordError(f"{path}, line {number}: {err}") from None
    return records


def prediction_payload(Y_true, predicted) -> dict:
    """The test labels and a run's predicted labels (two sparse 0/1 matrices of the same
    shape, documents x labels in the hierarchy's order) as JSON-able sparse rows."""
    import scipy.sparse as sp
    out = {}
    for name, Y in (("true", Y_true), ("predicted", predicted)):
        Y = sp.csr_matrix(Y)
        Y.eliminate_zeros()
        Y.sort_indices()
        out[name] = {"indptr": Y.indptr.tolist(), "indices": Y.indices.tolist()}
    out["shape"] = list(sp.csr_matrix(Y_true).shape)
    if list(sp.csr_matrix(predicted).shape) != out["shape"]:
        raise ValueError("test labels and predictions differ in shape")
    return out


PREDICTIONS = "test_predictions.npz"   # the run artifact of ``prediction_payload``


def save_predictions(payload: dict, path: str | Path) -> Path:
    """``prediction_payload``'s data as a compressed ``.npz`` (sparse rows, int32)."""
    import numpy as np
    arrays = {f"{name}_{part}": np.asarray(payload[name][part], dtype=np.int32)
              for name in ("true", "predicted") for part in ("indptr", "indices")}
    with open(path, "wb") as handle:
        np.savez_compressed(handle, shape=np.asarray(payload["shape"], dtype=np.int64),
                            **arrays)
    return Path(path)


def load_predictions(path: str | Path):
    """(Y_true, predicted) from a ``save_predictions`` file."""
    import numpy as np
    with np.load(path) as z:
        return predictions_matrices(
            {"shape": z["shape"].tolist(),
             **{name: {part: z[f"{name}_{part}"] for part in ("indptr", "indices")}
                for name in ("true", "predicted")}})


def predictions_file(records: str | Path, run_id: str) -> Path:
    """Where ``hmtc-bench export --predictions`` keeps the test predictions of the run
    ``run_id`` of the records in ``records`` (a folder of ``*.jsonl`` files, or one of
    them): ``predictions/<run_id>.npz`` in that folder."""
    records = Path(records)
    folder = records if records.is_dir() or records.suffix != ".jsonl" else records.parent
    return folder / "predictions" / f"{run_id}.npz"


def predictions_matrices(payload: dict):
    """(Y_true, predicted) as sparse 0/1 matrices from ``prediction_payload``'s data."""
    import numpy as np
    import scipy.sparse as sp
    shape = tuple(payload["shape"])
    return tuple(sp.csr_matrix((np.ones(len(part["indices"]), dtype=np.int8),
                                np.asarray(part["indices"], dtype=np.int64),
                                np.asarray(part["indptr"], dtype=np.int64)), shape=shape)
                 for part in (payload["true"], payload["predicted"]))

