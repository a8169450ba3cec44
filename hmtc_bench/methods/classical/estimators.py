"""The base estimators of the classical methods, by name (``ESTIMATORS``, ``get_estimator``):
what each builds, its defaults, and what its parameters accept (``specs``, checked by
``EstimatorSpec.resolve`` when a method's parameters are set and when it fits). The table
is described in ``hmtc_bench.methods.classical.features``, which fits the banks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hmtc_bench.methods.params import choice, inferred, integer, number


@dataclass(frozen=True)
class EstimatorSpec:
    """A base estimator: ``kind`` is "linear" (sklearn, coef_/intercept_) or "booster"."""

    name: str
    kind: str
    defaults: dict
    make: Callable[[dict, int], object] | None = None   # (params, seed) -> sklearn estimator
    description: str = ""
    dtype: type = np.float64                 # feature dtype the solver works in
    specs: dict = field(default_factory=dict)  # of ``defaults`` (others: by the default's type)

    def resolve(self, params: dict | None) -> dict:
        params = dict(params or {})
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)} for estimator {self.name!r}; "
                             f"known: {sorted(self.defaults)}")
        for key, value in params.items():
            spec = self.specs.get(key) or inferred(self.defaults[key])
            try:
                params[key] = spec.check(value)
            except ValueError as err:
                raise ValueError(f"{key} for estimator {self.name!r} {err}") from None
        return {**self.defaults, **params}


def _make_svm(params: dict, seed: int):
    from sklearn.svm import LinearSVC
    return LinearSVC(random_state=seed, **params)


def _make_logreg(params: dict, seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(random_state=seed, **params)


_LINEAR = {"C": number(gt=0), "class_weight": choice("balanced", none=True),
           "tol": number(gt=0), "max_iter": integer(ge=1)}    # what the values may be
ESTIMATORS: dict[str, EstimatorSpec] = {
    "svm": EstimatorSpec(
        "svm", "linear", {"C": 1.0, "class_weight": None, "dual": True, "tol": 1e-4,
                          "max_iter": 1000},
        _make_svm, "sklearn LinearSVC; score = sigmoid(decision value)", specs=_LINEAR),
    "logreg": EstimatorSpec(
        "logreg", "linear", {"C": 1.0, "class_weight": None, "solver": "lbfgs",
                             "max_iter": 1000, "tol": 1e-4},
        _make_logreg, "sklearn LogisticRegression; score = predict_proba",
        np.float32, {**_LINEAR, "solver": choice("lbfgs", "liblinear", "newton-cg",
                                                 "newton-cholesky", "sag", "saga")}),
        # lbfgs works in float32: about 20 % faster, same iterations
    "lightgbm": EstimatorSpec(
        "lightgbm", "booster", {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31,
                                "min_child_samples": 20, "colsample_bytree": 1.0,
                                "reg_lambda": 0.0, "max_bin": 255},
        None, "LightGBM binary GBDT; score = predict_proba (sigmoid of the raw score)",
        specs={"n_estimators": integer(ge=1), "learning_rate": number(gt=0),
               "num_leaves": integer(ge=2), "min_child_samples": integer(ge=0),
               "colsample_bytree": number(gt=0, le=1), "reg_lambda": number(ge=0),
               "max_bin": integer(ge=2)}),
}


def get_estimator(name: str) -> EstimatorSpec:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]


__all__ = ["ESTIMATORS", "EstimatorSpec", "get_estimator"]
