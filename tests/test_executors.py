"""The processes executor: the same metrics as a serial grid, a timeout recorded, reruns
without duplicates, workers that exit with their driver; options refused before any work.
The Ray executor on a real cluster: ``test_ray_cluster.py``."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write
from hmtc_bench.executors import ExecutorOptions
from hmtc_bench.grid import load_grid, run_grid
from hmtc_bench.tracking import Store
from small_grid import GRID, N_CELLS, metrics, serial_metrics_in


@pytest.fixture(scope="module")
def serial_metrics(tmp_path_factory):
    return serial_metrics_in(tmp_path_factory.mktemp("serial"))


def test_processes_match_serial(tmp_path, serial_metrics):
    uri = f"sqlite:///{tmp_path / 'p.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    counts = run_grid(grid, Store(uri), quiet=True,
                      executor=ExecutorOptions(executor="processes", workers=2))
    assert counts["finished"] == N_CELLS and counts["failed"] == 0
    assert metrics(uri) == serial_metrics
    records = [r for r in Store(uri).records() if r.finished]
    assert {r.worker["executor"] for r in records} == {"processes"}
    assert len({r.worker["process"] for r in records}) == 2     # both workers ran cells
    assert all(r.worker["device"] == "cpu" and r.worker["node"] for r in records)
    # the test predictions travelled back from the workers into the store
    assert all(Store(uri).test_predictions(r.run_id) is not None for r in records)
    # rerun: everything finished is skipped
    again = run_grid(grid, Store(uri), quiet=True,
                     executor=ExecutorOptions(executor="processes", workers=2))
    assert again["finished"] == 0 and again["skipped"] == N_CELLS


def test_processes_timeout_is_recorded_and_rerun_completes(tmp_path):
    uri = f"sqlite:///{tmp_path / 't.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    counts = run_grid(grid, Store(uri), quiet=True, executor=ExecutorOptions(
        executor="processes", workers=2, cell_timeout=0.05))
    assert counts["failed"] == N_CELLS and counts["finished"] == 0
    failed = Store(uri).records()
    assert all(r.status == "failed" and "timed out after 0.05 s" in r.error for r in failed)
    rerun = run_grid(grid, Store(uri), quiet=True,
                     executor=ExecutorOptions(executor="processes", workers=2))
    assert rerun["finished"] == N_CELLS
    assert len(metrics(uri)) == N_CELLS


def _descendants(pid: int) -> set[int]:
    """The live processes below ``pid`` (from /proc: parent ids, transitively)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_processes_workers_exit_when_the_driver_is_killed(tmp_path):
    """SIGKILL the driver of a processes grid mid-grid: its workers exit by themselves."""
    import signal
    grid_file = write(tmp_path / "g.yaml", GRID)
    driver = subprocess.Popen(
        [sys.executable, "-m", "hmtc_bench.cli", "bench", str(grid_file), "--executor",
         "processes", "--workers", "2", "--tracking-uri", f"sqlite:///{tmp_path / 'k.db'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 3:
            workers = _descendants(driver.pid)   # the forkserver, two workers (and a tracker)
            time.sleep(0.2)
        assert len(workers) >= 3, workers
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.2)
        left = sorted(pid for pid in workers if _alive(pid))
        assert not left, f"workers left running: {left}"
    finally:
        for pid in workers:
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if driver.poll() is None:
            driver.kill()


def test_executor_options_refused_before_any_work(tmp_path):
    from hmtc_bench.errors import ParameterError
    for options, message in [
            (ExecutorOptions(executor="threads"), "--executor 'threads'"),
            (ExecutorOptions(executor="processes", workers=0), "--workers 0"),
            (ExecutorOptions(executor="serial", results="worker"), "--results worker"),
            (ExecutorOptions(executor="ray", ray_address="127.0.0.1:1", results="worker"),
             "cannot write the local file"),
            (ExecutorOptions(executor="processes", cell_timeout=-1), "--cell-timeout")]:
        with pytest.raises(ParameterError, match=message):
            options.check(f"sqlite:///{tmp_path / 'x.db'}")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: torch starts with 1 thread")
def test_a_cell_s_cpus_limit_torch_even_when_the_cell_imports_it():
    """A worker's first neural cell imports torch inside the fit: it must start with the
    cell's threads, not one per core (two 2-thread workers on 2 cores ran about 2x slower)."""
    pytest.importorskip("torch")
    code = ("from hmtc_bench.executors.cells import cpu_threads\n"
            "with cpu_threads(1):\n"
            "    import torch\n"
            "    inside = torch.get_num_threads()\n"
            "print(inside, torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items()
                                          if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    inside = int(out.stdout.split()[0])
    assert inside == 1
    plain = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items()
                                if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    assert int(plain.stdout) > 1     # without the limit it would have had more
