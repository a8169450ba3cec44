"""Flat methods (flat-svm, flat-logreg, flat-lightgbm) and the shared scorer bank."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hmtc_bench.data.synthetic import generate
from hmtc_bench.methods import get_method
from hmtc_bench.methods.classical.features import (CONSTANT_MARGIN, ESTIMATORS, Task,
                                                   fit_bank, make_vectorizer, sigmoid)
from hmtc_bench.methods.classical.flat import FlatLightGBM, FlatLogReg, FlatSVM
from hmtc_bench.testing import check_method

FLAT = [FlatSVM, FlatLogReg, FlatLightGBM]


@pytest.mark.parametrize("cls", FLAT, ids=lambda c: c.__name__)
def test_conformance(cls):
    check_method(cls)


@pytest.mark.parametrize("name,cls", [("flat-svm", FlatSVM), ("flat-logreg", FlatLogReg),
                                      ("flat-lightgbm", FlatLightGBM)])
def test_registered(name, cls):
    assert get_method(name) is cls
    assert cls.tags()["family"] == "flat"


@pytest.fixture(scope="module")
def small():
    return generate(n_train=300, n_dev=20, n_test=60, seed=5)


def test_flat_svm_is_one_linear_svc_per_label(small):
    """The refactored FlatSVM keeps its behaviour: LinearSVC per label, sigmoid of margin."""
    from sklearn.svm import LinearSVC
    d = small
    method = FlatSVM(max_features=3000, C=0.5).fit(d.train.texts, d.train.Y, d.hierarchy)
    vectorizer = make_vectorizer(2, 1, 3000, True, False)
    X = vectorizer.fit_transform(d.train.texts)
    Xt = vectorizer.transform(d.test.texts)
    Y = d.train.Y.toarray()
    expected = np.empty((len(d.test), Y.shape[1]))
    for j in range(Y.shape[1]):
        if 0 < Y[:, j].sum() < len(Y):
            svc = LinearSVC(C=0.5, dual=True, random_state=0).fit(X, Y[:, j])
            expected[:, j] = svc.decision_function(Xt)
        else:
            expected[:, j] = CONSTANT_MARGIN if Y[:, j].any() else -CONSTANT_MARGIN
    np.testing.assert_allclose(method.decision_function(d.test.texts), expected, atol=1e-5)
    np.testing.assert_allclose(method.predict_proba(d.test.texts), sigmoid(expected), atol=1e-6)
    assert method.coef_.shape == (X.shape[1], Y.shape[1]) and method.coef_.dtype == np.float32


def test_logreg_score_is_its_probability(small):
    from sklearn.linear_model import LogisticRegression
    d = small
    method = FlatLogReg(max_features=3000).fit(d.train.texts, d.train.Y, d.hierarchy)
    X = method.vectorizer_.transform(d.train.texts)
    j = int(np.argmax(np.asarray(d.train.Y.sum(axis=0)).ravel() < len(d.train)))
    y = d.train.Y[:, j].toarray().ravel()
    model = LogisticRegression(random_state=0, max_iter=1000).fit(X, y)
    Xt = method.vectorizer_.transform(d.test.texts)
    np.testing.assert_allclose(method.predict_proba(d.test.texts)[:, j],
                               model.predict_proba(Xt)[:, 1], atol=1e-4)


def test_lightgbm_score_is_its_probability():
    import lightgbm as lgb
    rng = np.random.default_rng(0)
    X = sp.random(300, 50, density=0.2, format="csr", random_state=0, dtype=np.float32)
    y = (X[:, 0].toarray().ravel() + rng.normal(0, 0.05, 300) > 0.05).astype(np.int8)
    bank = fit_bank(X, [Task(None, y)], "lightgbm", {"n_estimators": 15}, random_state=0)
    booster = bank.boosters[0]
    np.testing.assert_allclose(bank.predict(X)[:, 0], booster.predict(X), atol=1e-10)
    assert isinstance(booster, lgb.Booster)


def test_constant_columns_and_parallel_bank():
    X = sp.random(200, 40, density=0.3, format="csr", random_state=1)
    rng = np.random.default_rng(1)
    ys = [np.zeros(200, np.int8), np.ones(200, np.int8),
          (rng.random(200) < 0.3).astype(np.int8), (X[:, 3].toarray().ravel() > 0).astype(np.int8)]
    tasks = [Task(None, y) for y in ys] + [Task(np.arange(0, 200, 2), ys[3][::2], group="even"),
                                           Task(np.arange(0, 0), np.zeros(0, np.int8))]
    for estimator in ESTIMATORS:
        params = {"n_estimators": 5} if estimator == "lightgbm" else None
        one = fit_bank(X, tasks, estimator, params, n_jobs=1)
        scores = one.predict(X[:5])
        assert scores.shape == (5, len(tasks))
        assert (scores[:, 0] < 1e-6).all() and (scores[:, 1] > 1 - 1e-6).all()
        assert (scores[:, 5] < 1e-6).all()          # no training rows at all
        if estimator != "lightgbm":
            two = fit_bank(X, tasks, estimator, params, n_jobs=2)
            np.testing.assert_array_equal(two.predict(X), one.predict(X))


def test_unknown_estimator_and_parameters():
    X = sp.random(10, 5, density=0.5, format="csr", random_state=0)
    y = np.array([0, 1] * 5, dtype=np.int8)
    with pytest.raises(ValueError, match="unknown estimator 'forest'"):
        fit_bank(X, [Task(None, y)], "forest")
    with pytest.raises(ValueError, match=r"unknown parameters \['depth'\]"):
        fit_bank(X, [Task(None, y)], "svm", {"depth": 3})


def test_flat_parallel_equals_sequential(small):
    d = small
    p1 = FlatSVM(max_features=3000).fit(d.train.texts, d.train.Y, d.hierarchy) \
        .predict_proba(d.test.texts)
    p2 = FlatSVM(max_features=3000, n_jobs=2).fit(d.train.texts, d.train.Y, d.hierarchy) \
        .predict_proba(d.test.texts)
    np.testing.assert_array_equal(p1, p2)


def test_exclusive_tasks_of_a_group_fit_as_one_bundle_with_the_same_result():
    """Siblings whose positives exclude each other are solved by one one-vs-rest call:
    the same binary problems, so the same classifiers up to the solver's tolerance."""
    from hmtc_bench.methods.classical import banks
    rng = np.random.default_rng(2)
    X = sp.random(400, 60, density=0.15, format="csr", random_state=2)
    cls = np.argmax(X[:, :4].toarray() + rng.normal(0, 0.01, (400, 4)), axis=1)
    cls[rng.random(400) < 0.2] = 4                      # documents with no child
    rows = np.arange(0, 400)
    tasks = [Task(rows, (cls == k).astype(np.int8), group="parent") for k in range(4)]
    pair = [Task(rows, (cls < 2).astype(np.int8), group="pair"),
            Task(rows, (cls >= 2).astype(np.int8), group="pair")]   # complements
    spec = ESTIMATORS["svm"]
    params = spec.resolve({"tol": 1e-8, "max_iter": 100_000})
    assert banks._bundles(tasks + pair, list(range(6)), spec, params) == [[0, 1, 2, 3],
                                                                            [4, 5]]
    bundled = fit_bank(X, tasks + pair, "svm", {"tol": 1e-8, "max_iter": 100_000})
    single = fit_bank(X, [Task(t.rows, t.y) for t in tasks + pair], "svm",
                      {"tol": 1e-8, "max_iter": 100_000})
    np.testing.assert_allclose(bundled.decision_function(X), single.decision_function(X),
                               atol=1e-3)
    # overlapping positives, class weights or another estimator: one job per task
    overlap = [Task(rows, (cls <= 1).astype(np.int8), group="g"),
               Task(rows, (cls >= 1).astype(np.int8), group="g")]
    assert banks._bundles(overlap, [0, 1], spec, params) == [[0], [1]]
    balanced = spec.resolve({"class_weight": "balanced"})
    assert banks._bundles(tasks, [0, 1, 2, 3], spec, balanced) == [[0], [1], [2], [3]]
    logreg = ESTIMATORS["logreg"]
    assert banks._bundles(tasks, [0, 1, 2, 3], logreg, logreg.resolve(None)) == \
        [[0], [1], [2], [3]]


def test_quick_bank_writes_nothing_into_a_log(capsys):
    """A bank fitted within the progress interval writes no line into logs and pipes (the
    plain lines and the terminal bar: tests/test_progress.py)."""
    X = sp.random(60, 20, density=0.3, format="csr", random_state=0)
    tasks = [Task(None, (np.arange(60) % (k + 2) == 0).astype(np.int8)) for k in range(3)]
    fit_bank(X, tasks, "svm")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("params", [{}, {"ngram_max": 1}, {"min_df": 2, "max_features": 300}])
def test_prediction_tfidf_equals_the_vectorizers_bit_for_bit(synthetic, params):
    """``WordCounts`` (the fast prediction-time TF-IDF) gives the fitted vectorizer's own
    matrix: same indices, same float32 values, on odd texts too."""
    from hmtc_bench.methods.classical.features import WordCounts
    rng = np.random.default_rng(0)
    words = [t for text in synthetic.train.texts[:50] for t in text.split()][:400]
    odd = ["", "a", "Ünïcödé Straße STRASSE ß", "tab\tsep_arated 42 4 2 x_y", "日本語 テキスト",
           "!!! ... ,,,", "one two one two one two two two"]
    texts = odd + [" ".join(rng.choice(words, size=rng.integers(0, 60))).upper()
                   if i % 3 == 0 else " ".join(rng.choice(words, size=rng.integers(0, 60)))
                   for i in range(200)]
    model = FlatSVM(**params).fit(synthetic.train.texts, synthetic.train.Y, synthetic.hierarchy)
    assert WordCounts.applies(model.vectorizer_)
    expected, got = model.vectorizer_.transform(texts), model.transform(texts)
    assert got.dtype == expected.dtype == np.float32 and got.shape == expected.shape
    for part in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got, part), getattr(expected, part)), part
    assert not WordCounts.applies(make_vectorizer_with_chars())


def make_vectorizer_with_chars():
    from hmtc_bench.methods.classical.features import make_vectorizer
    return make_vectorizer(2, 1, None, True, True)
