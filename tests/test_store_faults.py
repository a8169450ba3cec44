"""Fault injection on the results store: concurrent writers and grids, processes killed while
logging, stores that are empty, corrupt, read-only, unreachable or gone after the fit."""

from __future__ import annotations

import collections
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.errors import StoreError
from hmtc_bench.record import RunRecord
from hmtc_bench.tracking import Store

WRITER = """\
import sys
from hmtc_bench.record import RunRecord
from hmtc_bench.tracking import Store
store = Store(sys.argv[1])
for seed in range(3):
    store.log(RunRecord("m", "d", 10 * int(sys.argv[2]) + seed, "threshold", 0.5, {"C": 1.0},
                        "h", "g", status="finished", metrics={"micro_f1": 0.5}), plot=False)
"""

HANGING = """\
import sys, time
from hmtc_bench.record import RunRecord
from hmtc_bench.tracking import Store
store = Store(sys.argv[1])
record = RunRecord("m", "d", 0, "threshold", 0.5, {}, "h", "g")
store.start([record])
print("started", flush=True)
time.sleep(120)
"""

GRID = """\
name: tiny
datasets: [synthetic]
seeds: [0, 1, 2]
decode: [threshold, top-down]
methods:
  - method: flat-svm
    params: {max_features: 2000}
    grid: {C: [0.5, 1.0]}
"""


def run_cli(*args):
    return CliRunner().invoke(app, list(args))


def test_eight_writers_on_a_new_store_lose_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    script = write(tmp_path / "writer.py", WRITER)
    writers = [subprocess.Popen([sys.executable, str(script), uri, str(i)],
                                stderr=subprocess.PIPE, text=True) for i in range(8)]
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 8, "\n".join(errors)
    records = Store(uri).records()
    assert len(records) == 24 and all(r.finished for r in records)
    assert len({r.seed for r in records}) == 24


def test_two_grids_at_once_fit_every_cell_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    grid = write(tmp_path / "g.yaml", GRID)
    command = [sys.executable, "-m", "hmtc_bench.cli", "bench", str(grid), "--tracking-uri", uri]
    Store(uri).check()  # the store exists: both grids start at once on it
    grids = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [g.communicate(timeout=600) for g in grids]
    assert [g.returncode for g in grids] == [0, 0], outputs
    finished = [r for r in Store(uri).records() if r.finished]
    counts = collections.Counter(r.cell_key for r in finished)
    assert len(counts) == 12 and set(counts.values()) == {1}
    fits = sum(int(out.strip().split(" finished")[0]) for out, _ in outputs)
    assert fits == 12


def test_a_run_killed_while_logging_is_marked_killed_and_never_counted(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    script = write(tmp_path / "hang.py", HANGING)
    process = subprocess.Popen([sys.executable, str(script), uri], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = Store(uri).records()
    assert [r.status for r in before] == ["running"]
    # its claim died with it: another process may take the cell at once
    taken = RunRecord("m", "d", 0, "threshold", 0.5, {}, "h", "g")
    assert taken.cell_key == before[0].cell_key
    assert Store(uri).start([taken], claim=True)
    taken.status = "failed"
    Store(uri).finish(taken, plot=False)
    store = Store(uri).check()   # the next start marks the dead run killed
    assert sorted(r.status for r in store.records()) == ["failed", "killed"]
    result = run_cli("leaderboard", "--tracking-uri", uri)
    assert result.exit_code == 1 and "no finished runs" in result.output


def test_a_live_claim_is_respected(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    first, second = Store(uri), Store(uri)

    def cell():
        return RunRecord("m", "d", 0, "threshold", 0.5, {}, "h", "g")
    assert first.start([cell()], claim=True)
    assert not second.start([cell()], claim=True)          # this process's claim is alive
    assert len(Store(uri).records()) == 1                   # the losing claim left nothing


def test_a_retry_of_the_same_task_takes_over_its_claim(tmp_path):
    """A parallel executor's retry of a task (its first attempt's worker lost, the claim
    still looking alive) passes the same token and is not stopped; another task is."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"

    def cell():
        return RunRecord("m", "d", 0, "threshold", 0.5, {}, "h", "g")
    assert Store(uri).start([cell()], claim=True, token="grid-1:0")
    assert Store(uri).start([cell()], claim=True, token="grid-1:0")
    assert not Store(uri).start([cell()], claim=True, token="grid-2:0")


def test_a_zombie_process_counts_as_gone():
    """A killed worker whose parent never reaps it (a Ray node's workers) is a zombie:
    its claims are stale at once."""
    from hmtc_bench.tracking.liveness import pid_alive
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:     # exited, not yet waited for: a zombie
        with open(f"/proc/{child.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    try:
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert pid_alive(os.getpid())


@pytest.mark.parametrize("make, message", [
    (lambda p: write(p / "empty.db", b""), "is an empty file, not an MLflow store"),
    (lambda p: write(p / "junk.db", b"\x00garbage" * 100), "is not an SQLite database"),
    (lambda p: _plain_sqlite(p / "other.db"), "is an SQLite database but not an MLflow store"),
    (lambda p: _truncated_store(p / "cut.db"), "corrupt"),
])
def test_bad_store_files_are_refused_before_the_data_is_loaded(tmp_path, make, message):
    path = make(tmp_path)
    before = path.read_bytes()
    result = run_cli("run", "--method", "flat-svm", "--dataset", "synthetic",
                     "--tracking-uri", f"sqlite:///{path}")
    assert result.exit_code == 1, result.output
    assert message in result.output and str(path) in result.output
    assert "loading dataset" not in result.output and "Traceback" not in result.output
    assert path.read_bytes() == before                      # nothing re-created or written


@pytest.mark.parametrize("uri, message", [
    ("sqlite:////proc/hmtc-bench/store.db", "cannot create the folder /proc/hmtc-bench"),
    ("foo://somewhere", "unknown scheme 'foo'"),
    ("results/mlflow.db", "unknown scheme '(none)'"),
])
def test_unusable_locations_are_refused_in_one_line(uri, message):
    result = run_cli("bench", "baselines/quick.yaml", "--tracking-uri", uri)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_an_unreachable_server_fails_in_seconds():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    result = run_cli("run", "--method", "flat-svm", "--dataset", "synthetic",
                     "--tracking-uri", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1 and "the tracking server is unreachable" in result.output
    assert time.perf_counter() - start < 20


def test_a_store_gone_after_the_fit_keeps_the_record_locally(tmp_path, monkeypatch, synthetic):
    from hmtc_bench.runner import run
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(uri)

    def gone(record, plot=True):
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(store, "finish", gone)
    with pytest.raises(StoreError, match=r"failed while logging .*kept in (\S+)") as caught:
        run("flat-svm", synthetic, params={"max_features": 2000}, store=store, quiet=True)
    kept = str(caught.value).split("kept in ")[1].split(":")[0]
    assert kept.startswith(str(tmp_path)) and kept.endswith(".jsonl")
    result = run_cli("import", kept, "--tracking-uri", uri)
    assert result.exit_code == 0 and "logged 1 runs" in result.output, result.output
    assert run_cli("import", kept, "--tracking-uri", uri).output.startswith("logged 0 runs")
    statuses = sorted(r.status for r in Store(uri).records())
    assert statuses == ["finished", "running"]  # the started run waits to be reaped
    board = run_cli("leaderboard", "--tracking-uri", uri)
    assert "| flat-svm | threshold | 1 |" in board.output


def _plain_sqlite(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    return path


def _truncated_store(path):
    store = Store(f"sqlite:///{path}")
    store.log(RunRecord("m", "d", 0, "threshold", 0.5, {}, "h", "g", status="finished",
                        metrics={"micro_f1": 0.5}), plot=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def test_a_retry_after_its_first_attempt_finished_counts_the_cell_finished(tmp_path):
    """A worker lost after it logged the cell (results by the workers): the retry finds the
    cell finished under its own token and reports its records, not a skip; another task
    reports a skip."""
    from hmtc_bench.data import load_dataset
    from hmtc_bench.executors.cells import Cell, run_cell
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    data = load_dataset("synthetic")

    def cell(token):
        return Cell(index=0, dataset="synthetic", method="flat-logreg", params={}, seed=0,
                    policies=["threshold", "top-down"], threshold=0.5, store_uri=uri,
                    token=token)
    first = run_cell(cell("grid-1:0"), data, results="worker")
    assert first["error"] is None and not first["taken"] and len(first["records"]) == 2
    retry = run_cell(cell("grid-1:0"), data, results="worker")
    assert not retry["taken"]
    assert sorted(r["decode"] for r in retry["records"]) == ["threshold", "top-down"]
    assert {r["run_id"] for r in retry["records"]} == {r["run_id"] for r in first["records"]}
    assert run_cell(cell("grid-2:0"), data, results="worker")["taken"]
    assert sum(r.finished for r in Store(uri).records()) == 2


def test_records_carry_dev_scores_and_the_threshold_curve(tmp_path):
    """Every decoding's dev micro-/macro-F1 (what a user may choose a decoder by) and the
    test micro-F1 against the threshold, through the store and back."""
    from hmtc_bench.runner import run_decodings
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    records = run_decodings("flat-svm", "synthetic", 0, {"max_features": 2000},
                            ["threshold", "tuned"], 0.5, Store(uri), quiet=True)
    by_policy = {r.decode: r for r in records}
    plain = by_policy["threshold"]
    assert plain.threshold_curve["0.50"] == pytest.approx(plain.metrics["micro_f1"])
    assert plain.threshold_curve == by_policy["tuned"].threshold_curve
    # tuned thresholds are fitted on dev: there they do at least as well as 0.5
    assert by_policy["tuned"].metrics["dev_micro_f1"] >= plain.metrics["dev_micro_f1"] - 0.02
    back = {r.decode: r for r in Store(uri).records()}
    assert back["threshold"].threshold_curve == pytest.approx(plain.threshold_curve)
    assert back["tuned"].metrics["dev_macro_f1"] == pytest.approx(
        by_policy["tuned"].metrics["dev_macro_f1"])
