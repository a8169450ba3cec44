"""Tuning budgets: ``hmtc-bench tune GRID --trials N``.

For every (dataset, method entry) of a grid file, a **study** of N trials: Optuna's TPE
sampler, seeded, over the method's search space (``SEARCH_SPACE`` next to its defaults, or
the entry's ``space`` in the grid file; ``hmtc_bench.methods.search_space``) with the entry's
``params`` fixed. Each trial fits the method on train (dev for early stopping, as in every
run) with the grid's first seed and is scored on the **dev** split only (the ``--metric``,
default micro-F1, decoded at the grid's threshold). A method that trains in epochs reports
each epoch's dev micro-F1; a trial whose score falls below the median of the earlier trials
at the same epoch is pruned (Optuna's ``MedianPruner``, after 3 trials, from epoch 1).
The chosen configuration is the best finished trial (ties: the earlier one). It is then
refitted for every seed of the grid and decoded with every policy of the grid, as a grid of
its own (on any executor of ``hmtc-bench bench``), and evaluated on test: those runs are
ordinary runs, one leaderboard row beside the default configuration's.

Nothing here reads the test split: a trial sees ``data.train``, ``data.dev`` and the
hierarchy, and a study's identity hashes those alone (``tests/test_tuning.py`` runs a study
on data whose test labels raise when read).

**The store.** Each study is an MLflow experiment ``hmtc-bench-study/<study name>`` in the
same store as the runs (so the leaderboards, which read ``hmtc-bench/<dataset>``, never see
trials); each trial is one run there: the trial's parameters, its dev metrics, per-epoch
``dev_score`` steps, its state (running, complete, pruned, failed) and the writing process
(host, pid, heartbeat, as for runs). The study's key (method, fixed parameters, space, data
digest, metric, threshold, seed, N) is a tag of the experiment: rerunning with another
configuration under the same name is refused.

**Resuming.** Rerun the same command: finished trials (complete, pruned or failed: each
counts toward N, so every method gets the same budget) are read back and given to the
sampler; a trial whose process is gone is marked killed and run again. The sampler of
trial ``t`` is seeded with ``(seed, t)`` and sees the same history, so an interrupted
study proposes what the uninterrupted one would have.

**Where trials run.** In batches of B trials: B = 1 on the serial executor (in this
process), the executor's workers otherwise (``--workers``, default the cores), each trial
one task of the processes or Ray executor (``hmtc_bench.executors``: retries of lost
workers, ``--cell-timeout``; a trial lost for good counts as failed). Trial ``t`` is
proposed and pruned from the trials before its batch (trials ``0 .. B*floor(t/B) - 1``), so
a batch's trials are independent, and a resumed study with the same B proposes the same.
The refits run on the same executor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from hmtc_bench import progress
from hmtc_bench.errors import HMTCError, ParameterError
from hmtc_bench.record import decode_param, encode_param

STUDY_PREFIX = "hmtc-bench-study/"
METRICS = ("micro_f1", "macro_f1", "hier_f1", "lca_f1")
PRUNE_AFTER_TRIALS = 3        # the median pruner's start-up trials
PRUNE_FROM_EPOCH = 1          # the first epoch after which it may stop a trial (every
                              # published study ran so; from 2, a 2-epoch budget could
                              # only discard finished trials)
FINISHED = ("complete", "pruned", "failed")


class StudyBusy(HMTCError):
    """Another live process is running a trial of this study."""


@dataclass
class StudySpec:
    """One study: a method entry of a grid on one dataset."""

    name: str
    method: str
    dataset: str
    params: dict                       # fixed (the grid entry's params)
    space: dict                        # name -> search_space.Dimension
    trials: int
    metric: str = "micro_f1"
    threshold: float = 0.5
    seed: int = 0                      # the trials' fit seed and the sampler's seed
    first: dict | None = None          # trial 0's parameters (the defaults), else proposed


@dataclass
class Trial:
    number: int
    state: str
    params: dict
    value: float | None = None
    steps: dict = field(default_factory=dict)     # epoch -> dev score
    fit_seconds: float | None = None
    error: str | None = None
    run_id: str | None = None
    scores: dict = field(default_factory=dict)    # every dev metric of a complete trial


@dataclass
class StudyResult:
    spec: StudySpec
    trials: list[Trial]

    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return max(done, key=lambda t: (t.value, -t.number)) if done else None

    @property
    def chosen_params(self) -> dict:
        best = self.best
        if best is None:
            raise HMTCError(f"study {self.spec.name}: no trial finished; nothing to choose")
        return {**self.spec.params, **best.params}


def study_key(spec: StudySpec, data) -> str:
    """What makes two runs of a study the same study (a digest)."""
    blob = json.dumps({
        "method": spec.method, "params": spec.params, "metric": spec.metric,
        "space": {k: v.describe() for k, v in sorted(spec.space.items())},
        "data": dev_digest(data), "threshold": spec.threshold, "seed": spec.seed,
        "trials": spec.trials, **({"first": spec.first} if spec.first is not None else {})},
        sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dev_digest(data) -> str:
    """A digest of the hierarchy, train and dev splits (never test)."""
    digest = hashlib.sha256(data.hierarchy.content_hash.encode())
    for split in (data.train, data.dev):
        for doc_id, text in zip(split.ids, split.texts):
            digest.update(doc_id.encode("utf-8", "replace") + b"\x00")
            digest.update(text.encode("utf-8", "replace") + b"\x01")
        Y = split.Y if sp.isspmatrix_csr(split.Y) else sp.csr_matrix(split.Y)
        digest.update(Y.indptr.astype(np.int64).tobytes())
        digest.update(Y.indices.astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------- one study
@dataclass
class TrialTask:
    """One trial as a task of the executors (``hmtc_bench.executors``): run in a worker by
    ``run``; the fields the executors read are those of a grid cell."""

    index: int                      # the trial number
    spec: StudySpec
    params: dict
    history: list                   # the trials its proposal and pruning saw
    split_seed: int | None = None
    strict: bool = False
    dag: bool = False
    resources: dict = field(default_factory=dict)
    label: str = ""
    run_id: str | None = None

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    @property
    def data_key(self) -> tuple:
        return (self.spec.dataset, self.split_seed, self.strict, self.dag)

    def run(self, data, on_step=None) -> dict:
        """Fit and score the trial on ``data`` (train and dev); ``{"trial": {...}}``."""
        from hmtc_bench.executors.cells import worker_name
        study = _optuna_study(self.spec, self.history, self.index)
        study.enqueue_trial(self.params)
        trial = study.ask(fixed_distributions=_distributions(self.spec))
        result = _fit_trial(self.spec, data, trial, self.params, on_step)
        result.number = self.index      # optuna numbers it after the history it was given
        return {"trial": dataclasses.asdict(result), "worker": worker_name()}


def _distributions(spec: StudySpec) -> dict:
    return {k: v.distribution() for k, v in spec.space.items()}


def batch_size(executor) -> int:
    """How many trials run at once: 1 here, else the executor's workers (default: the
    cores)."""
    import os
    if executor is None or executor.executor == "serial":
        return 1
    return executor.workers or os.cpu_count() or 1


def run_study(spec: StudySpec, data, store, say=progress.say, quiet: bool = False,
              stop_after: int | None = None, executor=None,
              resources: dict | None = None) -> StudyResult:
    """Run the missing trials of ``spec`` on ``data`` (train and dev only), logging to
    ``store``; returns every trial. Trials run in batches of ``batch_size(executor)``: trial
    ``t`` is proposed (and pruned) from the finished trials before its batch, so a study
    proposes the same whatever was interrupted, as long as the batch size stays. With an
    executor other than serial the trials of a batch run on its workers, one task each.
    ``stop_after``: run at most this many new trials (for tests of resumption)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if len(data.dev) == 0:
        raise ParameterError(f"{data.name}: tuning chooses on the dev split, and it has none")
    width = batch_size(executor)
    writer = _StudyLog(store, spec, study_key(spec, data), width)
    done = writer.read()
    todo = [t for t in range(spec.trials) if t not in done]
    if stop_after is not None:
        todo = todo[:stop_after]
    backend = None
    try:
        for start in sorted({t // width * width for t in todo}):
            base = [done[i] for i in range(start)]
            tasks = []
            for number in (t for t in todo if start <= t < start + width):
                params = _propose(spec, base, number)
                task = TrialTask(index=number, spec=spec, params=params, history=base,
                                 split_seed=data.split_seed, resources=resources or {},
                                 label=f"{spec.name} trial {number}")
                task.run_id = writer.start(number, params)
                say(f"{spec.name}: trial {number} ({number + 1} of {spec.trials}) "
                    f"{_show(params)}", not quiet)   # numbered as the store and the choice
                tasks.append(task)
            if width == 1:
                results = [_run_here(task, data, writer) for task in tasks]
            else:
                if backend is None:
                    from hmtc_bench.executors import make_backend
                    backend = make_backend(executor)
                    backend.start(tasks)
                results = _run_there(backend, tasks, writer)
            for task, result in zip(tasks, results):
                writer.finish(result, logged_steps=width == 1)
                done[result.number] = result
                shown = "—" if result.value is None else f"{result.value:.4f}"
                say(f"  trial {result.number}: {result.state}, dev {spec.metric} {shown} "
                    f"({result.fit_seconds or 0:.1f} s)"
                    + (f": {result.error}" if result.error else ""), not quiet)
    finally:
        if backend is not None:
            backend.close()
    return StudyResult(spec, [done[t] for t in sorted(done)])


def _propose(spec: StudySpec, history: list, number: int) -> dict:
    """Trial ``number``'s parameters: ``spec.first`` for trial 0 when given, else the
    seeded sampler after ``history``."""
    if number == 0 and spec.first is not None:
        return dict(spec.first)
    study = _optuna_study(spec, history, number)
    return dict(study.ask(fixed_distributions=_distributions(spec)).params)


def _run_here(task: TrialTask, data, writer) -> Trial:
    with writer.heartbeat(task.run_id):
        outcome = task.run(data, on_step=lambda e, v: writer.step(task.run_id, e, v))
    return dataclasses.replace(Trial(**outcome["trial"]), run_id=task.run_id)


def _run_there(backend, tasks: list, writer) -> list[Trial]:
    """The tasks on the executor's workers, their runs' heartbeats kept by this process."""
    from hmtc_bench.tracking.liveness import HEARTBEAT_SECONDS
    by_index = {task.index: task for task in tasks}
    pending, results = list(tasks), {}
    last_beat = time.monotonic()
    while pending or backend.in_flight():
        while pending and backend.has_room():
            backend.submit(pending.pop(0))
        for index, outcome in backend.poll(timeout=0.5):
            task = by_index[index]
            if "trial" in outcome:
                results[index] = Trial(**outcome["trial"])
            else:              # lost or timed out: a failed trial
                results[index] = Trial(number=index, state="failed", params=task.params,
                                       error=outcome.get("error") or "no result came back")
            results[index].run_id = task.run_id
        if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
            last_beat = time.monotonic()
            for index in backend.running_indices():
                writer.beat(by_index[index].run_id)
    return [results[task.index] for task in tasks]


def _optuna_study(spec: StudySpec, history: list[Trial], number: int):
    """An in-memory Optuna study holding ``history``, its sampler seeded for trial
    ``number``."""
    import optuna
    from optuna.trial import TrialState
    sampler = optuna.samplers.TPESampler(seed=spec.seed * 100_003 + number,
                                         n_startup_trials=min(10, max(2, spec.trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS,
                                         n_warmup_steps=PRUNE_FROM_EPOCH)  # epochs >= it
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    distributions = _distributions(spec)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
              "failed": TrialState.FAIL}
    for past in history:
        study.add_trial(optuna.trial.create_trial(
            state=states[past.state], params=past.params, distributions=distributions,
            value=past.value if past.state == "complete" else None,
            intermediate_values={int(k): v for k, v in past.steps.items()}))
    return study


def _fit_trial(spec: StudySpec, data, trial, params: dict, on_step=None) -> Trial:
    """Fit one trial and score it on dev (``on_step(epoch, score)`` after each epoch)."""
    import optuna

    from hmtc_bench.evaluation.decoding import decode
    from hmtc_bench.evaluation.metrics import evaluate
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.methods.base import reporting_epochs
    steps: dict = {}

    def watch(epoch: int, score: float) -> None:
        steps[epoch] = float(score)
        if on_step is not None:
            on_step(epoch, score)
        trial.report(float(score), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()

    result = Trial(number=trial.number, state="failed", params=params, steps=steps)
    start = time.perf_counter()
    try:
        estimator = inspect_method(spec.method).build({**spec.params, **params}, spec.seed)
        with reporting_epochs(watch), progress.quiet():
            estimator.fit(data.train.texts, data.train.Y, data.hierarchy,
                          dev=(data.dev.texts, data.dev.Y))
            proba = estimator.predict_proba(data.dev.texts)
        predicted = decode(proba, data.hierarchy, "threshold", spec.threshold)
        scores = evaluate(data.dev.Y, predicted, data.hierarchy)
        result.value = float(scores[spec.metric])
        result.state = "complete" if math.isfinite(result.value) else "failed"
        result.scores = {k: float(v) for k, v in scores.items()}
    except optuna.TrialPruned:
        result.state = "pruned"
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:      # a failed trial counts toward the budget, recorded
        result.error = f"{type(err).__name__}: {err}"
    result.fit_seconds = time.perf_counter() - start
    return result


def _show(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(params.items()))


# ---------------------------------------------------------------------- the store
class _StudyLog:
    """A study's trials as runs of the experiment ``hmtc-bench-study/<name>``."""

    def __init__(self, store, spec: StudySpec, key: str, width: int = 1):
        from hmtc_bench.tracking.store import retry
        self.store, self.spec, self.key, self.retry = store, spec, key, retry
        self.width = width
        store.check()
        client = store.client
        name = STUDY_PREFIX + spec.name
        experiment = retry(lambda: client.get_experiment_by_name(name))
        if experiment is None:
            self.experiment_id = retry(lambda: client.create_experiment(
                name, tags={"study_key": key, "method": spec.method,
                            "dataset": spec.dataset, "trials": str(spec.trials),
                            "metric": spec.metric}))
        else:
            self.experiment_id = experiment.experiment_id
            known = experiment.tags.get("study_key")
            if known != key:
                raise ParameterError(
                    f"study {spec.name} exists in {store.uri} with another configuration "
                    f"(key {known}, now {key}: method parameters, space, data, metric, "
                    "threshold, seed or number of trials changed); give the grid another "
                    "name to start a new study")

    def read(self) -> dict[int, Trial]:
        """The finished trials by number; stale running ones marked killed."""
        from hmtc_bench.tracking.liveness import is_stale
        client = self.store.client
        runs = self.retry(lambda: client.search_runs([self.experiment_id],
                                                     max_results=10_000))
        trials: dict[int, Trial] = {}
        for run in runs:
            tags, number = run.data.tags, int(run.data.tags.get("trial", -1))
            state = tags.get("state")
            if state in FINISHED:
                history = self.retry(lambda: client.get_metric_history(run.info.run_id,
                                                                       "dev_score"))
                trials[number] = Trial(
                    number=number, state=state,
                    params={k[len("param."):]: decode_param(v)
                            for k, v in run.data.params.items() if k.startswith("param.")},
                    value=run.data.metrics.get("value"),
                    steps={m.step: m.value for m in history},
                    fit_seconds=run.data.metrics.get("fit_seconds"),
                    error=tags.get("error"), run_id=run.info.run_id)
            elif state == "running":
                if is_stale(tags, run.info.start_time):
                    self.retry(lambda: client.set_tag(run.info.run_id, "state", "killed"))
                    self.retry(lambda: client.set_terminated(run.info.run_id, "KILLED"))
                else:
                    raise StudyBusy(f"study {self.spec.name}: trial {number} is being run by "
                                    f"{tags.get('host')}:{tags.get('pid')}; wait for it or "
                                    "stop it")
        return trials

    def start(self, number: int, params: dict) -> str:
        import os
        import socket
        from mlflow.entities import Param
        client = self.store.client
        tags = {"mlflow.runName": f"trial {number}", "trial": str(number), "state": "running",
                "study": self.spec.name, "study_key": self.key, "method": self.spec.method,
                "batch": str(self.width),
                "host": socket.gethostname(), "pid": str(os.getpid()),
                "heartbeat": str(int(time.time()))}
        run = self.retry(lambda: client.create_run(self.experiment_id, tags=tags))
        run_id = run.info.run_id
        values = [Param("param." + k, encode_param(v)) for k, v in params.items()]
        values += [Param("fixed." + k, encode_param(v)) for k, v in self.spec.params.items()]
        self.retry(lambda: client.log_batch(run_id, params=values))
        return run_id

    def step(self, run_id: str, epoch: int, score: float) -> None:
        client = self.store.client
        self.retry(lambda: client.log_metric(run_id, "dev_score", float(score), step=epoch))

    def beat(self, run_id: str) -> None:
        client = self.store.client
        self.retry(lambda: client.set_tag(run_id, "heartbeat", str(int(time.time()))), 10)

    def heartbeat(self, run_id: str):
        from hmtc_bench.tracking.liveness import Heartbeat
        client = self.store.client

        def write(run, now):
            self.retry(lambda: client.set_tag(run, "heartbeat", str(int(now))), 10)
        return Heartbeat(write, [run_id])

    def finish(self, trial: Trial, logged_steps: bool = True) -> None:
        """Write a trial's end (``logged_steps`` false: its per-epoch scores too), then its
        state, last."""
        from mlflow.entities import Metric, RunTag
        client = self.store.client
        metrics = [Metric("dev_" + k, float(v), 0, 0) for k, v in trial.scores.items()
                   if isinstance(v, (int, float)) and math.isfinite(v)]
        if not logged_steps:
            metrics += [Metric("dev_score", float(v), 0, int(k)) for k, v in trial.steps.items()]
        if trial.value is not None and math.isfinite(trial.value):
            metrics.append(Metric("value", trial.value, 0, 0))
        metrics.append(Metric("fit_seconds", float(trial.fit_seconds or 0.0), 0, 0))
        tags = [RunTag("error", trial.error[:5000])] if trial.error else []
        self.retry(lambda: client.log_batch(trial.run_id, metrics=metrics, tags=tags))
        self.retry(lambda: client.set_tag(trial.run_id, "state", trial.state))   # last
        self.retry(lambda: client.set_terminated(
            trial.run_id, "FINISHED" if trial.state != "failed" else "FAILED"))
