"""Banks of binary scorers, one per task: the classical methods' classifiers.

Banks
-----
``fit_bank`` fits one binary scorer per *task* (training rows, targets) and returns a
``ScorerBank``: linear estimators are stored as one dense float32 (features x tasks) weight
matrix plus intercepts (scoring is one sparse-dense product), LightGBM as one booster per
task. Tasks are independent: with ``n_jobs != 1`` the linear ones are fitted in worker
processes (joblib/loky) that share the feature matrix through a memory-mapped file instead
of a copy each; LightGBM fits tasks one after the other, each with ``n_jobs`` threads, on
one binned dataset built once. Results do not depend on ``n_jobs``.

Progress (``hmtc_bench.progress``, on stderr, off inside ``progress.quiet()``): a line when
the TF-IDF (and LightGBM's binning) starts and one when it ends, with its duration; each
bank as a bar on a terminal, plain lines every 10 s in a log or a pipe.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from hmtc_bench import progress
from hmtc_bench.methods.classical.estimators import EstimatorSpec, get_estimator

CONSTANT_MARGIN = 20.0  # decision value of a column seen always / never in its training rows


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


# ---------------------------------------------------------------------- tasks and banks
@dataclass
class Task:
    """One binary problem: ``rows`` of the feature matrix (None: all) and 0/1 targets.

    Tasks that share a ``group`` share their rows, which are then sliced once."""

    rows: np.ndarray | None
    y: np.ndarray
    group: object = None


@dataclass
class ScorerBank:
    """Fitted binary scorers, one per task (column)."""

    n_features: int
    intercept: np.ndarray                  # (K,) float64
    coef: np.ndarray | None = None         # (F, K) float32, linear estimators
    boosters: dict = field(default_factory=dict)   # column -> lightgbm Booster

    @property
    def n_columns(self) -> int:
        return len(self.intercept)

    def decision_function(self, X) -> np.ndarray:
        """Raw decision values (n, K): margins, log-odds or raw boosting scores."""
        n = X.shape[0]
        out = np.broadcast_to(self.intercept, (n, self.n_columns)).copy()
        if self.coef is not None:
            out += np.asarray(X @ self.coef, dtype=np.float64)
        for k, booster in progress.track(self.boosters.items(), len(self.boosters),
                                         "scoring with lightgbm", unit="models"):
            out[:, k] = booster.predict(X, raw_score=True)
        return out

    def predict(self, X) -> np.ndarray:
        """Scores in [0, 1]: the logistic function of the decision values."""
        return sigmoid(self.decision_function(X))

    def save(self, writer, name: str) -> None:
        """Arrays (.npy) and, for LightGBM, each booster in its own text format."""
        writer.array(f"{name}/intercept", self.intercept)
        if self.coef is not None:
            writer.array(f"{name}/coef", self.coef)
        for k, booster in self.boosters.items():
            writer.text(f"{name}/boosters/{k}.txt", booster.model_to_string())
        writer.json(f"{name}/bank", {"n_features": self.n_features,
                                     "linear": self.coef is not None,
                                     "boosters": sorted(int(k) for k in self.boosters)})

    @classmethod
    def load(cls, reader, name: str) -> "ScorerBank":
        saved = reader.json(f"{name}/bank")
        bank = cls(n_features=int(saved["n_features"]),
                   intercept=reader.array(f"{name}/intercept"),
                   coef=reader.array(f"{name}/coef") if saved["linear"] else None)
        if saved["boosters"]:
            _require("lightgbm", "lightgbm")
            import lightgbm as lgb
            for k in saved["boosters"]:
                bank.boosters[k] = lgb.Booster(
                    model_str=reader.text(f"{name}/boosters/{k}.txt"))
        return bank


def fit_bank(X, tasks: Sequence[Task], estimator: str, params: dict | None = None,
             n_jobs: int = 1, random_state: int = 0) -> ScorerBank:
    """Fit one binary scorer per task on the rows of the CSR matrix ``X``."""
    spec = get_estimator(estimator)
    params = spec.resolve(params)
    X = sp.csr_matrix(X)
    K = len(tasks)
    intercept = np.full(K, -CONSTANT_MARGIN)
    trainable = []
    for k, task in enumerate(tasks):
        y = np.asarray(task.y)
        positives = int(np.count_nonzero(y))
        if 0 < positives < len(y):
            trainable.append(k)
        elif positives > 0:                      # every training row is positive
            intercept[k] = CONSTANT_MARGIN
    # tasks of a group one after the other, so that their shared rows are sliced once
    first: dict = {}
    trainable.sort(key=lambda k: first.setdefault(_group_key(tasks[k], k), len(first)))
    bank = ScorerBank(n_features=X.shape[1], intercept=intercept)
    if spec.kind == "linear":
        bank.coef = np.zeros((X.shape[1], K), dtype=np.float32)
        if trainable:
            _fit_linear(bank, X, tasks, trainable, spec, params, n_jobs, random_state)
    else:
        _require("lightgbm", estimator)
        for k, booster in zip(trainable, _fit_boosters(X, [tasks[k] for k in trainable],
                                                       params, n_jobs, random_state)):
            bank.boosters[k] = booster
            bank.intercept[k] = 0.0
    return bank


def _group_key(task: Task, k: int):
    return ("task", k) if task.group is None else ("group", task.group)


# ---------------------------------------------------------------------- linear
_SLICE = {"key": None, "X": None}   # per-process cache: consecutive tasks of a group


def _rows_of(X, task: Task, token):
    if task.rows is None:
        return X
    if task.group is None:
        return X[task.rows]
    key = (token, task.group)
    if _SLICE["key"] != key:
        _SLICE["key"], _SLICE["X"] = None, None     # free the old slice first
        _SLICE["X"] = X[task.rows]
        _SLICE["key"] = key
    return _SLICE["X"]


def _fit_linear_one(X, group: list[Task], token, spec: EstimatorSpec, params: dict,
                    seed: int) -> list[tuple[np.ndarray, float]]:
    """Fit the tasks of one job: a single task, or a bundle of tasks on the same rows whose
    positives exclude each other, fitted by one one-vs-rest multi-class call (see
    ``_bundles``)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits
    Xs = _rows_of(X, group[0], token)
    estimator = spec.make(params, seed)
    if len(group) == 1:
        y = np.asarray(group[0].y, dtype=np.int8)
    else:   # class k: positive of task k; class K: positive of none
        Y = np.column_stack([np.asarray(t.y, dtype=np.int8) for t in group])
        y = np.where(Y.any(axis=1), Y.argmax(axis=1), len(group))
    # parallelism is over tasks: BLAS threads inside one fit only fight each other (lbfgs
    # runs several times slower with them on a busy machine)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(Xs, y)
    coef = estimator.coef_.astype(np.float32)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    if len(group) == 1:
        return [(coef.ravel(), float(intercept[0]))]
    classes = list(estimator.classes_)
    if len(classes) == 2:      # one binary problem: class 1 vs class 0, negated for class 0
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]])
    return [(coef[classes.index(k)], float(intercept[classes.index(k)]))
            for k in range(len(group))]


def _bundles(tasks, trainable, spec: EstimatorSpec, params: dict) -> list[list[int]]:
    """Jobs: tasks of a group (same rows) whose positives never overlap, as with mutually
    exclusive siblings, go together for the linear SVM: liblinear's one-vs-rest then solves
    exactly their binary problems (class k against all other rows) but builds its copy of
    the data once, instead of once per task (about 80 ms per call on 20 Newsgroups). Other
    tasks, other estimators (multi-class logistic regression is multinomial, a different
    model) and class weights (computed over all classes) keep one job per task."""
    bundle = spec.name == "svm" and params.get("class_weight") is None
    jobs: list[list[int]] = []
    by_group: dict = {}
    for k in trainable:
        task = tasks[k]
        if not bundle or task.group is None:
            jobs.append([k])
            continue
        job = by_group.get(task.group)
        if job is not None and not np.any(by_group[task.group, "covered"] & (task.y != 0)):
            job.append(k)
            by_group[task.group, "covered"] |= task.y != 0
        else:
            job = [k]
            jobs.append(job)
            by_group[task.group] = job
            by_group[task.group, "covered"] = np.asarray(task.y) != 0
    return jobs


def _fit_linear(bank, X, tasks, trainable, spec, params, n_jobs, seed) -> None:
    from joblib import Parallel, delayed
    X = X if X.dtype == spec.dtype else X.astype(spec.dtype)   # liblinear: float64
    token = os.urandom(8).hex()
    jobs = _bundles(tasks, trainable, spec, params)
    results = []
    try:
        with _shared(X, n_jobs) as Xs, progress.Progress(
                len(trainable), f"fitting {spec.name} scorer bank", unit="scorers") as bar:
            for job, fitted in zip(jobs, Parallel(
                    n_jobs=n_jobs, backend="loky" if n_jobs != 1 else "sequential",
                    return_as="generator")(
                    delayed(_fit_linear_one)(Xs, [tasks[k] for k in job], token, spec, params,
                                             seed) for job in jobs)):
                results.append(fitted)
                bar.update(len(job))
    finally:
        _SLICE["key"], _SLICE["X"] = None, None
    for job, fitted in zip(jobs, results):
        for k, (coef, b) in zip(job, fitted):
            bank.coef[:, k] = coef
            bank.intercept[k] = b


@contextmanager
def _shared(X: sp.csr_matrix, n_jobs: int):
    """With worker processes, X backed by memory-mapped files: joblib then hands workers a
    file name (no pickled copy, no per-task hashing) and the pages are shared."""
    if n_jobs == 1:
        yield X
        return
    folder = tempfile.mkdtemp(prefix="hmtc-bench-")
    try:
        parts = {}
        for name in ("data", "indices", "indptr"):
            path = os.path.join(folder, f"{name}.npy")
            np.save(path, getattr(X, name))
            parts[name] = np.load(path, mmap_mode="r")
        shared = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]),
                               shape=X.shape, copy=False)
        yield shared
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------- lightgbm
def _require(module: str, estimator: str) -> None:
    import importlib.util
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"estimator {estimator!r} needs the {module} package: "
                          f"pip install 'hmtc-bench[{module}]'")


def _fit_boosters(X, tasks, params, n_jobs, seed):
    if not tasks:
        return []
    import lightgbm as lgb
    threads = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    train_params = {
        "objective": "binary", "verbose": -1, "seed": seed, "deterministic": True,
        "force_row_wise": True, "num_threads": threads,
        "learning_rate": params["learning_rate"], "num_leaves": params["num_leaves"],
        "min_data_in_leaf": params["min_child_samples"],
        "feature_fraction": params["colsample_bytree"], "lambda_l2": params["reg_lambda"],
        "max_bin": params["max_bin"],
    }
    # bin the features once; every task reuses the bins (a subset for row-restricted tasks)
    with progress.step(f"binning {X.shape[0]} x {X.shape[1]} features for lightgbm",
                       done="binned"):
        base = lgb.Dataset(sp.csr_matrix(X, dtype=np.float32), params=train_params,
                           free_raw_data=False).construct()
    boosters = []
    subset, subset_key = None, None
    rounds = params["n_estimators"]
    bar = progress.Progress(len(tasks) * rounds, f"fitting lightgbm scorer bank ({len(tasks)} "
                            f"models x {rounds} rounds)", unit="rounds")
    for task in tasks:
        y = np.asarray(task.y, dtype=np.float32)
        if task.rows is None:
            data = base
        else:
            key = task.group if task.group is not None else id(task)
            if key != subset_key:
                subset = base.subset(np.asarray(task.rows, dtype=np.int32)).construct()
                subset_key = key
            data = subset
        data.set_label(y)
        start = time.perf_counter()
        booster = lgb.train(train_params, data, num_boost_round=rounds,
                            callbacks=[lambda env: bar.update(1)])  # observes, changes nothing
        booster.free_dataset()                 # the trees stay; the shared bins are not held
        boosters.append(booster)
        if len(boosters) == 1:
            _estimate(time.perf_counter() - start, len(tasks), X.shape, params, threads)
    bar.close()
    return boosters


LONG_BANK = 120.0  # seconds: a LightGBM bank expected to take longer says so at its start


def _estimate(first: float, n_tasks: int, shape, params: dict, threads: int) -> None:
    """After the first per-label model: when the whole bank will take minutes, say how long
    and what makes it faster (the per-model cost grows with rows x trees)."""
    total = first * n_tasks
    if total < LONG_BANK:
        return
    progress.say(f"lightgbm: the first of {n_tasks} per-label models took {first:.1f} s on "
                 f"{shape[0]} x {shape[1]} features: about {_duration(total)} for the bank "
                 f"with {threads} thread(s); fewer n_estimators (now {params['n_estimators']}) "
                 "or max_features, or more n_jobs, make it faster")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


__all__ = ["CONSTANT_MARGIN", "ScorerBank", "Task", "fit_bank", "sigmoid"]
