"""MLflow tracking: writing run records, reading them back for leaderboards.

The only package of hmtc-bench that imports mlflow. The default store is a sqlite database
``results/mlflow.db`` under the current folder, with artifacts in ``results/mlartifacts``;
``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` override it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

DEFAULT_DB = Path("results") / "mlflow.db"
PARAM_PREFIX = "param."
RECORD_FIELDS = ("method", "dataset", "seed", "decode", "threshold")
TRAINING_PREFIX = "training."
TRAINING_FIELDS = ("epochs_run", "best_epoch", "best_dev_micro_f1", "stopped")
HISTORY_FIELDS = ("train_loss", "dev_micro_f1", "seconds")


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


def _mlflow(uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    import logging
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import mlflow
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    return mlflow


def _experiment_id(mlflow, name: str, uri: str) -> str:
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(uri))


def _param_value(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text[:6000]


def log_run(record: dict, uri: str | None = None, plot: bool = True) -> str:
    """Log one run record (see ``hmtc_bench.runner``) to MLflow; returns the run id.

    Parameters are the resolved method parameters (``param.NAME``) and the run's identity
    fields; every number in ``record["metrics"]`` and the timings are metrics; hashes, seed,
    decoding policy, versions, git commit and status are tags; the record itself
    (``record.json``) and a per-level F1 plot are artifacts. A neural method's training
    summary (``record["training"]``) goes into ``training.*`` tags (epochs run, best epoch,
    its dev micro-F1, why it stopped) and its per-epoch curves into ``training.*`` metrics,
    one step per epoch.
    """
    uri = resolve_uri(uri)
    mlflow = _mlflow(uri)
    client = mlflow.tracking.MlflowClient()
    experiment_id = _experiment_id(mlflow, f"hmtc-bench/{record['dataset']}", uri)
    tags = {"mlflow.runName": f"{record['method']} seed={record['seed']}",
            "dataset_hash": record["dataset_hash"], "hierarchy_hash": record["hierarchy_hash"],
            "seed": str(record["seed"]), "decoding_policy": record["decode"],
            "git_commit": record.get("git_commit", "unknown"), "status": "logging",
            "cell_key": record.get("cell_key", ""),
            "method": record["method"], "dataset": record["dataset"],
            "family": record.get("family", "?")}
    tags.update({f"version.{k}": v for k, v in record.get("versions", {}).items()})
    if record.get("error"):
        tags["error"] = record["error"][:5000]
    training = record.get("training")
    if training:
        tags.update({TRAINING_PREFIX + k: str(training[k]) for k in TRAINING_FIELDS
                     if training[k] is not None})
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    from mlflow.entities import Metric, Param
    params = [Param(k, _param_value(record[k])) for k in RECORD_FIELDS]
    params += [Param(PARAM_PREFIX + k, _param_value(v)) for k, v in record["params"].items()]
    numbers = {**record.get("metrics", {}),
               **{k: record[k] for k in ("fit_seconds", "predict_seconds", "peak_memory_mb")
                  if record.get(k) is not None}}
    metrics = [Metric(k, float(v), 0, 0) for k, v in numbers.items()
               if isinstance(v, (int, float)) and math.isfinite(v)]
    # the training curves: one step per epoch
    for epoch in (training or {}).get("history", []):
        metrics += [Metric(TRAINING_PREFIX + k, float(v), 0, int(epoch["epoch"]))
                    for k, v in epoch.items() if k in HISTORY_FIELDS and v is not None]
    client.log_batch(run_id, metrics=metrics, params=params)
    with tempfile.TemporaryDirectory() as tmp:
        record_path = Path(tmp) / "record.json"
        record_path.write_text(json.dumps({**record, "run_id": run_id}, indent=2, default=str))
        client.log_artifact(run_id, str(record_path))
        if plot and record.get("metrics"):
            plot_path = Path(tmp) / "per_level_f1.png"
            _per_level_plot(record, plot_path)
            client.log_artifact(run_id, str(plot_path))
    # the status tag is written last: a run cut short while logging is never "finished"
    client.set_tag(run_id, "status", record["status"])
    client.set_terminated(run_id, "FINISHED" if record["status"] == "finished" else "FAILED")
    return run_id


def _per_level_plot(record: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = record["metrics"]
    levels = sorted(int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("micro_f1_level_"))
    fig, ax = plt.subplots(figsize=(5, 3))
    width = 0.4
    ax.bar([lv - width / 2 for lv in levels], [metrics[f"micro_f1_level_{lv}"] for lv in levels],
           width, label="micro-F1")
    ax.bar([lv + width / 2 for lv in levels], [metrics[f"macro_f1_level_{lv}"] for lv in levels],
           width, label="macro-F1")
    ax.set_xticks(levels)
    ax.set_xlabel("level")
    ax.set_ylim(0, 1)
    ax.set_title(f"{record['method']} on {record['dataset']} (seed {record['seed']})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_records(uri: str | None = None, dataset: str | None = None) -> list[dict]:
    """Run records read back from the store (finished and failed), newest first."""
    uri = resolve_uri(uri)
    mlflow = _mlflow(uri)
    client = mlflow.tracking.MlflowClient()
    experiments = [e for e in client.search_experiments()
                   if e.name.startswith("hmtc-bench/")
                   and (dataset is None or e.name == f"hmtc-bench/{dataset}")]
    records = []
    for experiment in experiments:
        token = None
        while True:
            page = client.search_runs([experiment.experiment_id], max_results=1000,
                                      page_token=token, order_by=["attributes.start_time DESC"])
            records.extend(_record_of(run) for run in page)
            token = page.token
            if not token:
                break
    return records


def _record_of(run) -> dict:
    params = run.data.params
    tags = run.data.tags
    metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith(TRAINING_PREFIX)}
    timings = {k: metrics.pop(k, None) for k in ("fit_seconds", "predict_seconds",
                                                  "peak_memory_mb")}
    return {
        "run_id": run.info.run_id,
        "method": params.get("method", tags.get("method")),
        "dataset": params.get("dataset", tags.get("dataset")),
        "seed": int(params.get("seed", tags.get("seed", 0))),
        "decode": params.get("decode", tags.get("decoding_policy")),
        "threshold": float(params.get("threshold", 0.5)),
        "params": {k[len(PARAM_PREFIX):]: v for k, v in params.items()
                   if k.startswith(PARAM_PREFIX)},
        "dataset_hash": tags.get("dataset_hash"),
        "hierarchy_hash": tags.get("hierarchy_hash"),
        "status": tags.get("status"),
        "family": tags.get("family"),
        "cell_key": tags.get("cell_key"),
        "experiment_id": run.info.experiment_id,
        "error": tags.get("error"),
        "metrics": metrics,
        "training": _training_of(tags),
        **timings,
        "start_time": run.info.start_time,
    }


def serve_ui(uri: str | None = None, port: int = 5000) -> int:
    """Serve the MLflow UI on 127.0.0.1 (blocks until interrupted or terminated); returns
    the exit code. The server runs in its own process group, stopped whole on exit, so no
    worker is left behind."""
    import signal
    import subprocess
    import sys
    uri = resolve_uri(uri)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    root = artifact_root(uri)
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


def _training_of(tags: dict) -> dict | None:
    """The training summary of a run (``runner.training_summary`` without the history,
    which is in the run's metric history and its record.json); None for methods without."""
    if TRAINING_PREFIX + "best_epoch" not in tags:
        return None
    training = {k: tags.get(TRAINING_PREFIX + k) for k in TRAINING_FIELDS}
    for key in ("epochs_run", "best_epoch"):
        training[key] = int(training[key])
    best = training["best_dev_micro_f1"]  # absent when trained without a dev set
    training["best_dev_micro_f1"] = None if best is None else float(best)
    return training
