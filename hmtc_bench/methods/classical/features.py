"""Shared plumbing of the classical methods: TF-IDF features and banks of binary scorers.

Features
--------
``make_vectorizer`` builds the TF-IDF used by every flat and local method: word
1..``ngram_max``-grams, optionally character 2..5-grams, sublinear tf, float32.

Base estimators
---------------
``ESTIMATORS`` (module ``estimators``, re-exported here) maps a name to an ``EstimatorSpec``
(``get_estimator(name)``: defaults, and ``specs`` of what each parameter accepts); every method
here picks its base estimator by that name: a flat method through its class attribute
``ESTIMATOR``, a local method through its ``estimator`` parameter (with optional overrides
in ``estimator_params``). ``TfidfMethod._check_params`` validates the name and parameters
and ``TfidfMethod._fit_bank`` fits the bank with them:

========== ======================================= ==========================================
name       estimator (defaults)                    score in [0, 1]
========== ======================================= ==========================================
svm        ``sklearn.svm.LinearSVC`` (C=1, dual)   sigmoid(decision value)
logreg     ``sklearn.linear_model.LogisticRegression`` sigmoid(decision value) = predict_proba
           (lbfgs, C=1, max_iter=1000)
lightgbm   ``lightgbm`` binary GBDT (100 trees,    sigmoid(raw score) = predict_proba
           31 leaves, learning rate 0.1)
========== ======================================= ==========================================

The SVM is solved in the dual (liblinear's coordinate descent) at every size: scikit-learn's
``dual="auto"`` switches to the primal Newton solver once documents outnumber features,
which on TF-IDF is about twice as slow per label (measured on 50,000 and 200,000
documents x 47,000 features) and breaks the linear growth of the fit time.

Every score is the logistic function of the estimator's own decision value, so a threshold
of 0.5 is each estimator's own decision boundary (SVM margin 0, probability 0.5) and
thresholds mean the same thing across estimators. A column whose training rows hold no
positive (or no negative) gets a constant decision value of -20 (or +20), i.e. a score of
about 0 (or 1): never (always) predicted, and no crash.

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
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from hmtc_bench import progress
from hmtc_bench.methods.base import HMTCMethod, NotFittedError
from hmtc_bench.methods.classical.estimators import ESTIMATORS, EstimatorSpec, get_estimator
from hmtc_bench.methods.params import InvalidParameterError, choice, flag, integer, one_of, show

CONSTANT_MARGIN = 20.0  # decision value of a column seen always / never in its training rows


# ---------------------------------------------------------------------- features
def make_vectorizer(ngram_max: int, min_df: int, max_features: int | None,
                    sublinear_tf: bool, char_ngrams: bool):
    """TF-IDF over word 1..ngram_max-grams, optionally with character 2..5-grams."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion
    words = TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, max_features=max_features,
                            sublinear_tf=sublinear_tf, lowercase=True, dtype=np.float32)
    if not char_ngrams:
        return words
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=min_df,
                            max_features=max_features, sublinear_tf=sublinear_tf,
                            dtype=np.float32)
    return FeatureUnion([("words", words), ("chars", chars)])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


# ---------------------------------------------------------------------- method base
class TfidfMethod(HMTCMethod):
    """A method over TF-IDF features: ``fit`` vectorizes the texts (parameters
    ``ngram_max, min_df, max_features, sublinear_tf, char_ngrams`` of the subclass) and calls
    ``_fit_features``; ``predict_proba`` vectorizes and calls ``_proba_from_features``.

    ``fit_features`` / ``predict_proba_features`` do the same from a feature matrix computed
    elsewhere, so a grid or a benchmark can vectorize once and share the matrix.
    ``fit_seconds_`` splits the fit time into ``features`` and ``classifiers``.

    Methods that fit a ``ScorerBank`` name their base estimator (a key of ``ESTIMATORS``)
    with ``_estimator_name()``: by default the class attribute ``ESTIMATOR``; its
    parameters come from ``_estimator_params()``; ``_fit_bank`` fits the bank.
    """

    ESTIMATOR: ClassVar[str | None] = None   # the base estimator's name; None: no bank
    PARAM_SPECS: ClassVar[dict] = {   # the TF-IDF's and the fit's (n_jobs: -1 = every core)
        "ngram_max": integer(ge=1), "min_df": integer(ge=1), "max_features": integer(
            ge=1, none=True), "sublinear_tf": flag(), "char_ngrams": flag(),
        "n_jobs": one_of(integer(ge=1), choice(-1)), "random_state": integer(ge=0)}

    def _estimator_name(self) -> str | None:
        return self.ESTIMATOR

    def _estimator_params(self) -> dict | None:
        """Overrides of the base estimator's defaults (None: its defaults)."""
        return None

    def _check_params(self) -> None:
        """Validate hyper-parameters before any work (a ValueError naming the bad one);
        subclasses extend it. Here: the base estimator's name and parameters."""
        name = self._estimator_name()
        if name is None:
            return
        try:
            get_estimator(name).resolve(self._estimator_params())
        except ValueError as err:
            given = getattr(self, "estimator_params", None)  # None: flat (checked as C etc.)
            where = "" if given is None else f"parameter estimator_params={show(given)}: "
            raise InvalidParameterError(type(self).__name__, f": {where}{err}") from None

    def _fit_bank(self, X, tasks: Sequence[Task]) -> ScorerBank:
        """The bank of binary scorers of ``tasks``, one per task, on the rows of ``X``."""
        return fit_bank(X, tasks, self._estimator_name(), self._estimator_params(),
                        n_jobs=self.n_jobs, random_state=self.random_state)

    def _fit(self, texts, Y, hierarchy, dev) -> None:
        self._check_params()
        start = time.perf_counter()
        vectorizer = make_vectorizer(self.ngram_max, self.min_df, self.max_features,
                                     self.sublinear_tf, self.char_ngrams)
        with progress.step(f"vectorizing {len(texts)} training texts (TF-IDF)",
                           done="vectorized") as shown:
            X = vectorizer.fit_transform(texts)
            shown["note"] = f"{X.shape[0]} x {X.shape[1]} features"
        features = time.perf_counter() - start
        self._fit_matrix(X, Y, hierarchy, vectorizer)
        self.fit_seconds_["features"] = features

    def fit_features(self, X, Y, hierarchy, vectorizer=None) -> "TfidfMethod":
        """Fit on a feature matrix X (n, F) of the training texts; ``vectorizer`` (fitted,
        optional) maps new texts to the same features so that ``predict_proba`` works."""
        X = sp.csr_matrix(X)
        Y = sp.csr_matrix(Y)
        if Y.shape != (X.shape[0], len(hierarchy)):
            raise ValueError(f"Y has shape {Y.shape}; expected ({X.shape[0]}, {len(hierarchy)})")
        if not hierarchy.is_tree and not self.tags()["supports_dag"]:
            raise ValueError(f"{type(self).__name__} does not support DAG hierarchies")
        self._check_params()
        self.hierarchy_ = hierarchy
        self.n_labels_ = len(hierarchy)
        self._fit_matrix(X, Y, hierarchy, vectorizer)
        return self

    def _fit_matrix(self, X, Y, hierarchy, vectorizer) -> None:
        self.vectorizer_ = vectorizer
        self.n_features_ = X.shape[1]
        start = time.perf_counter()
        self._fit_features(X, sp.csc_matrix(Y), hierarchy)
        self.fit_seconds_ = {"features": 0.0, "classifiers": time.perf_counter() - start}

    def predict_proba_features(self, X) -> np.ndarray:
        """``predict_proba`` from a feature matrix made like the training one."""
        if not hasattr(self, "hierarchy_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")
        X = sp.csr_matrix(X)
        if X.shape[1] != self.n_features_:
            raise ValueError(f"X has {X.shape[1]} features; the method was fitted on "
                             f"{self.n_features_}")
        return np.clip(np.asarray(self._proba_from_features(X), dtype=np.float64), 0.0, 1.0)

    def _predict_proba(self, texts) -> np.ndarray:
        if self.vectorizer_ is None:
            raise RuntimeError(f"{type(self).__name__} was fitted with fit_features and no "
                               "vectorizer: use predict_proba_features")
        with progress.step(f"vectorizing {len(texts)} texts (TF-IDF)",
                           enabled=len(texts) >= LARGE_PREDICTION):
            X = self.transform(texts)
        return self._proba_from_features(X)

    def transform(self, texts) -> sp.csr_matrix:
        """The TF-IDF features of ``texts``: the fitted vectorizer's, computed by
        ``WordCounts`` (the same matrix, bit for bit, about twice as fast) where it
        applies."""
        fast = vars(self).get("_word_counts_")
        if fast is None or fast.vectorizer is not self.vectorizer_:
            fast = WordCounts(self.vectorizer_) if WordCounts.applies(self.vectorizer_) \
                else False
            self._word_counts_ = fast
        if fast is False:
            return self.vectorizer_.transform(texts)
        return fast.transform(texts)

    # saving (``hmtc_bench.methods.saving``): the TF-IDF's vocabulary (JSON, terms in
    # column order) and idf (.npy) per part, the scorer bank if there is one, and the other
    # learned attributes (arrays and JSON values, ``saving.save_attributes``)
    def _save_state(self, writer) -> None:
        from hmtc_bench.methods.saving import save_attributes
        if self.vectorizer_ is None:
            raise ValueError(f"{type(self).__name__} was fitted with fit_features and no "
                             "vectorizer: it cannot predict texts, so it is not saved")
        parts = _vectorizer_parts(self.vectorizer_)
        for name, part in parts.items():
            writer.json(f"tfidf/{name}.terms", sorted(part.vocabulary_, key=part.vocabulary_.get))
            writer.array(f"tfidf/{name}.idf", part.idf_)
        writer.json("tfidf/features", {"parts": list(parts), "n_features": int(self.n_features_)})
        if hasattr(self, "bank_"):
            self.bank_.save(writer, "bank")
        save_attributes(writer, self, exclude=("vectorizer_", "bank_"))

    def _load_state(self, reader) -> None:
        from hmtc_bench.methods.saving import load_attributes
        vectorizer = make_vectorizer(self.ngram_max, self.min_df, self.max_features,
                                     self.sublinear_tf, self.char_ngrams)
        parts = _vectorizer_parts(vectorizer)
        saved = reader.json("tfidf/features")
        if saved["parts"] != list(parts):
            raise ValueError(f"{reader.root}: TF-IDF parts {saved['parts']} do not match the "
                             f"parameters ({list(parts)})")
        for name, part in parts.items():
            part.vocabulary_ = {t: i for i, t in enumerate(reader.json(f"tfidf/{name}.terms"))}
            part.idf_ = reader.array(f"tfidf/{name}.idf")
        load_attributes(reader, self)
        self.vectorizer_ = vectorizer
        if reader.has("bank/bank.json"):
            self.bank_ = ScorerBank.load(reader, "bank")

    # to implement
    def _fit_features(self, X: sp.csr_matrix, Y: sp.csc_matrix, hierarchy) -> None:
        raise NotImplementedError

    def _proba_from_features(self, X: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError


class WordCounts:
    """Prediction-time TF-IDF of a fitted word ``TfidfVectorizer`` (lower-cased, default
    token pattern, 1- and 2-grams): its tokens are looked up once each in a word table and
    its bigrams found with numpy among the vocabulary's (as pairs of word ids, sorted),
    instead of one Python string and dictionary lookup per n-gram. The counts are the
    same matrix as ``CountVectorizer``'s, and the vectorizer's own idf weighting and
    normalisation finish it, so the result equals ``vectorizer.transform`` bit for bit
    (``tests/test_flat.py``)."""

    def __init__(self, vectorizer):
        import re
        self.vectorizer = vectorizer
        self.pattern = re.compile(vectorizer.token_pattern)
        self.words: dict[str, int] = {}
        unigrams, pairs = [], []
        for term, column in vectorizer.vocabulary_.items():
            ids = [self.words.setdefault(part, len(self.words)) for part in term.split(" ")]
            (unigrams if len(ids) == 1 else pairs).append((*ids, column))
        n_words = len(self.words)
        self.n_words = n_words
        self.unigram = np.full(n_words + 1, -1, dtype=np.int64)   # [-1]: a word not in it
        if unigrams:
            ids, columns = np.array(unigrams, dtype=np.int64).T
            self.unigram[ids] = columns
        pairs = np.array(pairs, dtype=np.int64).reshape(-1, 3)
        keys = pairs[:, 0] * n_words + pairs[:, 1]
        order = np.argsort(keys)
        self.keys, self.bigram = keys[order], pairs[order, 2]

    @staticmethod
    def applies(vectorizer) -> bool:
        from sklearn.feature_extraction.text import TfidfVectorizer
        return (type(vectorizer) is TfidfVectorizer and vectorizer.analyzer == "word"
                and vectorizer.lowercase and vectorizer.preprocessor is None
                and vectorizer.tokenizer is None and vectorizer.stop_words is None
                and vectorizer.strip_accents is None and not vectorizer.binary
                and vectorizer.input == "content" and vectorizer.ngram_range[0] == 1
                and vectorizer.ngram_range[1] in (1, 2)
                and vectorizer.token_pattern == r"(?u)\b\w\w+\b"
                and hasattr(vectorizer, "vocabulary_"))

    def counts(self, texts) -> sp.csr_matrix:
        findall, get = self.pattern.findall, self.words.get
        ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            tokens = findall(text.lower())
            lengths[i] = len(tokens)
            ids.extend([get(t, -1) for t in tokens])
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.repeat(np.arange(len(texts)), lengths)
        columns = self.unigram[ids]
        keep = columns >= 0
        all_rows, all_columns = [rows[keep]], [columns[keep]]
        if self.vectorizer.ngram_range[1] == 2 and len(ids) > 1 and len(self.keys):
            first, second = ids[:-1], ids[1:]
            same_text = rows[:-1] == rows[1:]
            valid = same_text & (first >= 0) & (second >= 0)
            keys = first[valid] * self.n_words + second[valid]
            where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            found = self.keys[where] == keys
            all_rows.append(rows[:-1][valid][found])
            all_columns.append(self.bigram[where[found]])
        rows, columns = np.concatenate(all_rows), np.concatenate(all_columns)
        X = sp.csr_matrix((np.ones(len(rows), dtype=self.vectorizer.dtype), (rows, columns)),
                          shape=(len(texts), len(self.vectorizer.vocabulary_)))
        X.sum_duplicates()
        return X

    def transform(self, texts) -> sp.csr_matrix:
        return self.vectorizer._tfidf.transform(self.counts(texts), copy=False)


def _vectorizer_parts(vectorizer) -> dict:
    """The TfidfVectorizers of ``make_vectorizer``'s result, by name."""
    if hasattr(vectorizer, "transformer_list"):
        return dict(vectorizer.transformer_list)
    return {"words": vectorizer}


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


LARGE_PREDICTION = 20_000  # texts: vectorizing this many for a prediction says so
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


__all__ = ["CONSTANT_MARGIN", "ESTIMATORS", "EstimatorSpec", "ScorerBank", "Task", "TfidfMethod",
           "fit_bank", "get_estimator", "make_vectorizer", "sigmoid"]
