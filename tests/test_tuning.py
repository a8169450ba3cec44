"""`hmtc-bench tune`: search spaces, studies chosen on dev only, pruning, resumption after a
kill, the refit of the chosen configuration."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import write
from hmtc_bench.data import load_dataset
from hmtc_bench.data.dataset import DataError, Split
from hmtc_bench.errors import ParameterError
from hmtc_bench.grid import load_grid
from hmtc_bench.methods import MethodInfo, get_method
from hmtc_bench.methods.base import HMTCMethod, report_epoch
from hmtc_bench.methods.search_space import Dimension, any_of, int_range, log_range
from hmtc_bench.tracking import Store
from hmtc_bench.tuning import STUDY_PREFIX, StudySpec, run_study
from hmtc_bench.tuning_grid import plan_studies, tune_grid

optuna = pytest.importorskip("optuna")

GRID = """\
name: tune-tiny
datasets: [synthetic]
seeds: [0, 1]
decode: [threshold, top-down]
methods:
  - method: flat-logreg
    params: {max_features: 2000, max_iter: 200}
    space:
      C: {low: 0.01, high: 100.0, log: true}
      class_weight: [null, balanced]
"""


class LabelsRead(AssertionError):
    pass


class Poisoned:
    """A label matrix that fails the test when anything but its shape is read."""

    def __init__(self, shape):
        self.shape = shape

    def __getattr__(self, name):
        raise LabelsRead(f"test labels read ({name})")

    def __getitem__(self, key):
        raise LabelsRead("test labels read")


def without_test_labels(data):
    test = data.test
    poisoned = Split.__new__(Split)
    poisoned.ids, poisoned.texts, poisoned.Y = test.ids, test.texts, Poisoned(test.Y.shape)
    return dataclasses.replace(data, test=poisoned)


def trial_runs(uri, name):
    store = Store(uri)
    experiment = store.client.get_experiment_by_name(STUDY_PREFIX + name)
    return store.client.search_runs([experiment.experiment_id], max_results=1000)


def test_search_spaces_declared_and_checked(tmp_path):
    assert get_method("flat-svm").search_space()["C"] == log_range(1e-2, 1e2)
    assert "n_filters" in get_method("msml").search_space()
    assert "lr_head" in get_method("flat-bert").search_space()
    assert set(get_method("knn").search_space()) == {"k", "power"}
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    assert grid.spaces[0] == {"C": log_range(0.01, 100.0), "class_weight": any_of(None, "balanced")}
    bad = {
        "space: {gamma: [1, 2]}": "has no parameter 'gamma'",
        "space: {C: {low: -1, high: 2}}": "parameter C=-1: must be a number > 0",
        "space: {C: {low: 2, high: 1}}": "low < high",
        "space: {C: 3}": "must be a list of values or a mapping",
        "space: {max_iter: [10, 20]}": "both fixed",
        "space: []": "non-empty mapping",
    }
    for space, message in bad.items():
        text = GRID.split("    space:")[0] + "    " + space + "\n"
        with pytest.raises(DataError, match=message) as err:
            load_grid(write(tmp_path / "bad.yaml", text))
        assert "bad.yaml" in str(err.value) and "methods entry 1 (flat-logreg)" in str(err.value)
    with pytest.raises(ParameterError, match="--trials 0"):
        plan_studies(grid, 0)
    with pytest.raises(ParameterError, match="--metric"):
        plan_studies(grid, 3, metric="accuracy")
    assert int_range(1, 3).distribution().high == 3


def test_study_chooses_on_dev_only_and_refits_the_choice(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    [spec] = plan_studies(grid, trials=5)
    data = load_dataset("synthetic")
    result = run_study(spec, without_test_labels(data), Store(uri), quiet=True)
    assert [t.number for t in result.trials] == list(range(5))
    assert all(t.state == "complete" for t in result.trials)
    # the choice is the best dev score, and each trial's score is its dev micro-F1
    best = max(result.trials, key=lambda t: t.value)
    assert result.best.number == best.number
    from hmtc_bench.evaluation.decoding import decode
    from hmtc_bench.evaluation.metrics import micro_f1
    from hmtc_bench.methods import make_method
    again = make_method("flat-logreg", {**spec.params, **best.params}, 0)
    again.fit(data.train.texts, data.train.Y, data.hierarchy, dev=(data.dev.texts, data.dev.Y))
    assert micro_f1(data.dev.Y, decode(again.predict_proba(data.dev.texts), data.hierarchy)) \
        == pytest.approx(best.value)
    # a study whose dev labels are poisoned cannot run: dev is what it reads
    blind = dataclasses.replace(data, name="synthetic-blind")
    blind.dev = Split(data.dev.ids, data.dev.texts, data.dev.Y)
    blind.dev.Y = Poisoned(data.dev.Y.shape)
    other = dataclasses.replace(spec, name="blind")
    with pytest.raises(Exception) as err:
        run_study(other, blind, Store(uri), quiet=True)
    assert isinstance(err.value, LabelsRead) or isinstance(err.value.__cause__, LabelsRead)
    # the same study rerun is finished: nothing more runs; another config under the same
    # name is refused
    assert len(run_study(spec, data, Store(uri), quiet=True).trials) == 5
    assert len(trial_runs(uri, spec.name)) == 5
    with pytest.raises(ParameterError, match="another configuration"):
        run_study(dataclasses.replace(spec, trials=6), data, Store(uri), quiet=True)
    # tune_grid: the studies are finished, the refit runs the choice for seeds 0 and 1
    results, counts = tune_grid(grid, 5, Store(uri), quiet=True)
    assert counts == {"finished": 4, "skipped": 0, "failed": 0, "unavailable": 0}
    runs = [r for r in Store(uri).records() if r.finished]   # the leaderboard's runs
    assert len(runs) == 4 and {r.seed for r in runs} == {0, 1}
    for record in runs:
        assert record.params["C"] == pytest.approx(best.params["C"])
        assert record.params["class_weight"] == best.params["class_weight"]


def test_defaults_first_makes_trial_0_the_defaults(tmp_path):
    """--defaults-first: trial 0 of each study is the method's defaults of the searched
    parameters (the rest proposed as before), it is part of what makes the study the same
    study, and a default outside its space is refused before any work."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    [plain] = plan_studies(grid, trials=3)
    [spec] = plan_studies(grid, trials=3, defaults_first=True)
    defaults = get_method("flat-logreg")().get_params()
    assert plain.first is None and spec.first == {"C": defaults["C"],
                                                  "class_weight": defaults["class_weight"]}
    data = load_dataset("synthetic")
    result = run_study(spec, without_test_labels(data), Store(uri), quiet=True)
    assert result.trials[0].params == spec.first
    assert result.trials[1].params != spec.first
    # the first trial's scores are the defaults' dev scores
    from hmtc_bench.evaluation.decoding import decode
    from hmtc_bench.evaluation.metrics import micro_f1
    from hmtc_bench.methods import make_method
    default = make_method("flat-logreg", spec.params, 0)
    default.fit(data.train.texts, data.train.Y, data.hierarchy, dev=(data.dev.texts, data.dev.Y))
    assert result.trials[0].value == pytest.approx(
        micro_f1(data.dev.Y, decode(default.predict_proba(data.dev.texts), data.hierarchy)))
    # the same name without the option is another study, refused in the same store
    with pytest.raises(ParameterError, match="another configuration"):
        run_study(plain, data, Store(uri), quiet=True)
    narrow = load_grid(write(tmp_path / "n.yaml", GRID.replace("low: 0.01", "low: 2.0")))
    with pytest.raises(ParameterError, match=r"default C=1\.0 is outside its search space"):
        plan_studies(narrow, trials=3, defaults_first=True)
    from typer.testing import CliRunner

    from hmtc_bench.cli import app
    out = CliRunner().invoke(app, ["tune", str(tmp_path / "n.yaml"), "--trials", "3",
                                   "--defaults-first", "--tracking-uri",
                                   f"sqlite:///{tmp_path / 'none.db'}"])
    assert out.exit_code == 1 and "default C=1.0 is outside" in out.output, out.output
    assert len(out.output.strip().splitlines()) == 1
    assert Dimension("int", 1, 3).contains(2) and not Dimension("int", 1, 3).contains(2.5)
    assert not log_range(0.1, 1.0).contains("0.5") and any_of(None, 1).contains(None)


class Scripted(HMTCMethod):
    """A method that "trains" 4 epochs reporting dev scores set by its parameter ``quality``
    (higher is better), and predicts the label prior."""

    SEARCH_SPACE = {"quality": log_range(0.01, 1.0)}
    fits: list = []

    def __init__(self, quality: float = 0.5, random_state: int = 0):
        self.quality = quality
        self.random_state = random_state

    def _fit(self, texts, Y, hierarchy, dev):
        for epoch in range(1, 5):
            Scripted.fits.append((self.quality, epoch))
            report_epoch(epoch, self.quality * epoch / 4)
        self.prior_ = np.asarray(Y.mean(axis=0)).ravel()

    def _predict_proba(self, texts):
        return np.tile(self.prior_, (len(texts), 1)) * self.quality * 2


def test_hopeless_trials_are_pruned(tmp_path, monkeypatch):
    import hmtc_bench.methods as methods
    info = MethodInfo("scripted", "tests:Scripted", "tests", True, cls=Scripted)
    monkeypatch.setattr(methods, "inspect_method", lambda name: info)
    Scripted.fits.clear()
    spec = StudySpec(name="prune", method="scripted", dataset="synthetic", params={},
                     space={"quality": Dimension("float", 0.01, 1.0, log=True)}, trials=12)
    result = run_study(spec, load_dataset("synthetic"), Store(f"sqlite:///{tmp_path / 's.db'}"),
                       quiet=True)
    states = [t.state for t in result.trials]
    assert states[:3] == ["complete"] * 3           # the pruner's start-up trials
    assert "pruned" in states
    for trial in result.trials:
        if trial.state == "pruned":
            assert max(trial.steps) < 4             # stopped before its last epoch
            assert trial.value is None
    # as documented: the pruner may stop a trial from its first epoch on (PRUNE_FROM_EPOCH)
    from hmtc_bench.tuning import PRUNE_FROM_EPOCH
    assert PRUNE_FROM_EPOCH == 1
    assert min(max(t.steps) for t in result.trials if t.state == "pruned") == PRUNE_FROM_EPOCH
    assert result.best.state == "complete"


def test_a_killed_study_resumes_and_proposes_what_it_would_have(tmp_path):
    grid_file = write(tmp_path / "g.yaml", GRID)
    killed = f"sqlite:///{tmp_path / 'killed.db'}"
    command = [sys.executable, "-m", "hmtc_bench.cli", "tune", str(grid_file), "--trials", "6",
               "--no-refit", "--tracking-uri", killed]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    grid = load_grid(grid_file)
    [spec] = plan_studies(grid, 6)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                states = [r.data.tags.get("state") for r in trial_runs(killed, spec.name)]
            except Exception:
                states = []
            if states.count("complete") >= 2 and "running" in states:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    before = [r.data.tags.get("state") for r in trial_runs(killed, spec.name)]
    assert "running" in before and before.count("complete") < 6
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    runs = trial_runs(killed, spec.name)
    states = sorted(r.data.tags.get("state") for r in runs)
    assert states.count("complete") == 6 and states.count("killed") == 1
    # the same proposals as a study never interrupted
    whole = run_study(spec, load_dataset("synthetic"),
                      Store(f"sqlite:///{tmp_path / 'whole.db'}"), quiet=True)
    done = {int(r.data.tags["trial"]): r for r in runs if r.data.tags["state"] == "complete"}
    for trial in whole.trials:
        assert float(done[trial.number].data.params["param.C"]) == pytest.approx(trial.params["C"])
        assert done[trial.number].data.metrics["value"] == pytest.approx(trial.value)


def test_trials_run_on_the_processes_executor_in_batches(tmp_path):
    """With 2 workers the trials run two at a time, one task each; each trial is proposed
    from the trials before its batch, and scores as the same fit here does."""
    from hmtc_bench.executors import ExecutorOptions
    from hmtc_bench.tuning import _propose
    uri = f"sqlite:///{tmp_path / 'p.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    [spec] = plan_studies(grid, trials=4)
    data = load_dataset("synthetic")
    options = ExecutorOptions(executor="processes", workers=2)
    result = run_study(spec, data, Store(uri), quiet=True, executor=options)
    trials = result.trials
    assert [t.state for t in trials] == ["complete"] * 4
    assert trials[0].params == _propose(spec, [], 0)
    assert trials[1].params == _propose(spec, [], 1)
    assert trials[3].params == _propose(spec, trials[:2], 3)
    assert {r.data.tags["batch"] for r in trial_runs(uri, spec.name)} == {"2"}
    from hmtc_bench.evaluation.decoding import decode
    from hmtc_bench.evaluation.metrics import micro_f1
    from hmtc_bench.methods import make_method
    here = make_method("flat-logreg", {**spec.params, **trials[3].params}, 0)
    here.fit(data.train.texts, data.train.Y, data.hierarchy, dev=(data.dev.texts, data.dev.Y))
    assert micro_f1(data.dev.Y, decode(here.predict_proba(data.dev.texts), data.hierarchy)) \
        == pytest.approx(trials[3].value)
