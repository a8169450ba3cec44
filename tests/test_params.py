"""Method parameters: declared, checked and converted before any data is loaded
(``hmtc_bench.methods.params``), in the Python API, ``hmtc-bench run``, ``bench`` and
``bench --dry-run``; grid files checked for shape."""

from __future__ import annotations

import inspect
import math
import pickle

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import _parse_params, app
from hmtc_bench.data.dataset import DataError
from hmtc_bench.errors import ParameterError
from hmtc_bench.grid import load_grid
from hmtc_bench.methods import HMTCMethod, inspect_method, make_method, method_names
from hmtc_bench.methods.params import (THRESHOLD, InvalidParameterError, choice, integer,
                                       load_yaml, number, one_of, sequence, string)
from hmtc_bench.tracking import Store

BUILT_IN = [name for name in method_names()
            if inspect_method(name).value.startswith("hmtc_bench.")]


def _declared(cls) -> dict:
    declared: dict = {}
    for klass in reversed(cls.__mro__):
        declared.update(vars(klass).get("PARAM_SPECS") or {})
    return declared


# ---------------------------------------------------------------------- declarations
@pytest.mark.parametrize("name", BUILT_IN)
def test_defaults_and_test_params_validate(name):
    info = inspect_method(name)
    cls = info.cls
    specs = cls.param_specs()
    params = inspect.signature(cls.__init__).parameters
    missing = set(cls._param_names()) - set(_declared(cls))
    assert not missing, f"{name}: parameters without a declared spec: {sorted(missing)}"
    for key, spec in specs.items():
        default = params[key].default
        assert spec.check(default) == default, f"{name}: default {key}={default!r} refused"
    for key, value in cls.get_test_params().items():
        assert specs[key].check(value) == value, f"{name}: test parameter {key}={value!r}"
    method = cls().set_params(**cls.get_test_params(), random_state=3)
    assert method.get_params()["random_state"] == 3
    if info.available:
        assert info.build(cls.get_test_params(), 1).get_params() == {
            **cls().get_params(), **cls.get_test_params(), "random_state": 1}


@pytest.mark.parametrize("name, params, message", [
    ("flat-svm", {"C": -1}, "flat-svm: parameter C=-1: must be a number > 0"),
    ("flat-svm", {"C": "abc"}, "flat-svm: parameter C=abc: must be a number > 0"),
    ("flat-svm", {"C": float("nan")}, "flat-svm: parameter C=nan: must be a number > 0"),
    ("flat-svm", {"C": True}, "flat-svm: parameter C=True: must be a number > 0"),
    ("flat-svm", {"ngram_max": "two"},
     "flat-svm: parameter ngram_max=two: must be an integer >= 1"),
    ("flat-svm", {"ngram_max": 1.5}, "parameter ngram_max=1.5: must be an integer >= 1"),
    ("flat-svm", {"class_weight": "auto"},
     "flat-svm: parameter class_weight=auto: must be balanced or None"),
    ("flat-svm", {"max_features": 0},
     "parameter max_features=0: must be an integer >= 1 or None"),
    ("flat-svm", {"n_jobs": 0}, "parameter n_jobs=0: must be an integer >= 1 or -1"),
    ("flat-svm", {"gamma": 1}, "flat-svm has no parameter 'gamma'; valid: C, "),
    ("flat-lightgbm", {"colsample_bytree": 1.5},
     "parameter colsample_bytree=1.5: must be a number in (0, 1]"),
    ("local-node", {"chain": "max"},
     "local-node: parameter chain=max: must be min or product"),
    ("local-node", {"negatives": "none"},
     "parameter negatives=none: must be siblings, parent or all"),
    ("local-node", {"estimator": "rf"},
     "parameter estimator=rf: must be svm, logreg or lightgbm"),
    ("local-node", {"estimator_params": {"C": -1}},
     "local-node: parameter estimator_params={'C': -1}: C for estimator 'svm' must be a "
     "number > 0"),
    ("local-parent", {"estimator": "lightgbm", "estimator_params": {"C": 1.0}},
     "unknown parameters ['C'] for estimator 'lightgbm'"),
    ("local-level", {"estimator_params": [1]},
     "parameter estimator_params=[1]: must be a mapping or None"),
    ("msml", {"epochs": 0}, "msml: parameter epochs=0: must be an integer >= 1"),
    ("msml", {"device": "gpu"},
     "parameter device=gpu: must be auto, cpu, cuda, cuda:N or mps"),
    ("msml", {"kernel_sizes": [[3, 0]]}, "parameter kernel_sizes=[[3, 0]]: must be a list "
     "(one per level, top first) of lists of integers >= 1 or None"),
    ("msml-no-hgm", {"dropout": 1.0}, "parameter dropout=1.0: must be a number in [0, 1)"),
    ("hmcn", {"beta": -0.1}, "hmcn: parameter beta=-0.1: must be a number in [0, 1]"),
    ("hiagm", {"output": "flat"}, "parameter output=flat: must be per-node or flatten"),
    ("flat-bert", {"precision": "fp16"},
     "parameter precision=fp16: must be auto, bf16 or fp32"),
    ("flat-bert", {"random_state": -1}, "parameter random_state=-1: must be an integer >= 0"),
])
def test_bad_values_refused_in_one_line(name, params, message):
    with pytest.raises(ParameterError) as err:
        make_method(name, params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_strings_and_numbers_converted():
    method = make_method("flat-svm", {"C": "1e-3", "ngram_max": "1", "max_features": 2e4})
    assert method.C == 0.001 and method.ngram_max == 1 and method.max_features == 20000
    assert type(method.max_features) is int
    assert make_method("flat-svm", {"C": 2}).C == 2 and type(make_method(
        "flat-svm", {"C": 2}).C) is int  # ints stay ints (a run's identity tells 1 from 1.0)
    local = make_method("local-node", {"estimator_params": {"C": 0.5, "max_iter": 50}})
    assert local.estimator_params == {"C": 0.5, "max_iter": 50}
    msml = make_method("msml", {"kernel_sizes": [[3, 4], (2, 3)], "level_weights": [1, 0.5]})
    assert msml.kernel_sizes == [[3, 4], (2, 3)]


def test_refused_set_params_changes_nothing():
    method = make_method("local-node")
    with pytest.raises(ParameterError, match="unknown parameters"):
        method.set_params(estimator="lightgbm", estimator_params={"C": 1.0})
    assert method.estimator == "svm" and method.estimator_params is None
    with pytest.raises(ParameterError, match="LocalNode: parameter chain=max"):
        method.set_params(chain="max")  # outside build: named by its class
    assert method.chain == "min"


def test_undeclared_parameters_checked_by_their_default():
    class Plugin(HMTCMethod):
        PARAM_SPECS = {"alpha": float, "unknown_name": number(gt=0)}

        def __init__(self, alpha=1.0, rate=0.5, k=2, name="x", on=True, extra=None):
            self.alpha, self.rate, self.k, self.name, self.on, self.extra = (
                alpha, rate, k, name, on, extra)

    specs = Plugin.param_specs()
    assert set(specs) == {"alpha", "rate", "k", "name", "on", "extra"}  # unknown_name ignored
    method = Plugin().set_params(alpha="2", rate=1, k=3.0, name="y", on=False, extra=[1])
    assert (method.alpha, method.rate, method.k, method.extra) == (2, 1, 3, [1])
    for params, message in [({"rate": "fast"}, "Plugin: parameter rate=fast: must be a number"),
                            ({"k": 2.5}, "parameter k=2.5: must be an integer"),
                            ({"name": 3}, "parameter name=3: must be a string"),
                            ({"on": "yes"}, "parameter on=yes: must be true or false")]:
        with pytest.raises(ParameterError, match=message):
            Plugin().set_params(**params)


def test_specs_describe_and_convert():
    assert number(gt=0, le=1).describe() == "a number in (0, 1]"
    assert integer(ge=1, none=True).describe() == "an integer >= 1 or None"
    assert one_of(integer(ge=1), choice(-1)).check(-1) == -1
    assert sequence(integer(ge=1)).check(["2", 3]) == [2, 3]
    assert string(pattern="a+").describe() == "a string"
    for bad in (float("inf"), float("nan"), "nan", 1.5, -0.1, True, None, "x"):
        with pytest.raises(ValueError, match=r"must be a number in \[0, 1\]"):
            THRESHOLD.check(bad)
    assert THRESHOLD.check("0.25") == 0.25 and THRESHOLD.check(1) == 1
    error = InvalidParameterError("FlatSVM", ": parameter C=-1: must be a number > 0")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and str(error.for_owner("flat-svm")).startswith("flat-svm:")


def test_yaml_reads_exponents_as_numbers():
    assert load_yaml("1e-3") == 0.001 and load_yaml("-2E+2") == -200.0
    assert load_yaml("{C: 5e-1, name: 1e-3x, v: '1e-3'}") == {"C": 0.5, "name": "1e-3x",
                                                              "v": "1e-3"}
    assert math.isnan(load_yaml(".nan")) and load_yaml("1") == 1 and load_yaml("abc") == "abc"
    assert _parse_params(["C=1e-3", "ngram_max=2", "encoder=tiny-random", "x=[1, 2]"]) == {
        "C": 0.001, "ngram_max": 2, "encoder": "tiny-random", "x": [1, 2]}


# ---------------------------------------------------------------------- the command line
@pytest.fixture
def no_data(monkeypatch):
    """Loading a dataset fails the test: refusals happen before any data is loaded."""
    loaded = []

    def refuse(name, *args, **kwargs):
        loaded.append(name)
        raise AssertionError(f"dataset {name} loaded")
    import hmtc_bench.data
    import hmtc_bench.runner
    monkeypatch.setattr(hmtc_bench.data, "load_dataset", refuse)
    monkeypatch.setattr(hmtc_bench.runner, "load_dataset", refuse)
    return loaded


def _invoke(*args):
    return CliRunner().invoke(app, list(args))


def _no_runs(tmp_path) -> bool:
    """The store at tmp_path/s.db holds no run (a store never created holds none)."""
    db = tmp_path / "s.db"
    return not db.exists() or Store(f"sqlite:///{db}").records() == []


@pytest.mark.parametrize("args, message", [
    (["--param", "C=abc"], "error: flat-svm: parameter C=abc: must be a number > 0"),
    (["--param", "C=-1"], "error: flat-svm: parameter C=-1: must be a number > 0"),
    (["--param", "ngram_max=two"], "error: flat-svm: parameter ngram_max=two: must be an "
                                   "integer >= 1"),
    (["--param", "class_weight=auto"], "error: flat-svm: parameter class_weight=auto: must be "
                                       "balanced or None"),
    (["--param", "=1"], "expected KEY=VALUE"),
    (["--threshold", "1.5"], "error: --threshold 1.5: must be a number in [0, 1]"),
    (["--threshold", "nan"], "error: --threshold nan: must be a number in [0, 1]"),
    (["--threshold", "-0.1"], "error: --threshold -0.1: must be a number in [0, 1]"),
    (["--seed", "-1"], "error: --seed -1: must be an integer >= 0"),
])
def test_run_refuses_before_loading_data(args, message, tmp_path, no_data):
    uri = f"sqlite:///{tmp_path}/s.db"
    result = _invoke("run", "--method", "flat-svm", "--dataset", "synthetic", *args,
                     "--tracking-uri", uri)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert no_data == [] and _no_runs(tmp_path)


def test_run_reads_exponent_as_number(tmp_path):
    uri = f"sqlite:///{tmp_path}/s.db"
    result = _invoke("run", "--method", "flat-svm", "--dataset", "synthetic", "--param",
                     "C=1e-3", "--param", "max_features=500", "--threshold", "0.3",
                     "--tracking-uri", uri)
    assert result.exit_code == 0, result.output
    [record] = Store(uri).records()
    assert record.status == "finished" and record.params["C"] == 0.001
    assert record.threshold == 0.3


BAD_GRIDS = {
    "datasets: synthetic\nmethods: [flat-svm]\n":
        "'datasets' must be a non-empty list (got 'synthetic'), e.g. datasets: [synthetic]",
    "datasets: []\nmethods: [flat-svm]\n": "'datasets' must be a non-empty list",
    "methods: [flat-svm]\n": "'datasets' must be a non-empty list (got nothing), e.g. "
                             "datasets: [synthetic]",
    "datasets: [synthetic, {a: 1}]\nmethods: [flat-svm]\n": "'datasets' must list names",
    "datasets: [synthetic]\nmethods: flat-svm\n": "'methods' must be a non-empty list",
    "datasets: [synthetic]\nmethods: {method: flat-svm}\n": "'methods' must be a non-empty list",
    "datasets: [synthetic]\nseeds: [a]\nmethods: [flat-svm]\n":
        "'seeds' entry a: must be an integer >= 0",
    "datasets: [synthetic]\nseeds: [0, 1.5]\nmethods: [flat-svm]\n":
        "'seeds' entry 1.5: must be an integer >= 0",
    "datasets: [synthetic]\nseeds: {a: 1}\nmethods: [flat-svm]\n": "'seeds' must be a non-empty",
    "datasets: [synthetic]\nseeds: []\nmethods: [flat-svm]\n": "'seeds' must be a non-empty",
    "datasets: [synthetic]\ndecode: [greedy]\nmethods: [flat-svm]\n": "unknown decoding policy",
    "datasets: [synthetic]\nthreshold: 1.5\nmethods: [flat-svm]\n":
        "threshold 1.5: must be a number in [0, 1]",
    "datasets: [synthetic]\nthreshold: .nan\nmethods: [flat-svm]\n":
        "threshold nan: must be a number in [0, 1]",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, params: [C]}]\n":
        "methods entry 1 (flat-svm): 'params' must be a mapping of parameter names to values",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, grid: [C]}]\n":
        "methods entry 1 (flat-svm): 'grid' must be a mapping of parameter names to lists",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, grid: {C: 1}}]\n":
        "methods entry 1 (flat-svm): grid axis 'C' must be a non-empty list",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, grid: {C: []}}]\n":
        "grid axis 'C' must be a non-empty list",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, params: {C: 1}, grid: {C: [2]}}]\n":
        "parameter(s) 'C' in both 'params' and 'grid'",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, datasets: synthetic}]\n":
        "methods entry 1 (flat-svm): 'datasets' must be a non-empty list",
    "datasets: [synthetic]\nmethods: [{method: 3}]\n": "methods entry 1 needs a 'method' name",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, params: {C: abc}}]\n":
        "methods entry 1 (flat-svm): parameter C=abc: must be a number > 0",
    "datasets: [synthetic]\nmethods: [flat-svm, {method: flat-svm, grid: {C: [1, -1]}}]\n":
        "methods entry 2 (flat-svm): parameter C=-1: must be a number > 0",
    "datasets: [synthetic]\nmethods: [{method: flat-svm, params: {ngram_max: two}}]\n":
        "methods entry 1 (flat-svm): parameter ngram_max=two: must be an integer >= 1",
    "datasets: [synthetic]\nmethods: [{method: local-node, params: {estimator_params: "
    "{tol: 0}}}]\n": "parameter estimator_params={'tol': 0}: tol for estimator 'svm' must be",
}


@pytest.mark.parametrize("text", list(BAD_GRIDS))
def test_bad_grids_named(text, tmp_path, no_data):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(DataError) as err:
        load_grid(path)
    assert str(err.value).startswith(f"{path}: ") and BAD_GRIDS[text] in str(err.value)
    uri = f"sqlite:///{tmp_path}/s.db"
    for dry in ([], ["--dry-run"]):
        result = _invoke("bench", str(path), "--tracking-uri", uri, *dry)
        assert result.exit_code == 1 and BAD_GRIDS[text] in result.output, result.output
        assert "Traceback" not in result.output
    assert no_data == [] and _no_runs(tmp_path)


def test_grid_scalars_numbers_and_conversions(tmp_path):
    grid = load_grid(write(tmp_path / "g.yaml", (
        "datasets: [synthetic]\nseeds: 3\ndecode: top-down\nthreshold: 4e-1\nmethods:\n"
        "  - {method: flat-svm, params: {C: 1e-3}, grid: {ngram_max: ['1', 2.0]}}\n"
        "  - {method: local-node, params: {estimator_params: {C: 5e-1}}}\n")))
    assert grid.seeds == [3] and grid.decode == ["top-down"] and grid.threshold == 0.4
    assert grid.methods == [("flat-svm", {"C": 0.001, "ngram_max": 1}, None),
                            ("flat-svm", {"C": 0.001, "ngram_max": 2}, None),
                            ("local-node", {"estimator_params": {"C": 0.5}}, None)]
    assert type(grid.methods[1][1]["ngram_max"]) is int



@pytest.mark.parametrize("threshold, seed", [(1.5, 0), (float("nan"), 0), (0.5, -1)])
def test_python_api_refuses_a_bad_threshold_or_seed_before_loading(threshold, seed):
    from hmtc_bench.errors import ParameterError
    from hmtc_bench.runner import run
    with pytest.raises(ParameterError, match="must be"):
        run("flat-svm", "no-such-dataset", seed=seed, threshold=threshold, track=False)
