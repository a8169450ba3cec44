"""How a ``RunRecord`` maps onto an MLflow run, both ways (the only place that knows).

One experiment per dataset name, ``hmtc-bench/<dataset>``. A run is written in two steps:

* when it starts (``start_tags``, ``start_params``): parameters — the identity fields
  (``method``, ``dataset``, ``seed``, ``decode``, ``threshold``) and every resolved method
  parameter as ``param.NAME``, encoded by ``record.encode_param`` so that they read back
  with their types; tags — hashes, seed, decoding policy, family, split, omitted identity
  parameters, package versions (``version.*``), git commit, start time, the cell and
  configuration keys, the writing process (``host``, ``pid``, ``heartbeat``) and
  ``status=running``;
* when it ends (``end_metrics``, ``end_tags``): every finite number of ``metrics``, the
  timings and a neural method's per-epoch curves (``training.train_loss``,
  ``training.dev_micro_f1``, ``training.seconds``: one step per epoch) as metrics; the
  error, the test micro-F1 against the threshold (``threshold_curve``, JSON) and the training
  summary (``training.*``) and where the run ran (``worker.node``,
  ``worker.device``, ``worker.gpu``, ``worker.executor``, ``worker.process``;
  ``worker.reused_s``: seconds of shared work counted in its times, ``shared_work``) as
  tags; then the artifacts (``record.json``, ``per_level_f1.png``); then ``status`` (finished or
  failed), written last, so that a run cut short is never "finished".
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import time

from hmtc_bench.record import RunRecord, decode_param, encode_param

EXPERIMENT_PREFIX = "hmtc-bench/"
PARAM_PREFIX = "param."
RECORD_FIELDS = ("method", "dataset", "seed", "decode", "threshold")
TIMINGS = ("fit_seconds", "predict_seconds", "peak_memory_mb")
TRAINING_PREFIX = "training."
TRAINING_FIELDS = ("epochs_run", "best_epoch", "best_dev_micro_f1", "stopped")
HISTORY_FIELDS = ("train_loss", "dev_micro_f1", "seconds")
WORKER_PREFIX = "worker."   # where the run ran: worker.node, worker.device, worker.gpu, ...
MAX_PARAM = 6000  # MLflow's limit on a parameter value
MAX_TAG = 5000


def start_params(record: RunRecord):
    from mlflow.entities import Param
    params = [Param(k, encode_param(getattr(record, k))[:MAX_PARAM]) for k in RECORD_FIELDS]
    return params + [Param(PARAM_PREFIX + k, encode_param(v)[:MAX_PARAM])
                     for k, v in record.params.items()]


def start_tags(record: RunRecord) -> dict[str, str]:
    tags = {"mlflow.runName": f"{record.method} seed={record.seed}",
            "method": record.method, "dataset": record.dataset, "family": record.family,
            "dataset_hash": record.dataset_hash, "hierarchy_hash": record.hierarchy_hash,
            "dataset_split": record.dataset_split, "seed": str(record.seed),
            "decoding_policy": record.decode, "git_commit": record.git_commit,
            "started_at": record.started_at, "status": "running",
            "cell_key": record.cell_key, "config_key": record.config_key,
            "identity_omits": json.dumps(record.omitted),
            "host": socket.gethostname(), "pid": str(os.getpid()),
            "heartbeat": str(int(time.time()))}
    tags.update({f"version.{k}": v for k, v in record.versions.items()})
    if record.split_seed is not None:
        tags.update(split_seed=str(record.split_seed), corpus_hash=record.corpus_hash or "")
    return tags


def end_metrics(record: RunRecord):
    from mlflow.entities import Metric
    numbers = {**record.metrics, **{k: getattr(record, k) for k in TIMINGS}}
    metrics = [Metric(k, float(v), 0, 0) for k, v in numbers.items()
               if isinstance(v, (int, float)) and math.isfinite(v)]
    for epoch in (record.training or {}).get("history", []):
        metrics += [Metric(TRAINING_PREFIX + k, float(v), 0, int(epoch["epoch"]))
                    for k, v in epoch.items() if k in HISTORY_FIELDS and v is not None]
    return metrics


def end_tags(record: RunRecord):
    from mlflow.entities import RunTag
    tags = {}
    if record.error:
        tags["error"] = record.error[:MAX_TAG]
    if record.training:
        tags.update({TRAINING_PREFIX + k: str(record.training[k]) for k in TRAINING_FIELDS
                     if record.training.get(k) is not None})
    if record.decode_params is not None:
        tags["decode_params"] = decode_params_tag(record.decode_params)
    if record.threshold_curve is not None:
        tags["threshold_curve"] = json.dumps(record.threshold_curve, sort_keys=True)
    tags.update({WORKER_PREFIX + k: str(v)[:MAX_TAG] for k, v in (record.worker or {}).items()})
    return [RunTag(k, v) for k, v in tags.items()]


def decode_params_tag(params: dict) -> str:
    """The fitted decoding as a tag: whole when it fits MLflow's limit, else without the
    per-label thresholds (which record.json keeps)."""
    text = json.dumps(params, sort_keys=True)
    if len(text) <= MAX_TAG:
        return text
    short = {k: v for k, v in params.items() if k != "thresholds"}
    return json.dumps({**short, "thresholds": "in record.json"}, sort_keys=True)


def record_of(run) -> RunRecord:
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
        decode_params=json.loads(tags["decode_params"]) if "decode_params" in tags else None,
        threshold_curve=(json.loads(tags["threshold_curve"]) if "threshold_curve" in tags
                         else None),
        worker={k[len(WORKER_PREFIX):]: v for k, v in tags.items()
                if k.startswith(WORKER_PREFIX)} or None,
        split_seed=int(tags["split_seed"]) if tags.get("split_seed") else None,
        corpus_hash=tags.get("corpus_hash") or None,
        versions={k[len("version."):]: v for k, v in tags.items() if k.startswith("version.")},
        git_commit=tags.get("git_commit", "unknown"),
        started_at=tags.get("started_at") or _iso(run.info.start_time),
        error=tags.get("error"),
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        **timings,
    )


def _iso(milliseconds: int | None) -> str:
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


def run_figure(record: RunRecord):
    from hmtc_bench.plots import level_f1_figure, levels_of
    levels = levels_of(record.metrics, "micro_f1_level_")
    groups = [(name, {lv: record.metrics[f"{prefix}{lv}"] for lv in levels})
              for name, prefix in (("micro-F1", "micro_f1_level_"),
                                   ("macro-F1", "macro_f1_level_"))]
    return level_f1_figure(groups, f"{record.method} on {record.dataset} (seed {record.seed})")
