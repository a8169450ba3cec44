import collections
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.data.dataset import DataError
from hmtc_bench.grid import load_grid
from hmtc_bench.tracking import Store


def load_records(uri):
    return Store(uri).records()

GRID = """\
name: tiny
datasets: [synthetic]
seeds: [0, 1, 2]
decode: [threshold, top-down]
methods:
  - method: flat-svm
    params: {max_features: 3000}
    grid: {C: [0.5, 1.0]}
"""


def test_grid_expands_and_validates(tmp_path):
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    assert grid.n_cells == 1 * 2 * 3 * 2
    assert grid.methods == [("flat-svm", {"max_features": 3000, "C": 0.5}, None),
                            ("flat-svm", {"max_features": 3000, "C": 1.0}, None)]
    bad = {
        "datasets: [synthetic]\nmethods: [flat-svn]\n": "did you mean flat-svm",
        "datasets: [synthetic]\nmethods: [{method: flat-svm, params: {gamma: 1}}]\n":
            "no parameter 'gamma'",
        "datasets: [synthetic]\nmethods: [flat-svm]\ndecode: [greedy]\n": "unknown decoding",
        "datasets: [synthetic]\nmethod: [flat-svm]\n": "unknown keys",
        "datasets: [synthetic\n": "invalid YAML",
        "datasets: [synthetic]\nmethods: [{method: flat-svm, grid: {C: 1}}]\n": "non-empty list",
    }
    only = load_grid(write(tmp_path / "o.yaml", "datasets: [synthetic, icd10cm]\nseeds: [0]\n"
                           "methods:\n  - flat-svm\n  - {method: flat-svm, params: {C: 2.0},"
                           " datasets: [synthetic]}\n"))
    assert only.pairs() == [("synthetic", "flat-svm", {}), ("synthetic", "flat-svm", {"C": 2.0}),
                            ("icd10cm", "flat-svm", {})]
    assert only.n_cells == 3
    bad["datasets: [synthetic]\nmethods: [{method: flat-svm, datasets: [x]}]\n"] = \
        "not in the grid's datasets"
    for text, message in bad.items():
        with pytest.raises(DataError, match=message):
            load_grid(write(tmp_path / "bad.yaml", text))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "baselines")
                                        .glob("*.yaml")), ids=lambda p: p.name)
def test_published_grids_validate(path):
    """Every grid under baselines/ passes the checks that run before any data is loaded
    (method names, parameter values, per-entry datasets among the grid's)."""
    grid = load_grid(path)
    assert grid.pairs()
    for _, _, only in grid.methods:
        assert only is None or set(only) <= set(grid.datasets)


def test_failing_cell_recorded_and_grid_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    # min_df 100000 is a valid value that fails on the data (a refused value such as C=-1 is
    # refused when the grid is loaded: tests/test_params.py)
    grid = write(tmp_path / "g.yaml", "datasets: [synthetic]\nseeds: [0]\nmethods:\n"
                 "  - {method: flat-svm, grid: {min_df: [100000, 1]}, "
                 "params: {max_features: 2000}}\n")
    result = CliRunner().invoke(app, ["bench", str(grid), "--tracking-uri", uri])
    assert result.exit_code == 1
    assert "1 finished, 0 skipped, 1 failed" in result.output
    statuses = collections.Counter(r.status for r in load_records(uri))
    assert statuses == {"finished": 1, "failed": 1}
    failed = next(r for r in load_records(uri) if r.status == "failed")
    assert "min_df" in failed.error


def test_killed_grid_resumes_without_repeating(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    grid = write(tmp_path / "g.yaml", GRID)
    process = subprocess.Popen(
        [sys.executable, "-m", "hmtc_bench.cli", "bench", str(grid), "--tracking-uri", uri],
        stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # kill right after the first fit's cells are stored
        if line.startswith("[2/12]"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL
    first = [r for r in load_records(uri) if r.finished]
    assert 2 <= len(first) < 12
    result = CliRunner().invoke(app, ["bench", str(grid), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert f"{12 - len(first)} finished, {len(first)} skipped, 0 failed" in result.output
    keys = collections.Counter(r.cell_key for r in load_records(uri) if r.finished)
    assert len(keys) == 12 and set(keys.values()) == {1}
    board = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", uri])
    assert "flat-svm (C=0.5) | threshold | 3 |" in board.output
    report = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--output", str(report), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 3 and "/runs/" in html
    assert "alt='micro-F1 against the threshold'" in html


def test_dry_run_lists_the_cells_still_to_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    grid = write(tmp_path / "g.yaml", GRID)
    result = CliRunner().invoke(app, ["bench", str(grid), "--dry-run", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "12 to run, 0 skipped, 0 unavailable" in result.output
    assert "[2/12] flat-svm {'max_features': 3000, 'C': 0.5} seed=0 on synthetic: to run " \
           "(threshold, top-down)" in result.output
    assert load_records(uri) == []                       # nothing ran
    seed0 = write(tmp_path / "s0.yaml", GRID.replace("seeds: [0, 1, 2]", "seeds: [0]"))
    assert CliRunner().invoke(app, ["bench", str(seed0), "--tracking-uri", uri]).exit_code == 0
    result = CliRunner().invoke(app, ["bench", str(grid), "--dry-run", "--tracking-uri", uri])
    assert "8 to run, 4 skipped, 0 unavailable" in result.output
    assert "seed=0 on synthetic: already finished, skipped" in result.output
    assert len(load_records(uri)) == 4
