"""The results store: run records written to MLflow and read back, in one place.

A ``Store`` is built once from a tracking URI (the argument, else ``MLFLOW_TRACKING_URI``,
else the sqlite database ``results/mlflow.db`` under the current folder, artifacts in
``results/mlartifacts``) and passed down to the grid and the runner; it imports mlflow and
builds its client once, on first use.

How a ``RunRecord`` maps onto an MLflow run (one experiment per dataset name,
``hmtc-bench/<dataset>``):

* parameters: the identity fields (``method``, ``dataset``, ``seed``, ``decode``,
  ``threshold``) and every resolved method parameter as ``param.NAME``, encoded by
  ``record.encode_param`` so that they read back with their types;
* metrics: every finite number of ``metrics``, the timings, and a neural method's per-epoch
  curves (``training.train_loss``, ``training.dev_micro_f1``, ``training.seconds``: one step
  per epoch);
* tags: hashes, seed, decoding policy, family, split, omitted identity parameters, package
  versions (``version.*``), git commit, start time, error, the training summary
  (``training.*``) and ``status``, written last, so a run cut short while logging is never
  "finished";
* artifacts: ``record.json`` (the whole record) and ``per_level_f1.png``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from hmtc_bench.record import RunRecord, decode_param, encode_param

DEFAULT_DB = Path("results") / "mlflow.db"
EXPERIMENT_PREFIX = "hmtc-bench/"
PARAM_PREFIX = "param."
RECORD_FIELDS = ("method", "dataset", "seed", "decode", "threshold")
TIMINGS = ("fit_seconds", "predict_seconds", "peak_memory_mb")
TRAINING_PREFIX = "training."
TRAINING_FIELDS = ("epochs_run", "best_epoch", "best_dev_micro_f1", "stopped")
HISTORY_FIELDS = ("train_loss", "dev_micro_f1", "seconds")
MAX_PARAM = 6000  # MLflow's limit on a parameter value


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else the default sqlite."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    path = (Path.cwd() / DEFAULT_DB).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a sqlite database (``mlartifacts/``); None lets MLflow decide."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def _import_mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    import logging
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import mlflow
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


class Store:
    """One MLflow tracking store. ``Store()`` resolves the default URI."""

    def __init__(self, uri: str | None = None):
        self.uri = resolve_uri(uri)
        self._client = None
        self._experiments: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    @property
    def client(self):
        if self._client is None:
            mlflow = _import_mlflow()
            self._client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
        return self._client

    def _experiment_id(self, dataset: str) -> str:
        name = EXPERIMENT_PREFIX + dataset
        if name not in self._experiments:
            experiment = self.client.get_experiment_by_name(name)
            self._experiments[name] = (
                experiment.experiment_id if experiment is not None else
                self.client.create_experiment(name, artifact_location=artifact_root(self.uri)))
        return self._experiments[name]

    # ------------------------------------------------------------------ writing
    def log(self, record: RunRecord, plot: bool = True) -> str:
        """Log one run record; returns (and sets on the record) its run id."""
        from mlflow.entities import Metric, Param
        client = self.client
        run = client.create_run(self._experiment_id(record.dataset), tags=_tags(record))
        run_id = record.run_id = run.info.run_id
        record.experiment_id = run.info.experiment_id
        params = [Param(k, encode_param(getattr(record, k))[:MAX_PARAM]) for k in RECORD_FIELDS]
        params += [Param(PARAM_PREFIX + k, encode_param(v)[:MAX_PARAM])
                   for k, v in record.params.items()]
        numbers = {**record.metrics, **{k: getattr(record, k) for k in TIMINGS}}
        metrics = [Metric(k, float(v), 0, 0) for k, v in numbers.items()
                   if isinstance(v, (int, float)) and math.isfinite(v)]
        for epoch in (record.training or {}).get("history", []):
            metrics += [Metric(TRAINING_PREFIX + k, float(v), 0, int(epoch["epoch"]))
                        for k, v in epoch.items() if k in HISTORY_FIELDS and v is not None]
        client.log_batch(run_id, metrics=metrics, params=params)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "record.json"
            path.write_text(json.dumps(record.to_dict(), indent=2, default=str))
            client.log_artifact(run_id, str(path))
            if plot and record.metrics:
                from hmtc_bench.plots import save_png
                path = Path(tmp) / "per_level_f1.png"
                save_png(_run_figure(record), path)
                client.log_artifact(run_id, str(path))
        client.set_tag(run_id, "status", record.status)
        client.set_terminated(run_id, "FINISHED" if record.finished else "FAILED")
        return run_id

    # ------------------------------------------------------------------ reading
    def records(self, dataset: str | None = None) -> list[RunRecord]:
        """Run records read back (finished, failed, and runs cut short), newest first."""
        client = self.client
        experiments = [e for e in client.search_experiments()
                       if e.name.startswith(EXPERIMENT_PREFIX)
                       and (dataset is None or e.name == EXPERIMENT_PREFIX + dataset)]
        records = []
        for experiment in experiments:
            token = None
            while True:
                page = client.search_runs([experiment.experiment_id], max_results=1000,
                                          page_token=token,
                                          order_by=["attributes.start_time DESC"])
                records.extend(_record_of(run) for run in page)
                token = page.token
                if not token:
                    break
        return records

    def finished_cells(self) -> set[str]:
        return {r.cell_key for r in self.records() if r.finished}

    # ------------------------------------------------------------------ UI
    def serve_ui(self, port: int = 5000) -> int:
        """Serve the MLflow UI on 127.0.0.1 (blocks until interrupted or terminated);
        returns the exit code. The server runs in its own process group, stopped whole on
        exit, so no worker is left behind."""
        import signal
        import subprocess
        import sys
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.uri,
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        root = artifact_root(self.uri)
        if root:
            command += ["--default-artifact-root", root]
        process = subprocess.Popen(command, env=env, start_new_session=True)

        def stop(*_):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            return process.wait()
        except KeyboardInterrupt:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                return process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                return process.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)


def _tags(record: RunRecord) -> dict[str, str]:
    tags = {"mlflow.runName": f"{record.method} seed={record.seed}",
            "method": record.method, "dataset": record.dataset, "family": record.family,
            "dataset_hash": record.dataset_hash, "hierarchy_hash": record.hierarchy_hash,
            "dataset_split": record.dataset_split, "seed": str(record.seed),
            "decoding_policy": record.decode, "git_commit": record.git_commit,
            "started_at": record.started_at, "status": "logging",
            "cell_key": record.cell_key, "config_key": record.config_key,
            "identity_omits": json.dumps(record.omitted)}
    tags.update({f"version.{k}": v for k, v in record.versions.items()})
    if record.error:
        tags["error"] = record.error[:5000]
    if record.training:
        tags.update({TRAINING_PREFIX + k: str(record.training[k]) for k in TRAINING_FIELDS
                     if record.training.get(k) is not None})
    return tags


def _record_of(run) -> RunRecord:
    params = run.data.params
    tags = run.data.tags
    metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith(TRAINING_PREFIX)}
    timings = {k: metrics.pop(k, None) for k in TIMINGS}
    omits = tags.get("identity_omits")
    return RunRecord(
        method=params.get("method", tags.get("method")),
        dataset=params.get("dataset", tags.get("dataset")),
        seed=int(params.get("seed", tags.get("seed", 0))),
        decode=params.get("decode", tags.get("decoding_policy")),
        threshold=float(params.get("threshold", 0.5)),
        params={k[len(PARAM_PREFIX):]: decode_param(v) for k, v in params.items()
                if k.startswith(PARAM_PREFIX)},
        dataset_hash=tags.get("dataset_hash", ""),
        hierarchy_hash=tags.get("hierarchy_hash", ""),
        family=tags.get("family", "?"),
        dataset_split=tags.get("dataset_split", ""),
        identity_omits=None if omits is None else json.loads(omits),
        status=tags.get("status", "running"),
        metrics=metrics,
        training=_training_of(tags),
        versions={k[len("version."):]: v for k, v in tags.items() if k.startswith("version.")},
        git_commit=tags.get("git_commit", "unknown"),
        started_at=tags.get("started_at") or _iso(run.info.start_time),
        error=tags.get("error"),
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        **timings,
    )


def _iso(milliseconds: int | None) -> str:
    import datetime as dt
    if milliseconds is None:
        return ""
    moment = dt.datetime.fromtimestamp(milliseconds / 1000, dt.timezone.utc)
    return moment.isoformat(timespec="seconds")


def _training_of(tags: dict) -> dict | None:
    """The training summary (``runner.training_summary`` without the history, which is in
    the run's metric history and its record.json); None for methods without one."""
    if TRAINING_PREFIX + "best_epoch" not in tags:
        return None
    training = {k: tags.get(TRAINING_PREFIX + k) for k in TRAINING_FIELDS}
    for key in ("epochs_run", "best_epoch"):
        training[key] = int(training[key])
    best = training["best_dev_micro_f1"]  # absent when trained without a dev set
    training["best_dev_micro_f1"] = None if best is None else float(best)
    return training


def _run_figure(record: RunRecord):
    from hmtc_bench.plots import level_f1_figure, levels_of
    levels = levels_of(record.metrics, "micro_f1_level_")
    groups = [(name, {lv: record.metrics[f"{prefix}{lv}"] for lv in levels})
              for name, prefix in (("micro-F1", "micro_f1_level_"),
                                   ("macro-F1", "macro_f1_level_"))]
    return level_f1_figure(groups, f"{record.method} on {record.dataset} (seed {record.seed})")
