"""Flat methods: ignore the tree, one binary classifier per label over shared TF-IDF features.

Scores are mapped to [0, 1] with the logistic function of the decision value, so a
threshold of 0.5 is the classifier's own decision boundary (margin 0) for every estimator.
A label with no positive (or no negative) training document gets a constant score of 0
(or 1).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hmtc_bench.methods.base import HMTCMethod

CONSTANT_MARGIN = 20.0  # decision value of a label seen always / never in training


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


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


class FlatSVM(HMTCMethod):
    """TF-IDF + one-vs-rest linear SVM (``sklearn.svm.LinearSVC``), one per label.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of each SVM.
    ngram_max, min_df, max_features, sublinear_tf, char_ngrams
        TF-IDF features (see ``make_vectorizer``).
    class_weight : None or "balanced"
    n_jobs : int
        Labels fitted in parallel (joblib).
    random_state : int
    """

    TAGS = {"family": "flat", "requires": ("sklearn",), "consistent_by_construction": False,
            "supports_dag": True}

    def __init__(self, C: float = 1.0, ngram_max: int = 2, min_df: int = 1,
                 max_features: int | None = 200_000, sublinear_tf: bool = True,
                 char_ngrams: bool = False, class_weight: str | None = None, n_jobs: int = 1,
                 random_state: int = 0):
        self.C = C
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.char_ngrams = char_ngrams
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return {"max_features": 5000}

    def _make_estimator(self):
        from sklearn.svm import LinearSVC
        return LinearSVC(C=self.C, class_weight=self.class_weight,
                         random_state=self.random_state)

    def _fit(self, texts, Y, hierarchy, dev) -> None:
        from joblib import Parallel, delayed
        self.vectorizer_ = make_vectorizer(self.ngram_max, self.min_df, self.max_features,
                                           self.sublinear_tf, self.char_ngrams)
        X = self.vectorizer_.fit_transform(texts)
        Y = sp.csc_matrix(Y)
        positives = np.diff(Y.indptr)
        trainable = np.flatnonzero((positives > 0) & (positives < X.shape[0]))
        results = Parallel(n_jobs=self.n_jobs, prefer="threads" if self.n_jobs == 1 else None)(
            delayed(_fit_one)(self._make_estimator(), X, Y[:, [j]].toarray().ravel())
            for j in trainable)
        W = np.zeros((X.shape[1], Y.shape[1]), dtype=np.float32)
        b = np.where(positives > 0, CONSTANT_MARGIN, -CONSTANT_MARGIN).astype(np.float64)
        for j, (coef, intercept) in zip(trainable, results):
            W[:, j] = coef
            b[j] = intercept
        self.coef_, self.intercept_ = W, b

    def decision_function(self, texts) -> np.ndarray:
        X = self.vectorizer_.transform(list(texts))
        return np.asarray(X @ self.coef_, dtype=np.float64) + self.intercept_

    def _predict_proba(self, texts) -> np.ndarray:
        return _sigmoid(self.decision_function(texts))


def _fit_one(estimator, X, y):
    estimator.fit(X, y)
    return estimator.coef_.ravel().astype(np.float32), float(estimator.intercept_[0])
