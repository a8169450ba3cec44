"""Progress of the long steps: plain lines off a terminal, a bar on one, a start line per
grid cell, and per-epoch seconds in the neural training history."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from conftest import write
from hmtc_bench import progress
from hmtc_bench.cli import app


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_off_a_terminal():
    out = io.StringIO()
    with progress.Progress(5, "fitting svm scorer bank", unit="scorers", interval=0.0,
                           stream=out) as bar:
        for _ in range(5):
            bar.update()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("  fitting svm scorer bank: 1/5 scorers, ")
    assert "elapsed, ~" in lines[0] and "left" in lines[0]
    assert [line.split(": ")[1].split(",")[0] for line in lines] == \
        ["1/5 scorers", "2/5 scorers", "3/5 scorers", "4/5 scorers", "5/5 scorers", "5/5 scorers"]
    assert "done in" in lines[-1]


def test_lines_at_most_every_interval_and_none_for_a_quick_step():
    out = io.StringIO()
    for _ in progress.track(range(100), desc="quick", stream=out):
        pass
    assert out.getvalue() == ""        # within the interval: nothing, not even the end
    out = io.StringIO()
    for _ in progress.track(range(4), desc="slow", interval=0.05, stream=out):
        time.sleep(0.03)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 3 and lines[-1].startswith("  slow: 4/4, done in")


def test_quiet_and_disabled_show_nothing():
    out = io.StringIO()
    with progress.quiet():
        assert not progress.enabled()
        with progress.Progress(3, "x", interval=0.0, stream=out, always_end=True) as bar:
            bar.update(3)
        with progress.step("vectorizing", stream=out):
            pass
    with progress.Progress(3, "x", interval=0.0, stream=out, enabled=False) as bar:
        bar.update(3)
    assert progress.enabled() and out.getvalue() == ""


def test_a_bar_on_a_terminal():
    out = Terminal()
    with progress.Progress(3, "bank", stream=out, interval=0.0) as bar:
        bar.update(3)
    assert "\r" in out.getvalue() and "bank" in out.getvalue()  # tqdm's frames


def test_step_lines_with_the_duration():
    out = io.StringIO()
    with progress.step("vectorizing 3 training texts", done="vectorized", stream=out) as info:
        info["note"] = "3 x 7 features"
    assert out.getvalue().splitlines() == [
        "  vectorizing 3 training texts ...",
        out.getvalue().splitlines()[1]]
    assert out.getvalue().splitlines()[1].startswith("  vectorized in ")
    assert out.getvalue().splitlines()[1].endswith(" s: 3 x 7 features")


def test_a_slow_bank_prints_plain_lines(capsys, monkeypatch):
    from hmtc_bench.methods.classical.features import Task, fit_bank
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    X = sp.random(60, 20, density=0.3, format="csr", random_state=0)
    tasks = [Task(None, (np.arange(60) % (k + 2) == 0).astype(np.int8)) for k in range(3)]
    fit_bank(X, tasks, "svm")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "  fitting svm scorer bank: 3/3 scorers, done in" in err


def test_run_shows_vectorizing_and_bench_a_start_line_per_cell(tmp_path):
    grid = write(tmp_path / "g.yaml", "name: p\ndatasets: [synthetic]\nseeds: [0, 1]\n"
                 "methods:\n  - method: flat-svm\n    params: {max_features: 2000}\n")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = CliRunner().invoke(app, ["bench", str(grid), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "\r" not in result.output
    starts = [i for i, line in enumerate(lines) if line.endswith(": fitting (threshold) ...")]
    ends = [i for i, line in enumerate(lines) if "micro" in line and line.startswith("[")]
    assert len(starts) == len(ends) == 2
    assert lines[starts[0]].startswith("[1/2] flat-svm ") and "seed=0 on synthetic" in \
        lines[starts[0]]
    assert lines[starts[1]].startswith("[2/2] flat-svm ") and "seed=1" in lines[starts[1]]
    assert starts[0] < ends[0] < starts[1] < ends[1]
    assert any(line.startswith("  vectorizing ") for line in lines[starts[0]:ends[0]])
    assert any(line.startswith("  vectorized in ") for line in lines[starts[0]:ends[0]])


def test_quiet_grid_prints_nothing(tmp_path, capsys):
    from hmtc_bench.grid import load_grid, run_grid
    from hmtc_bench.tracking import Store
    grid = load_grid(write(tmp_path / "g.yaml", "datasets: [synthetic]\nmethods:\n"
                           "  - method: flat-svm\n    params: {max_features: 2000}\n"))
    counts = run_grid(grid, Store(f"sqlite:///{tmp_path / 'm.db'}"), quiet=True)
    assert counts["finished"] == 1
    assert capsys.readouterr().err == ""


def test_epoch_seconds_are_the_epochs_own(capsys, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hmtc_bench.methods.neural import training
    from hmtc_bench.methods.neural.msml import MSML
    from hmtc_bench.testing import _small_data
    data = _small_data()
    real_caches = training.Trainer._caches

    def slow_caches(self, run):           # 0.5 s before the first epoch, as a cache takes
        time.sleep(0.5)
        real_caches(self, run)

    monkeypatch.setattr(training.Trainer, "_caches", slow_caches)
    method = MSML(**{**MSML.get_test_params(), "epochs": 2, "patience": 5, "progress": True})
    method.fit(data.train.texts, data.train.Y, data.hierarchy, dev=(data.dev.texts, data.dev.Y))
    history = method.train_state_["history"]
    assert [r["epoch"] for r in history] == [1, 2]
    first, second = history
    assert first["elapsed"] >= first["seconds"] + 0.45       # the cache is not epoch 1's
    assert second["elapsed"] == pytest.approx(first["elapsed"] + second["seconds"], abs=0.05)
    assert method.train_state_["train_seconds"] == pytest.approx(second["elapsed"])
    err = capsys.readouterr().err
    assert "\r" not in err
    line = next(line for line in err.splitlines() if " epoch 2/2: loss " in line)
    assert f"({second['seconds']:.1f} s; {second['elapsed']:.0f} s in all)" in line


def test_a_long_lightgbm_bank_says_how_long_after_its_first_model(synthetic, monkeypatch,
                                                                  capsys):
    pytest.importorskip("lightgbm")
    from hmtc_bench.methods import make_method
    from hmtc_bench.methods.classical import banks
    monkeypatch.setattr(banks, "LONG_BANK", 0.0)   # every bank counts as long here
    model = make_method("flat-lightgbm", {"n_estimators": 5, "max_features": 500})
    model.fit(synthetic.train.texts[:200], synthetic.train.Y[:200], synthetic.hierarchy)
    err = capsys.readouterr().err
    assert re.search(r"lightgbm: the first of \d+ per-label models took [\d.]+ s on 200 x 500 "
                     r"features: about \d+ (s|min) for the bank", err), err
    assert "fewer n_estimators (now 5)" in err


def test_large_predictions_report_their_steps(synthetic, monkeypatch, capsys):
    from hmtc_bench import progress
    from hmtc_bench.methods import make_method
    from hmtc_bench.methods.classical import features
    model = make_method("flat-svm", {"max_features": 2000})
    model.fit(synthetic.train.texts, synthetic.train.Y, synthetic.hierarchy)
    capsys.readouterr()
    model.predict_proba(synthetic.test.texts)
    assert "vectorizing" not in capsys.readouterr().err          # a small prediction: quiet
    monkeypatch.setattr(features, "LARGE_PREDICTION", 10)
    model.predict_proba(synthetic.test.texts)
    err = capsys.readouterr().err
    assert f"vectorizing {len(synthetic.test.texts)} texts (TF-IDF) ..." in err and "\r" not in err
    with progress.quiet():
        model.predict_proba(synthetic.test.texts)
    assert capsys.readouterr().err == ""


def test_neural_prediction_reports_its_batches(monkeypatch, capsys):
    pytest.importorskip("torch")
    from hmtc_bench import progress
    from hmtc_bench.methods import get_method, make_method
    from hmtc_bench.testing import _small_data
    data = _small_data()
    params = {**get_method("flat-bert").get_test_params(), "epochs": 1}
    model = make_method("flat-bert", params).fit(data.train.texts, data.train.Y,
                                                 data.hierarchy)
    model.set_params(progress=True)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    capsys.readouterr()
    model.predict_proba(data.test.texts)
    err = capsys.readouterr().err
    assert "predicting:" in err and "batches" in err and "\r" not in err


def test_lightgbm_reports_boosting_rounds(synthetic, monkeypatch, capsys):
    pytest.importorskip("lightgbm")
    from hmtc_bench import progress
    from hmtc_bench.methods import make_method
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    model = make_method("flat-lightgbm", {"n_estimators": 4, "max_features": 300})
    model.fit(synthetic.train.texts[:200], synthetic.train.Y[:200], synthetic.hierarchy)
    lines = [line for line in capsys.readouterr().err.splitlines() if "rounds)" in line]
    assert lines and re.search(r"models x 4 rounds\): (\d+)/\1 rounds, done in", lines[-1])
    assert len(lines) > 2 and "\r" not in "".join(lines)


def test_the_grid_bar_ends_with_nothing_running(tmp_path, monkeypatch):
    """The closing line of a parallel grid's bar counts the cells as they ended (it kept the
    count from before the last cell finished: "1 running")."""
    from hmtc_bench.executors import ExecutorOptions
    from hmtc_bench.grid import load_grid, run_grid
    from hmtc_bench.tracking import Store
    out = io.StringIO()

    class Every(progress.Progress):          # a line per update, to the test's stream
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "interval": 0.0, "stream": out})
    monkeypatch.setattr(progress, "Progress", Every)
    grid = load_grid(write(tmp_path / "g.yaml", "datasets: [synthetic]\nseeds: [0, 1]\n"
                           "methods:\n  - method: flat-svm\n    params: {max_features: 2000}\n"))
    counts = run_grid(grid, Store(f"sqlite:///{tmp_path / 'm.db'}"), quiet=False,
                      executor=ExecutorOptions(executor="processes", workers=2))
    assert counts["finished"] == 2
    last = [line for line in out.getvalue().splitlines() if line.startswith("  grid: ")][-1]
    assert "2/2 cells" in last and "done in" in last
    assert "0 running, 2 finished, 0 failed" in last, last
