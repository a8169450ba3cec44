"""Shared plumbing of the classical methods: TF-IDF features and the TF-IDF method base.

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

Banks of binary scorers (``Task``, ``ScorerBank``, ``fit_bank``) are in ``banks``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from hmtc_bench import progress, shared_work
from hmtc_bench.methods.base import HMTCMethod, NotFittedError
from hmtc_bench.methods.classical.banks import (CONSTANT_MARGIN, ScorerBank, Task, fit_bank,
                                                sigmoid)
from hmtc_bench.methods.classical.estimators import ESTIMATORS, EstimatorSpec, get_estimator
from hmtc_bench.methods.params import InvalidParameterError, choice, flag, integer, one_of, show
from hmtc_bench.methods.search_space import any_of, int_range

LARGE_PREDICTION = 20_000  # texts: vectorizing this many for a prediction says so


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


# ---------------------------------------------------------------------- method base
class TfidfMethod(HMTCMethod):
    """A method over TF-IDF features: ``fit`` vectorizes the texts (parameters
    ``ngram_max, min_df, max_features, sublinear_tf, char_ngrams`` of the subclass) and calls
    ``_fit_features``; ``predict_proba`` vectorizes and calls ``_proba_from_features``.

    ``fit_features`` / ``predict_proba_features`` do the same from a feature matrix computed
    elsewhere, so a benchmark can vectorize once and share the matrix. Inside
    ``shared_work.scope()`` (a grid) the fitted vectorizer and the matrices of the same
    texts are shared by every fit with the same TF-IDF settings.
    ``fit_seconds_`` splits the fit time into ``features`` and ``classifiers``.

    Methods that fit a ``ScorerBank`` name their base estimator (a key of ``ESTIMATORS``)
    with ``_estimator_name()``: by default the class attribute ``ESTIMATOR``; its
    parameters come from ``_estimator_params()``; ``_fit_bank`` fits the bank.
    """

    ESTIMATOR: ClassVar[str | None] = None   # the base estimator's name; None: no bank
    SEARCH_SPACE: ClassVar[dict] = {"ngram_max": int_range(1, 2), "min_df": int_range(1, 3),
                                    "sublinear_tf": any_of(True, False)}
    PARAM_SPECS: ClassVar[dict] = {   # the TF-IDF's and the fit's (n_jobs: -1 = every core)
        "ngram_max": integer(ge=1), "min_df": integer(ge=1), "max_features": integer(
            ge=1, none=True), "sublinear_tf": flag(), "char_ngrams": flag(),
        "n_jobs": one_of(integer(ge=1), choice(-1)), "random_state": integer(ge=0)}

    def _estimator_name(self) -> str | None:
        return self.ESTIMATOR

    def resources(self) -> dict:
        """``n_jobs`` cores (-1: every core of this machine)."""
        import os
        return {"cpus": (os.cpu_count() or 1) if self.n_jobs == -1 else int(self.n_jobs),
                "gpu": False}

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
        settings = (self.ngram_max, self.min_df, self.max_features, self.sublinear_tf,
                    self.char_ngrams)

        def vectorize():
            vectorizer = make_vectorizer(*settings)
            with progress.step(f"vectorizing {len(texts)} training texts (TF-IDF)",
                               done="vectorized") as shown:
                X = vectorizer.fit_transform(texts)
                shown["note"] = f"{X.shape[0]} x {X.shape[1]} features"
            return vectorizer, X

        with shared_work.ledger() as reused:
            key = (settings, shared_work.digest(texts)) if shared_work.active() else None
            vectorizer, X = shared_work.memo("tfidf", key, vectorize) if key else vectorize()
        features = time.perf_counter() - start + reused.get("tfidf", 0.0)
        self._fit_matrix(X, Y, hierarchy, vectorizer)
        self._share_key = key
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
        self._share_key = None
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
        ``WordCounts`` (the same matrix, bit for bit, faster) where it
        applies."""
        fast = vars(self).get("_word_counts_")
        if fast is None or fast.vectorizer is not self.vectorizer_:
            fast = WordCounts(self.vectorizer_) if WordCounts.applies(self.vectorizer_) \
                else False
            self._word_counts_ = fast
        key = vars(self).get("_share_key")
        compute = (lambda: self.vectorizer_.transform(texts)) if fast is False else \
            (lambda: fast.transform(texts))
        if key is None or not shared_work.active():
            return compute()
        return shared_work.memo("features", (*key, shared_work.digest(texts)), compute)

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


__all__ = ["CONSTANT_MARGIN", "ESTIMATORS", "EstimatorSpec", "ScorerBank", "Task", "TfidfMethod",
           "fit_bank", "get_estimator", "make_vectorizer", "sigmoid"]
