"""The run record: typed round trips through the store and JSON lines, run identity, and the
leaderboard and report regenerated from committed records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.leaderboard import leaderboard, render
from hmtc_bench.record import (RecordError, RunRecord, decode_param, dump_records,
                               encode_param, load_records_file)
from hmtc_bench.tracking import TRAINING_FIELDS, Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).parent / "data" / "records_sample.jsonl"
SAMPLE_BOARD = Path(__file__).parent / "data" / "leaderboard_sample.md"


def record(seed=0, micro=0.5, method="msml", dataset="d", data_hash="h", **params):
    return RunRecord(method=method, dataset=dataset, seed=seed, decode="threshold",
                     threshold=0.5, params={"epochs": 5, "random_state": seed, **params},
                     dataset_hash=data_hash, hierarchy_hash="g", status="finished",
                     metrics={"micro_f1": micro, "macro_f1": micro / 2, "hier_f1": micro,
                              "macro_f1_tail": 0.0, "inconsistency_ratio": 0.0,
                              "micro_f1_level_1": micro, "macro_f1_level_1": micro / 2},
                     fit_seconds=1.0,
                     started_at=f"2026-01-0{seed + 1}T00:00:00+00:00")


@pytest.mark.parametrize("value", ["svm", "1", "true", "null", '"quoted"', "", 1, 0.001,
                                   1e-3, -1, True, None, [2, 3], {"a": [1, "x"]}, 2.5])
def test_parameters_round_trip_with_their_types(value):
    assert decode_param(encode_param(value)) == value
    assert type(decode_param(encode_param(value))) is type(value)


def test_plain_strings_stay_readable_in_the_store():
    assert encode_param("svm") == "svm" and encode_param("1") == '"1"'


def test_identity_leaves_out_the_seed_and_added_parameters_at_their_old_value():
    old = record(0)  # recorded before ``precision`` existed (no identity_omits)
    new = record(0, precision="auto")
    new.identity_omits = ["precision"]  # what the runner writes for NeuralMethod
    assert old.cell_key == new.cell_key and old.config_key == new.config_key
    legacy = record(0, precision="auto")  # an old record with the parameter at its default
    assert legacy.cell_key == old.cell_key
    assert record(0, precision="bf16").cell_key != old.cell_key
    assert record(1).config_key == old.config_key and record(1).cell_key != old.cell_key
    assert record(0, data_hash="other").config_key != old.config_key
    tuple_params = record(0, kernel_sizes=(2, 3))
    assert tuple_params.cell_key == record(0, kernel_sizes=[2, 3]).cell_key


def test_leaderboard_pools_seeds_once_and_separates_data():
    runs = [record(0, 0.5), record(1, 0.7, precision="auto"), record(0, 0.6, precision="bf16"),
            record(0, 0.9),  # seed 0 again: counted once (the first given)
            record(0, 0.1, data_hash="other")]  # same name, other data: its own row
    runs[1].identity_omits = ["precision"]
    rows = leaderboard(runs)
    assert sorted(r["n"] for r in rows) == [1, 1, 2]
    pooled = next(r for r in rows if r["n"] == 2)
    assert pooled["micro_f1"][0] == pytest.approx(0.6)
    text = render(rows)
    assert "msml (precision=auto)" in text and "msml (precision=bf16)" in text
    assert "d [other" in text


def test_json_lines_round_trip_and_bad_files(tmp_path):
    runs = [record(0), record(1, precision="bf16")]
    runs[0].metrics["macro_f1_tail"] = float("nan")
    path = dump_records(runs, tmp_path / "runs" / "d.jsonl")
    back = load_records_file(tmp_path / "runs")
    assert [r.cell_key for r in back] == [r.cell_key for r in runs]
    assert back[1].params["precision"] == "bf16" and back[0].metrics["macro_f1_tail"] is None
    assert "NaN" not in path.read_text()
    write(tmp_path / "bad.jsonl", json.dumps(runs[0].to_dict()) + "\n{not json\n")
    with pytest.raises(RecordError, match=r"bad.jsonl, line 2"):
        load_records_file(tmp_path / "bad.jsonl")
    write(tmp_path / "short.jsonl", '{"method": "x"}\n')
    with pytest.raises(RecordError, match=r"short.jsonl, line 1: a run record needs dataset"):
        load_records_file(tmp_path / "short.jsonl")
    with pytest.raises(RecordError, match="no such record file"):
        load_records_file(tmp_path / "absent.jsonl")


def test_store_round_trip_then_export_and_leaderboard_from_the_files(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    runs = [record(0, 0.5, estimator="svm", C=1e-3), record(1, 0.7, estimator="svm", C=1e-3)]
    for run in runs:
        store.log(run)
    back = sorted(store.records(), key=lambda r: r.seed)
    assert [r.params for r in back] == [r.params for r in runs]
    assert [r.cell_key for r in back] == [r.cell_key for r in runs]
    assert store.finished_cells() == {r.cell_key for r in runs}
    uri = ["--tracking-uri", store.uri]
    result = CliRunner().invoke(app, ["export", str(tmp_path / "runs"), *uri])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "d.jsonl").exists()
    from_store = CliRunner().invoke(app, ["leaderboard", *uri])
    from_files = CliRunner().invoke(app, ["leaderboard", "--records", str(tmp_path / "runs")])
    assert from_files.exit_code == 0, from_files.output
    assert from_files.output == from_store.output and "| 2 |" in from_files.output
    bad = CliRunner().invoke(app, ["leaderboard", "--records", str(tmp_path / "none.jsonl")])
    assert bad.exit_code == 1 and "no such record file" in bad.output


def test_export_min_seeds_keeps_only_configurations_with_enough_seeds(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    for run in [record(0, 0.5, C=1.0), record(1, 0.6, C=1.0), record(2, 0.7, C=1.0),
                record(0, 0.4, C=2.0)]:          # C=2.0 on one seed only
        store.log(run)
    uri = ["--tracking-uri", store.uri]
    out = tmp_path / "three.jsonl"
    result = CliRunner().invoke(app, ["export", str(out), "--min-seeds", "3", *uri])
    assert result.exit_code == 0, result.output
    kept = load_records_file(out)
    assert sorted(r.seed for r in kept) == [0, 1, 2] and {r.params["C"] for r in kept} == {1.0}
    none = CliRunner().invoke(app, ["export", str(tmp_path / "x.jsonl"), "--min-seeds", "4",
                                    *uri])
    assert none.exit_code == 1 and "with 4 seeds or more" in none.output
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "y.jsonl"), "--min-seeds", "0",
                                   *uri])
    assert bad.exit_code == 1 and "--min-seeds 0" in bad.output
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()


def test_committed_sample_regenerates_its_leaderboard():
    result = CliRunner().invoke(app, ["leaderboard", "--records", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output == SAMPLE_BOARD.read_text(encoding="utf-8")


# the committed leaderboard and report: the classical grid, the methods after HiAGM, the
# MSML study (default and tuned rows) and msml at its earlier and new defaults (3 seeds)
PUBLISHED = ("runs", "runs-neural", "runs-study", "runs-msml")


def test_committed_results_regenerate_the_leaderboard_and_report(tmp_path):
    folders = [ROOT / "results" / name for name in PUBLISHED]
    if not all(folder.is_dir() for folder in folders):
        pytest.skip("no committed run records")
    records = [arg for folder in folders for arg in ("--records", str(folder))]
    result = CliRunner().invoke(app, ["leaderboard", *records, "--significance"])
    assert result.exit_code == 0, result.output
    assert result.output == (ROOT / "results" / "leaderboard.md").read_text(encoding="utf-8")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", *records, "--significance", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (ROOT / "results" / "report.html").read_bytes()


def test_a_bug_shows_as_a_bug(tmp_path):
    """An exception that is not the project's own gets its traceback (under --debug) and is
    not passed off as a user error."""
    script = ("import hmtc_bench.record as r\n"
              "def boom(*a, **k):\n    raise ZeroDivisionError('inside')\n"
              "r.load_records_file = boom\n"
              "import sys\nfrom hmtc_bench.cli import main\n"
              "sys.argv = ['hmtc-bench'] + sys.argv[1:]\nmain()\n")
    path = write(tmp_path / "bug.py", script)
    args = ["leaderboard", "--records", str(tmp_path)]
    plain = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True)
    assert plain.returncode == 2
    assert "ZeroDivisionError: inside" in plain.stderr and "it is a bug" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, str(path), "--debug", *args], capture_output=True,
                           text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_run_records_the_training_history(tmp_path, capsys):
    pytest.importorskip("torch")
    import mlflow

    from hmtc_bench.cli import _print_records
    from hmtc_bench.methods import get_method
    from hmtc_bench.runner import run
    from hmtc_bench.testing import _small_data
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    params = {**get_method("msml").get_test_params(), "epochs": 3, "patience": 1}
    record = run("msml", _small_data(), params=params, store=store, quiet=True)
    training = record.training
    history = training["history"]
    assert 1 <= training["best_epoch"] <= training["epochs_run"] == len(history) <= 3
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    assert training["best_dev_micro_f1"] == max(r["dev_micro_f1"] for r in history)
    assert training["stopped"] in ("all epochs run", "no dev improvement for 1 epochs")
    _print_records([record])
    assert (f"best epoch {training['best_epoch']} of {training['epochs_run']} "
            f"({training['stopped']})") in capsys.readouterr().out
    # read back: the summary from the run's tags, the curves from its metric history, and
    # the training curves stay out of the run's metrics (the leaderboard's columns)
    stored = store.records()[0]
    assert stored.training == {k: training[k] for k in TRAINING_FIELDS}
    assert not any(k.startswith("training.") for k in stored.metrics)
    assert stored.params == record.params and stored.cell_key == record.cell_key
    assert "precision" in stored.omitted
    curve = mlflow.tracking.MlflowClient(store.uri).get_metric_history(stored.run_id,
                                                                       "training.train_loss")
    assert sorted((m.step, m.value) for m in curve) == [(r["epoch"], r["train_loss"])
                                                        for r in history]


def test_committed_verdicts_regenerate_their_leaderboard_and_analysis(tmp_path):
    """results/runs-verdicts (the grid baselines/verdicts.yaml) give back, byte for byte,
    results/leaderboard_verdicts.md (with significance marks) and results/verdicts_tables.md."""
    runs = ROOT / "results" / "runs-verdicts"
    if not runs.is_dir():
        pytest.skip("no committed verdicts records")
    result = CliRunner().invoke(app, ["leaderboard", "--records", str(runs), "--significance"])
    assert result.exit_code == 0, result.output
    assert result.output == (ROOT / "results" / "leaderboard_verdicts.md").read_text("utf-8")
    out = tmp_path / "verdicts_tables.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "verdicts.py"), "--records",
                    str(runs), "--out", str(out)], check=True, capture_output=True)
    assert out.read_text("utf-8") == (ROOT / "results" / "verdicts_tables.md").read_text("utf-8")
