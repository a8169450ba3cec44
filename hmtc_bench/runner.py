"""One run: load data, fit (timed), predict (timed), decode, evaluate, record.

The run record (one per method x dataset x seed) holds the resolved parameters, dataset and
hierarchy hashes, seed, decoding policy, every metric, fit and predict seconds, peak memory,
package versions, git commit and status.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from hmtc_bench.data import Dataset, load_dataset
from hmtc_bench.evaluation import DEFAULT_POLICY, DEFAULT_THRESHOLD, decode, evaluate
from hmtc_bench.leaderboard import identity_params
from hmtc_bench.methods import inspect_method, make_method

VERSIONED = ("hmtc-bench", "numpy", "scipy", "scikit-learn", "networkx", "mlflow", "torch",
             "transformers", "lightgbm")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    found = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=Path(__file__).parent, capture_output=True, text=True,
                                   timeout=5).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS counter of this process (Linux), so that the peak of
    each run is its own, not the process's since start."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else since the process started."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cell_key(method: str, params: dict, dataset_hash: str, seed: int, decode_policy: str,
             threshold: float) -> str:
    """Identity of a run: the same key means the same resolved configuration on the same
    data; the grid skips cells whose key already has a finished run. Parameters added later
    are left out at their earlier-behaviour value (``leaderboard.ADDED_PARAMS``)."""
    blob = json.dumps([method, identity_params(params), dataset_hash, seed, decode_policy,
                       float(threshold)],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run(method: str, dataset: str | Dataset = "icd10cm", seed: int = 0,
        params: dict | None = None, decode_policy: str = DEFAULT_POLICY,
        threshold: float = DEFAULT_THRESHOLD, tracking_uri: str | None = None,
        track: bool = True, quiet: bool = False) -> dict:
    """Run one method on one dataset with one seed; returns the run record.

    A failure during fit or predict is recorded (status ``failed`` with the error) and
    re-raised.
    """
    return run_decodings(method, dataset, seed, params, [decode_policy], threshold,
                         tracking_uri, track, quiet)[0]


def run_decodings(method: str, dataset: str | Dataset, seed: int, params: dict | None,
                  policies: list[str], threshold: float = DEFAULT_THRESHOLD,
                  tracking_uri: str | None = None, track: bool = True,
                  quiet: bool = False) -> list[dict]:
    """One fit and one prediction, decoded with each policy: one record per policy."""
    info = inspect_method(method)
    if not info.available:
        raise RuntimeError(f"method {method!r} is unavailable: {info.reason}")
    estimator = make_method(method, params, random_state=seed)
    if isinstance(dataset, str):
        _say(f"loading dataset {dataset} ...", quiet)
        start = time.perf_counter()
        data = load_dataset(dataset)
        _say(f"  {len(data.train)} train / {len(data.dev)} dev / {len(data.test)} test documents,"
             f" {len(data.hierarchy)} labels ({time.perf_counter() - start:.1f} s)", quiet)
    else:
        data = dataset
    resolved = estimator.get_params()
    base = {
        "method": method, "dataset": data.name, "seed": seed, "threshold": threshold,
        "family": info.family, "params": resolved,
        "dataset_hash": data.content_hash, "hierarchy_hash": data.hierarchy.content_hash,
        "dataset_split": data.info.get("split", ""),
        "versions": package_versions(), "git_commit": git_commit(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": "running", "metrics": {},
    }
    records = [{**base, "decode": policy,
                "cell_key": cell_key(method, resolved, base["dataset_hash"], seed, policy,
                                     threshold)} for policy in policies]
    reset_peak_memory()
    try:
        _say(f"fitting {method} (seed {seed}) ...", quiet)
        start = time.perf_counter()
        estimator.fit(data.train.texts, data.train.Y, data.hierarchy,
                      dev=(data.dev.texts, data.dev.Y))
        fit_seconds = time.perf_counter() - start
        training = training_summary(getattr(estimator, "train_state_", None))
        if training is not None:
            for record in records:
                record["training"] = training
        _say(f"  fitted in {fit_seconds:.1f} s; predicting {len(data.test)} test documents ...",
             quiet)
        start = time.perf_counter()
        proba = estimator.predict_proba(data.test.texts)
        predict_seconds = time.perf_counter() - start
        train_counts = np.asarray(data.train.Y.sum(axis=0)).ravel()
        for record in records:
            predicted = decode(proba, data.hierarchy, record["decode"], threshold)
            record["metrics"] = evaluate(data.test.Y, predicted, data.hierarchy, train_counts)
            record.update(fit_seconds=fit_seconds, predict_seconds=predict_seconds,
                          status="finished")
    except Exception as err:
        for record in records:
            record["status"] = "failed"
            record["error"] = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}"
        raise
    finally:
        for record in records:
            record["peak_memory_mb"] = peak_memory_mb()
            if track:
                record["run_id"] = _log(record, tracking_uri)
    return records


def training_summary(state: dict | None) -> dict | None:
    """The part of a neural method's training state (``train_state_``) a run record keeps:
    epochs run, best epoch and its dev micro-F1, why training stopped, and the per-epoch
    history (train loss, dev micro-F1, seconds). None for methods without one."""
    if not state:
        return None
    return {"epochs_run": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
            "best_dev_micro_f1": state.get("best_score"),
            "stopped": state.get("stopped") or "all epochs run",
            "history": [dict(r) for r in state.get("history", [])]}


def _log(record: dict, tracking_uri: str | None) -> str:
    from hmtc_bench.tracking import log_run
    return log_run(record, tracking_uri)
