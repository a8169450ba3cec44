"""Flat methods: ignore the tree, one binary classifier per label over shared TF-IDF features.

``flat-svm`` (LinearSVC), ``flat-logreg`` (LogisticRegression) and ``flat-lightgbm``
(LightGBM) differ only in the base estimator, named by the class attribute ``ESTIMATOR``
(see ``hmtc_bench.methods.classical.features``).

Scores are mapped to [0, 1] with the logistic function of the decision value, so a
threshold of 0.5 is the classifier's own decision boundary (SVM margin 0, probability 0.5)
for every estimator. A label with no positive (or no negative) training document gets a
constant score of about 0 (or 1).
"""

from __future__ import annotations

import numpy as np

from hmtc_bench.methods.classical.features import Task, TfidfMethod
from hmtc_bench.methods.params import choice, integer, number
from hmtc_bench.methods.search_space import any_of, int_range, log_range

# what the linear estimators' parameters accept (the TF-IDF's: ``TfidfMethod.PARAM_SPECS``)
LINEAR_SPECS = {"C": number(gt=0), "class_weight": choice("balanced", none=True)}
# the linear models' search space (with TfidfMethod's TF-IDF dimensions)
LINEAR_SPACE = {"C": log_range(1e-2, 1e2), "class_weight": any_of(None, "balanced")}


class _FlatMethod(TfidfMethod):
    """TF-IDF + one binary scorer per label by the base estimator named ``ESTIMATOR`` (a key
    of ``features.ESTIMATORS``); subclasses set ``ESTIMATOR`` and define ``__init__`` and
    ``_estimator_params``."""

    TAGS = {"family": "flat", "requires": ("sklearn",), "consistent_by_construction": False,
            "supports_dag": True}

    def _estimator_params(self) -> dict:
        raise NotImplementedError

    def _fit_features(self, X, Y, hierarchy) -> None:
        tasks = []
        for j in range(Y.shape[1]):
            y = np.zeros(Y.shape[0], dtype=np.int8)
            y[Y.indices[Y.indptr[j]:Y.indptr[j + 1]]] = 1
            tasks.append(Task(None, y))
        self.bank_ = self._fit_bank(X, tasks)

    def decision_function(self, texts) -> np.ndarray:
        """Raw decision values (n, L): SVM margins, log-odds, or raw boosting scores."""
        return self.bank_.decision_function(self.transform(list(texts)))

    def _proba_from_features(self, X) -> np.ndarray:
        return self.bank_.predict(X)

    @property
    def coef_(self) -> np.ndarray | None:
        """(features, L) float32 weights of the linear estimators (None for LightGBM)."""
        return self.bank_.coef

    @property
    def intercept_(self) -> np.ndarray:
        return self.bank_.intercept


class FlatSVM(_FlatMethod):
    """TF-IDF + one-vs-rest linear SVM (``sklearn.svm.LinearSVC``), one per label.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of each SVM.
    ngram_max, min_df, max_features, sublinear_tf, char_ngrams
        TF-IDF features (see ``make_vectorizer``).
    class_weight : None or "balanced"
    n_jobs : int
        Labels fitted in parallel (joblib worker processes sharing the features).
    random_state : int

    ``predict_proba`` is the logistic function of the SVM decision value.
    """

    ESTIMATOR = "svm"
    PARAM_SPECS = LINEAR_SPECS
    SEARCH_SPACE = LINEAR_SPACE

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

    def _estimator_params(self) -> dict:
        return {"C": self.C, "class_weight": self.class_weight}


class FlatLogReg(_FlatMethod):
    """TF-IDF + one-vs-rest logistic regression (``sklearn.linear_model.LogisticRegression``,
    lbfgs), one per label. Same parameters as ``FlatSVM`` plus ``max_iter``;
    ``predict_proba`` is the regression's own probability."""

    ESTIMATOR = "logreg"
    PARAM_SPECS = {**LINEAR_SPECS, "max_iter": integer(ge=1)}
    SEARCH_SPACE = LINEAR_SPACE

    def __init__(self, C: float = 1.0, ngram_max: int = 2, min_df: int = 1,
                 max_features: int | None = 200_000, sublinear_tf: bool = True,
                 char_ngrams: bool = False, class_weight: str | None = None,
                 max_iter: int = 1000, n_jobs: int = 1, random_state: int = 0):
        self.C = C
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.char_ngrams = char_ngrams
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return {"max_features": 5000}

    def _estimator_params(self) -> dict:
        return {"C": self.C, "class_weight": self.class_weight, "max_iter": self.max_iter}


class FlatLightGBM(_FlatMethod):
    """TF-IDF + one LightGBM binary GBDT per label.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, colsample_bytree
        LightGBM's, with its defaults.
    ngram_max, min_df, max_features, sublinear_tf, char_ngrams
        TF-IDF features (see ``make_vectorizer``); fewer features than for the linear
        methods by default, as trees gain little from the rare ones.
    n_jobs : int
        LightGBM threads (labels are fitted one after the other on features binned once).
    random_state : int

    ``predict_proba`` is LightGBM's probability (the logistic function of the raw score).
    """

    ESTIMATOR = "lightgbm"
    TAGS = {**_FlatMethod.TAGS, "requires": ("sklearn", "lightgbm")}
    PARAM_SPECS = {"n_estimators": integer(ge=1), "learning_rate": number(gt=0),
                   "num_leaves": integer(ge=2), "min_child_samples": integer(ge=0),
                   "colsample_bytree": number(gt=0, le=1)}
    SEARCH_SPACE = {"n_estimators": int_range(50, 400, log=True),
                    "learning_rate": log_range(0.02, 0.3), "num_leaves": int_range(8, 64, log=True),
                    "min_child_samples": int_range(5, 50, log=True)}

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1,
                 num_leaves: int = 31, min_child_samples: int = 20,
                 colsample_bytree: float = 1.0, ngram_max: int = 1, min_df: int = 2,
                 max_features: int | None = 50_000, sublinear_tf: bool = True,
                 char_ngrams: bool = False, n_jobs: int = 1, random_state: int = 0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.char_ngrams = char_ngrams
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5,
                "max_features": 2000}

    def _estimator_params(self) -> dict:
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                "colsample_bytree": self.colsample_bytree}
