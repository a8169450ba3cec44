"""The public conformance suite for methods, in the spirit of scikit-learn's check_estimator.

A plugin author runs ``check_method(MyMethod)`` (or ``check_method("my-name")``) on a new
method; the project's tests run it over every registered method. Each check raises an
``AssertionError`` saying what the method did wrong.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import scipy.sparse as sp

from hmtc_bench.data.synthetic import generate
from hmtc_bench.methods.base import FAMILIES, HMTCMethod


def _small_data(seed: int = 0):
    return generate(n_train=240, n_dev=60, n_test=40, seed=seed, depth=3, branching=3)


def _make(cls, random_state=0):
    params = cls.get_test_params()
    if "random_state" in cls._param_names():
        params = {**params, "random_state": random_state}
    return cls(**params)


def check_init_stores_params(cls) -> None:
    method = _make(cls)
    for name, value in method.get_params().items():
        assert getattr(method, name) is value, f"__init__ must store {name!r} unchanged"
    assert not [k for k in vars(method) if k.endswith("_") and not k.startswith("_")], \
        "__init__ must not set learned attributes (ending in '_')"
    clone = method.clone()
    assert clone.get_params().keys() == method.get_params().keys()


def check_param_specs(cls) -> None:
    """The defaults and ``get_test_params()`` pass the parameter checks (``PARAM_SPECS``,
    else the defaults' types) unchanged, and ``set_params`` accepts them."""
    specs = cls.param_specs()
    defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}
    for name, value in [*((n, defaults[n]) for n in specs), *cls.get_test_params().items()]:
        try:
            checked = specs[name].check(value)
        except ValueError as err:
            raise AssertionError(f"{name}={value!r} (a default or test parameter) is refused "
                                 f"by its own spec: {err}") from None
        assert _same(checked, value), f"{name}={value!r} is changed by its spec to {checked!r}"
    _make(cls).set_params(**cls.get_test_params())


def check_tags(cls) -> None:
    tags = cls.tags()
    assert tags["family"] in FAMILIES, f"family tag {tags['family']!r} not in {FAMILIES}"
    for key in ("consistent_by_construction", "supports_dag", "uses_dev"):
        assert isinstance(tags[key], bool), f"tag {key} must be a bool"


def check_fit_predict(cls, data=None) -> None:
    """Shapes, label order, probabilities in [0, 1], fit returns self, inputs unchanged."""
    data = data or _small_data()
    texts = list(data.train.texts)
    texts_copy = list(texts)
    Y = data.train.Y.copy()
    dev = (list(data.dev.texts), data.dev.Y.copy())
    method = _make(cls)
    params_before = copy.deepcopy(method.get_params())
    returned = method.fit(texts, Y, data.hierarchy, dev=dev)
    assert returned is method, "fit must return self"
    assert texts == texts_copy, "fit mutated the texts"
    assert (Y != data.train.Y).nnz == 0, "fit mutated Y"
    assert _same(method.get_params(), params_before), "fit changed the hyper-parameters"
    proba = method.predict_proba(data.test.texts)
    assert isinstance(proba, np.ndarray), "predict_proba must return a numpy array"
    assert proba.shape == (len(data.test), len(data.hierarchy)), \
        f"predict_proba shape {proba.shape}, expected {(len(data.test), len(data.hierarchy))}"
    assert np.isfinite(proba).all(), "predict_proba returned NaN or inf"
    assert (proba >= 0).all() and (proba <= 1).all(), "probabilities outside [0, 1]"
    pred = method.predict(data.test.texts)
    assert sp.issparse(pred) and pred.shape == proba.shape, "predict must return (n, L) sparse"
    if cls.tags()["consistent_by_construction"]:
        from hmtc_bench.evaluation.metrics import inconsistency
        assert inconsistency(pred, data.hierarchy)[0] == 0, \
            "tagged consistent_by_construction but predicted a label without its parent"


def check_label_order(cls, data=None) -> None:
    """Columns follow the hierarchy's label order: the method learns something that puts
    the most probable top-level label of a document in the right column."""
    data = data or _small_data()
    method = _make(cls).fit(data.train.texts, data.train.Y, data.hierarchy,
                            dev=(data.dev.texts, data.dev.Y))
    top = data.hierarchy.level_columns(1)
    proba = method.predict_proba(data.train.texts)[:, top]
    truth = data.train.Y[:, top].toarray()
    hits = truth[np.arange(len(truth)), proba.argmax(axis=1)].mean()
    assert hits > 0.5, (f"the best-scored top-level label is right for only {hits:.0%} of "
                        "training documents: are the columns in the hierarchy's label order?")


def check_rows_independent(cls, data=None) -> None:
    """Row i depends only on text i: same rows alone, in another order, or in a batch."""
    data = data or _small_data()
    method = _make(cls).fit(data.train.texts, data.train.Y, data.hierarchy,
                            dev=(data.dev.texts, data.dev.Y))
    texts = list(data.test.texts)
    full = method.predict_proba(texts)
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = method.predict_proba([texts[i] for i in order])
    np.testing.assert_allclose(shuffled, full[order], atol=1e-5,
                               err_msg="predictions depend on the order of the batch")
    for i in (0, len(texts) - 1):
        alone = method.predict_proba([texts[i]])
        np.testing.assert_allclose(alone[0], full[i], atol=1e-5,
                                   err_msg=f"row {i} differs when predicted alone")


def check_seed_determinism(cls, data=None) -> None:
    """The same seed gives the same output."""
    data = data or _small_data()
    outputs = []
    for _ in range(2):
        method = _make(cls, random_state=7).fit(data.train.texts, data.train.Y, data.hierarchy,
                                                dev=(data.dev.texts, data.dev.Y))
        outputs.append(method.predict_proba(data.test.texts))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6,
                               err_msg="two fits with the same seed gave different outputs")


def check_save_load(cls, data=None) -> None:
    """``save`` writes a folder without pickle that ``load`` (and ``load_model``) reads back
    into a method of the same class and parameters predicting the same: bit for bit, or
    within 1e-6 for a method that needs torch."""
    import tempfile

    from hmtc_bench.methods import registered_name
    from hmtc_bench.methods.saving import load_model
    data = data or _small_data()
    method = _make(cls).fit(data.train.texts, data.train.Y, data.hierarchy,
                            dev=(data.dev.texts, data.dev.Y))
    proba = method.predict_proba(data.test.texts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = method.save(f"{tmp}/model", info={"check": "save_load"})
        names = [p.name for p in folder.rglob("*") if p.is_file()]
        pickled = [n for n in names if n.endswith((".pkl", ".pickle", ".joblib", ".bin"))]
        assert not pickled, f"save wrote pickled files: {pickled}"
        loaders = [cls.load] + ([load_model] if registered_name(cls) else [])
        for loaded in (load(folder) for load in loaders):
            assert type(loaded) is cls, f"load gave a {type(loaded).__name__}"
            assert _same(loaded.get_params(), method.get_params()), "load changed the parameters"
            again = loaded.predict_proba(data.test.texts)
            if "torch" in cls.tags()["requires"]:
                np.testing.assert_allclose(again, proba, atol=1e-6, rtol=0,
                                           err_msg="the loaded model predicts differently")
            else:
                assert np.array_equal(again, proba), \
                    "the loaded model predicts differently (not bit for bit)"
        assert loaded.saved_info_ == {"check": "save_load"}, "load lost the saved info"


def check_not_fitted(cls) -> None:
    from hmtc_bench.methods.base import NotFittedError
    try:
        _make(cls).predict_proba(["text"])
    except NotFittedError:
        return
    raise AssertionError("predict_proba before fit must raise NotFittedError")


CHECKS = [check_init_stores_params, check_param_specs, check_tags, check_not_fitted,
          check_fit_predict, check_label_order, check_rows_independent, check_seed_determinism,
          check_save_load]


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and the like
        return repr(a) == repr(b)


def check_method(method) -> None:
    """Run every check on a method class, or a registered method name."""
    cls = _resolve(method)
    for check in CHECKS:
        check(cls)


def _resolve(method):
    if isinstance(method, str):
        from hmtc_bench.methods import get_method
        return get_method(method)
    if inspect.isclass(method) and issubclass(method, HMTCMethod):
        return method
    if isinstance(method, HMTCMethod):
        return type(method)
    raise TypeError(f"expected a method name or an HMTCMethod subclass, got {method!r}")
