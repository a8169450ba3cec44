"""One run: load data, fit (timed), predict (timed), decode, evaluate, record.

Each run gives one ``RunRecord`` per decoding policy (``hmtc_bench.record``), logged to the
store it is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from hmtc_bench import progress, shared_work
from hmtc_bench.data import Dataset, load_dataset
from hmtc_bench.evaluation import DEFAULT_POLICY, DEFAULT_THRESHOLD, evaluate
from hmtc_bench.evaluation.decoding import dev_predictions
from hmtc_bench.evaluation.metrics import macro_f1, micro_f1, threshold_curve
from hmtc_bench.errors import HMTCError, ParameterError, StoreError
from hmtc_bench.methods import MethodInfo, inspect_method
from hmtc_bench.methods.params import SEED, THRESHOLD
from hmtc_bench.record import RunRecord, prediction_payload
from hmtc_bench.tracking import Store, keep_locally

VERSIONED = ("hmtc-bench", "numpy", "scipy", "scikit-learn", "networkx", "mlflow", "torch",
             "transformers", "lightgbm", "ray")


class CellTaken(HMTCError):
    """The grid cell is claimed by another live process, or already finished."""


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    from importlib.metadata import PackageNotFoundError, version
    found = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return tuple(found.items())


def package_versions() -> dict[str, str]:
    """The versions of Python and of the packages a run depends on (read once per process:
    the code a process runs is what it imported)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
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


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run(method: str, dataset: str | Dataset = "icd10cm", seed: int = 0,
        params: dict | None = None, decode_policy: str = DEFAULT_POLICY,
        threshold: float = DEFAULT_THRESHOLD, store: Store | None = None,
        track: bool = True, quiet: bool = False, log_model: bool = False,
        split_seed: int | None = None) -> RunRecord:
    """Run one method on one dataset with one seed; returns the run record.

    The record is logged to ``store`` (default: ``Store()``, the default store) unless
    ``track`` is false; with ``log_model`` the fitted model too, as the MLflow model
    ``model`` of the run (``runs:/<run id>/model``, see ``hmtc_bench.tracking.models``). A
    failure during fit or predict is recorded (status ``failed`` with the error) and
    re-raised.
    """
    return run_decodings(method, dataset, seed, params, [decode_policy], threshold,
                         store, track, quiet, log_model=log_model, split_seed=split_seed)[0]


def run_decodings(method: str | MethodInfo, dataset: str | Dataset, seed: int,
                  params: dict | None, policies: list[str],
                  threshold: float = DEFAULT_THRESHOLD, store: Store | None = None,
                  track: bool = True, quiet: bool = False,
                  claim: bool = False, show_progress: bool | None = None,
                  log_model: bool = False, split_seed: int | None = None,
                  claim_token: str | None = None) -> list[RunRecord]:
    """One fit and one prediction, decoded with each policy: one record per policy.
    ``method`` is a registered name or its ``MethodInfo`` (``inspect_method(name)``).

    With ``track``, the runs are started in ``store`` before the fit (``claim``: only if no
    other process holds or finished these cells, else ``CellTaken``) and finished after it;
    a store that fails after the fit keeps the records in a local file (``StoreError`` says
    where). ``show_progress`` (default: not ``quiet``): the progress of the fit's long steps
    on stderr (``hmtc_bench.progress``). ``log_model``: each run also gets the fitted
    model (saved once, logged as the MLflow model ``model`` of each run with its decoding
    as the default) before it is marked finished. ``split_seed``: the run is on the split
    drawn with that seed (a dataset name is loaded so; a ``Dataset`` must have been), and
    is recorded with it and the corpus hash, so that its leaderboard row pools every split
    seed of the corpus; refused for a corpus whose split is fixed. ``claim_token``: see
    ``Store.start`` (a parallel executor's retries of one task share it)."""
    info = method if isinstance(method, MethodInfo) else inspect_method(method)
    if log_model and not track:
        raise ParameterError("log_model needs a store: the model is logged with its run")
    for name, value, spec in (("threshold", threshold, THRESHOLD), ("seed", seed, SEED)):
        try:
            spec.check(value)
        except ValueError as err:
            raise ParameterError(f"{name} {value}: {err}") from None
    estimator = info.build(params, seed)
    if isinstance(dataset, str):
        _say(f"loading dataset {dataset} ...", quiet)
        start = time.perf_counter()
        data = load_dataset(dataset, seed=split_seed)
        _say(f"  {len(data.train)} train / {len(data.dev)} dev / {len(data.test)} test documents,"
             f" {len(data.hierarchy)} labels ({time.perf_counter() - start:.1f} s)", quiet)
    else:
        data = dataset
    if split_seed is not None and data.split_seed is None:
        raise ParameterError(f"{data.name}: its split is fixed ({data.info.get('split', '?')}); "
                             "a split seed applies to corpora whose split is drawn")
    if split_seed is not None and data.split_seed != split_seed:
        raise ParameterError(f"{data.name}: split with seed {data.split_seed}, not {split_seed}")
    from hmtc_bench.evaluation.decoding import check_policy
    for policy in policies:        # a policy this hierarchy or split cannot take: before the fit
        check_policy(policy, data.hierarchy, has_dev=len(data.dev) > 0)
    if track and store is None:
        store = Store()
    records = new_records(info, estimator, data, seed, policies, threshold, split_seed)
    if track and not store.start(records, claim=claim, token=claim_token):
        raise CellTaken(f"{info.name} seed {seed} on {data.name}: another process has "
                        "claimed or finished this cell")
    reset_peak_memory()
    try:
        show = not quiet if show_progress is None else show_progress
        with (store.heartbeat(records) if track else contextlib.nullcontext(),
              contextlib.nullcontext() if show else progress.quiet()):
            _fit_and_evaluate(estimator, data, records, threshold, quiet)
    except BaseException as err:
        for record in records:
            record.status = "failed"
            record.error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}"
        if track:
            _finish(store, records, raising=False)
        raise
    if track:
        with _saved(estimator, data, log_model) as folder:
            _finish(store, records, raising=True, model=folder)
    return records


def new_records(info: MethodInfo, estimator, data: Dataset, seed: int, policies: list[str],
                threshold: float, split_seed: int | None = None) -> list[RunRecord]:
    """The records of one fit, one per policy, before it runs (status running)."""
    base = dict(
        method=info.name, dataset=data.name, seed=seed, threshold=threshold,
        family=info.family, params=estimator.get_params(),
        identity_omits=estimator.omitted_params(),
        dataset_hash=data.content_hash, hierarchy_hash=data.hierarchy.content_hash,
        dataset_split=data.info.get("split", ""), split_seed=split_seed,
        corpus_hash=data.corpus_hash if split_seed is not None else None,
        versions=package_versions(), git_commit=git_commit(),
        started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return [RunRecord(**base, decode=policy) for policy in policies]


@contextlib.contextmanager
def _saved(estimator, data: Dataset, wanted: bool):
    """The fitted ``estimator`` saved in a temporary folder for the block (None if not
    ``wanted``), with how it was fitted."""
    if not wanted:
        yield None
        return
    import tempfile
    fitted_on = ("train, dev for early stopping" if estimator.tags()["uses_dev"] else "train")
    info = {"dataset": data.name, "dataset_hash": data.content_hash, "fitted_on": fitted_on,
            "n_train": len(data.train), "n_dev": len(data.dev) if fitted_on != "train" else 0}
    with tempfile.TemporaryDirectory(prefix="hmtc-bench-model-") as tmp:
        yield estimator.save(Path(tmp) / "model", info=info)


def _fit_and_evaluate(estimator, data: Dataset, records: list[RunRecord], threshold: float,
                      quiet: bool) -> None:
    _say(f"fitting {records[0].method} (seed {records[0].seed}) ...", quiet)
    start = time.perf_counter()
    with shared_work.ledger() as reused_fit:
        estimator.fit(data.train.texts, data.train.Y, data.hierarchy,
                      dev=(data.dev.texts, data.dev.Y))
    reused = sum(reused_fit.values())
    fit_seconds = time.perf_counter() - start + reused
    training = training_summary(getattr(estimator, "train_state_", None))
    for record in records:
        record.training = training
    _say(f"  fitted in {fit_seconds:.1f} s; predicting {len(data.test)} test documents ...",
         quiet)
    dev_proba = None
    if len(data.dev):    # the decoders fitted on dev, and each decoding's dev scores
        _say(f"  predicting {len(data.dev)} dev documents ...", quiet)
        dev_proba = estimator.predict_proba(data.dev.texts)
    decoders = fit_decoders(estimator, data, [r.decode for r in records], threshold, quiet,
                            dev_proba=dev_proba)
    start = time.perf_counter()
    with shared_work.ledger() as reused_predict:
        proba = estimator.predict_proba(data.test.texts)
    predict_seconds = time.perf_counter() - start + sum(reused_predict.values())
    reused += sum(reused_predict.values())
    train_counts = np.asarray(data.train.Y.sum(axis=0)).ravel()
    where = worker_info(estimator)
    for record in records:
        record.worker = {**(record.worker or {}), **where}
        if reused:    # seconds of shared work (counted in the times) not spent in this cell
            record.worker["reused_s"] = f"{reused:.3f}"
        decoder = decoders[record.decode]
        predicted = decoder(proba)
        record.decode_params = decoder_params(decoder)
        record.metrics = evaluate(data.test.Y, predicted, data.hierarchy, train_counts,
                                  proba=proba)
        record.test_predictions = prediction_payload(data.test.Y, predicted)
        if dev_proba is not None:    # on dev: what a user may choose a decoding by
            on_dev = dev_predictions(record.decode, data.hierarchy, threshold, dev_proba,
                                     data.dev.Y)
            record.metrics["dev_micro_f1"] = micro_f1(data.dev.Y, on_dev)
            record.metrics["dev_macro_f1"] = macro_f1(data.dev.Y, on_dev)
        record.threshold_curve = threshold_curve(data.test.Y, proba)
        record.fit_seconds, record.predict_seconds = fit_seconds, predict_seconds
        record.peak_memory_mb = peak_memory_mb()
        record.status = "finished"


def worker_info(estimator) -> dict:
    """Where a fit ran: the node (host name), the device (``cpu``, ``cuda:0``) and, on a
    GPU, its model name."""
    import socket
    device = getattr(estimator, "device_", None)
    where = {"node": socket.gethostname(), "device": str(device) if device is not None
             else "cpu"}
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch
        where["device"] = f"cuda:{device.index or 0}"
        where["gpu"] = torch.cuda.get_device_name(device)
    return where


def fit_decoders(estimator, data: Dataset, policies: list[str], threshold: float,
                 quiet: bool = True, dev_proba=None) -> dict:
    """The decoder of each policy; those fitted on dev (``decoding.FITTED``) from the
    estimator's dev scores (``dev_proba``, predicted here when not given) and the dev
    labels: never the test split's."""
    from hmtc_bench.evaluation.decoding import FITTED, fit_decoder, parse_policy
    if dev_proba is None and any(parse_policy(p)[0] in FITTED for p in policies) \
            and len(data.dev):
        _say(f"  predicting {len(data.dev)} dev documents to fit the decoding ...", quiet)
        dev_proba = estimator.predict_proba(data.dev.texts)
    return {policy: fit_decoder(policy, data.hierarchy, threshold, dev_proba,
                                data.dev.Y if dev_proba is not None else None)
            for policy in dict.fromkeys(policies)}


def decoder_params(decoder) -> dict | None:
    """What a decoder fitted (with its per-label thresholds, in label order), or None."""
    if decoder.thresholds is None:
        return None
    params = dict(decoder.params)
    if decoder.policy == "tuned":
        params["thresholds"] = [round(float(t), 6) for t in decoder.thresholds]
    return params


def finish_records(store: Store, records: list[RunRecord], model=None) -> None:
    """Write the ends of started runs (``StoreError`` if the store fails; the records are
    then kept in a local file it names)."""
    _finish(store, records, raising=True, model=model)


def _finish(store: Store, records: list[RunRecord], raising: bool, model=None) -> None:
    """Write the records' ends to the store (``model``: a saved model folder logged with
    each); what it cannot take is kept in a local file, and the error says where
    (``raising``), or a warning does (a fit that failed anyway)."""
    for record in records:
        if record.peak_memory_mb is None:
            record.peak_memory_mb = peak_memory_mb()
    for i, record in enumerate(records):
        try:
            store.finish(record, model=model)
        except Exception as err:
            path = keep_locally(records[i:], store)
            message = (f"store {store.uri} failed while logging ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''}); the run records are "
                       f"kept in {path}: `hmtc-bench import {path}` logs them")
            if raising:
                raise StoreError(message) from None
            print(f"warning: {message}", file=sys.stderr)
            return


def train_final(info: MethodInfo, data: Dataset, seed: int = 0, params: dict | None = None,
                decode: str = DEFAULT_POLICY, threshold: float = DEFAULT_THRESHOLD):
    """The final model of a method on ``data``: fitted on train + dev, or on train with dev
    for early stopping when the method uses it (tag ``uses_dev``); returns it with how it
    was fitted (for the saved model's ``info``). A ``decode`` policy fitted on dev
    (``decoding.FITTED``) keeps dev out of the fit (a method that does not stop early on it
    is then fitted on train alone) and is fitted on the model's dev scores: its thresholds
    go into ``decode_params``, so the saved model decodes as the benchmark's run did."""
    import scipy.sparse as sp

    from hmtc_bench.evaluation.decoding import FITTED, check_policy, parse_policy
    fitted_decoding = parse_policy(decode)[0] in FITTED
    check_policy(decode, data.hierarchy, has_dev=len(data.dev) > 0)
    estimator = info.build(params, seed)
    uses_dev = estimator.tags()["uses_dev"]
    start = time.perf_counter()
    if uses_dev or fitted_decoding or not len(data.dev):
        estimator.fit(data.train.texts, data.train.Y, data.hierarchy,
                      dev=(data.dev.texts, data.dev.Y) if len(data.dev) else None)
        fitted_on = ("train, dev for early stopping" if uses_dev and len(data.dev) else
                     "train" if not fitted_decoding else "train (dev kept for the decoding)")
    else:
        estimator.fit(list(data.train.texts) + list(data.dev.texts),
                      sp.vstack([data.train.Y, data.dev.Y]).tocsr(), data.hierarchy)
        fitted_on = "train+dev"
    fit_seconds = time.perf_counter() - start
    out = {"method": info.name, "dataset": data.name, "dataset_hash": data.content_hash,
           "fitted_on": fitted_on, "n_train": len(data.train),
           "n_dev": len(data.dev) if fitted_on == "train+dev" or uses_dev else 0,
           "seed": seed, "fit_seconds": round(fit_seconds, 3),
           "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if fitted_decoding:
        decoder = fit_decoders(estimator, data, [decode], threshold)[decode]
        out["decode_params"] = decoder_params(decoder)
    return estimator, out


def training_summary(state: dict | None) -> dict | None:
    """The part of a neural method's training state (``train_state_``) a run record keeps:
    epochs run, best epoch and its dev micro-F1, why training stopped, and the per-epoch
    history (train loss, dev micro-F1, ``seconds``: the epoch's own time, ``elapsed``: the
    training time at its end; see ``Trainer.fit``). None for methods without one."""
    if not state:
        return None
    return {"epochs_run": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
            "best_dev_micro_f1": state.get("best_score"),
            "stopped": state.get("stopped") or "all epochs run",
            "history": [dict(r) for r in state.get("history", [])]}
