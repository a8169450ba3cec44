"""The parallel executors: processes and a real two-node Ray cluster on 127.0.0.1, with the
driver writing the records and with workers logging to an `mlflow server`; the same metrics
as a serial grid, failures recorded, lost workers retried, reruns without duplicates."""

import collections
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import write
from hmtc_bench.executors import ExecutorOptions
from hmtc_bench.grid import load_grid, run_grid
from hmtc_bench.tracking import Store
from servers import free_port, start, stop

GRID = """\
name: small
datasets: [synthetic]
seeds: [0, 1, 2]
decode: [threshold, top-down]
methods:
  - method: flat-svm
    params: {max_features: 3000}
  - method: local-node
    params: {max_features: 3000}
"""


def metrics(uri):
    """(method, seed, policy) -> micro-F1 of the finished runs; fails on a duplicate."""
    runs = [r for r in Store(uri).records() if r.finished]
    keys = collections.Counter(r.cell_key for r in runs)
    assert max(keys.values()) == 1, "a cell finished twice"
    return {(r.method, r.seed, r.decode): round(r.metrics["micro_f1"], 10) for r in runs}


@pytest.fixture(scope="module")
def serial_metrics(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serial")
    uri = f"sqlite:///{folder / 'serial.db'}"
    counts = run_grid(load_grid(write(folder / "g.yaml", GRID)), Store(uri), quiet=True)
    assert counts["finished"] == 12
    return metrics(uri)


def test_processes_match_serial(tmp_path, serial_metrics):
    uri = f"sqlite:///{tmp_path / 'p.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    counts = run_grid(grid, Store(uri), quiet=True,
                      executor=ExecutorOptions(executor="processes", workers=2))
    assert counts["finished"] == 12 and counts["failed"] == 0
    assert metrics(uri) == serial_metrics
    records = [r for r in Store(uri).records() if r.finished]
    assert {r.worker["executor"] for r in records} == {"processes"}
    assert len({r.worker["process"] for r in records}) == 2     # both workers ran cells
    assert all(r.worker["device"] == "cpu" and r.worker["node"] for r in records)
    # rerun: everything finished is skipped
    again = run_grid(grid, Store(uri), quiet=True,
                     executor=ExecutorOptions(executor="processes", workers=2))
    assert again["finished"] == 0 and again["skipped"] == 12


def test_processes_timeout_is_recorded_and_rerun_completes(tmp_path):
    uri = f"sqlite:///{tmp_path / 't.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    counts = run_grid(grid, Store(uri), quiet=True, executor=ExecutorOptions(
        executor="processes", workers=2, cell_timeout=0.05))
    assert counts["failed"] == 12 and counts["finished"] == 0
    failed = Store(uri).records()
    assert all(r.status == "failed" and "timed out after 0.05 s" in r.error for r in failed)
    rerun = run_grid(grid, Store(uri), quiet=True,
                     executor=ExecutorOptions(executor="processes", workers=2))
    assert rerun["finished"] == 12
    assert len(metrics(uri)) == 12


def _workers_of(pid: int) -> list[int]:
    """The hmtc-bench worker processes whose driver was ``pid`` (by their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if b"multiprocessing.forkserver" in command and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def test_processes_workers_exit_when_the_driver_is_killed(tmp_path):
    """SIGKILL the driver of a processes grid mid-grid: its workers exit by themselves."""
    import signal
    grid_file = write(tmp_path / "g.yaml", GRID)
    before = set(_workers_of(0))
    driver = subprocess.Popen(
        [sys.executable, "-m", "hmtc_bench.cli", "bench", str(grid_file), "--executor",
         "processes", "--workers", "2", "--tracking-uri", f"sqlite:///{tmp_path / 'k.db'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(set(_workers_of(0)) - before) < 3:
            time.sleep(0.2)          # the forkserver and two workers
        assert len(set(_workers_of(0)) - before) >= 3
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(_workers_of(0)) - before:
            time.sleep(0.2)
        left = set(_workers_of(0)) - before
        assert not left, f"workers left running: {sorted(left)}"
    finally:
        for pid in set(_workers_of(0)) - before:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
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


# ---------------------------------------------------------------------- a real Ray cluster
ray = pytest.importorskip("ray")
# a cluster of this test only, on 127.0.0.1: without Ray's token authentication (its token
# would be written to the user's home and shared by every cluster there)
RAY_TEST_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(autouse=True)
def _ray_env(monkeypatch):
    for key, value in RAY_TEST_ENV.items():
        monkeypatch.setenv(key, value)


def _ray_node(args, tmp_path, name):
    """``ray start ... --block`` in its own process group (stopped by its group id)."""
    env = {**os.environ, **RAY_TEST_ENV}
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([shutil.which("ray") or str(Path(sys.executable).parent / "ray"),
                             "start", "--block", "--disable-usage-stats",
                             "--node-ip-address=127.0.0.1", *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, cwd=tmp_path)


@contextlib.contextmanager
def ray_cluster(tmp_path):
    """A head and a second node on 127.0.0.1, one CPU each; yields (address, worker node)."""
    port = free_port()
    head = _ray_node(["--head", f"--port={port}", "--num-cpus=1",
                      "--include-dashboard=false", "--resources={\"head\": 1}"], tmp_path,
                     "head")
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"
        _wait_nodes(address, 1, head, tmp_path / "head.log")
        worker = _ray_node([f"--address={address}", "--num-cpus=1"], tmp_path, "worker")
        nodes.append(worker)
        _wait_nodes(address, 2, worker, tmp_path / "worker.log")
        yield address, worker
    finally:
        for node in reversed(nodes):
            stop(node)


def _wait_nodes(address, n, process, log, timeout=90):
    """Until the cluster at ``address`` has ``n`` live nodes (asked from a subprocess, so that
    this test process stays unconnected)."""
    code = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='error'); "
            "print(sum(x['Alive'] for x in ray.nodes()))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray node exited: {Path(log).read_text()[-2000:]}")
        out = subprocess.run([sys.executable, "-c", code, address], capture_output=True,
                             text=True, timeout=60, env={**os.environ, **RAY_TEST_ENV})
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {n} nodes")


def _kill_when_running(process, uri, after_finished=1):
    """A thread that kills a node's whole process group once ``after_finished`` runs are
    finished in ``uri`` (mid-grid)."""
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if sum(r.finished for r in Store(uri).records()) >= after_finished:
                    break
            except Exception:
                pass
            time.sleep(0.3)
        stop(process)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ray_two_nodes_match_serial_and_survive_a_lost_node(tmp_path, serial_metrics):
    uri = f"sqlite:///{tmp_path / 'ray.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    with ray_cluster(tmp_path) as (address, worker):
        options = ExecutorOptions(executor="ray", ray_address=address, max_retries=2)
        # a first full grid over both nodes: the same metrics as serial
        first = f"sqlite:///{tmp_path / 'first.db'}"
        counts = run_grid(grid, Store(first), quiet=True, executor=options)
        assert counts["finished"] == 12, counts
        assert metrics(first) == serial_metrics
        processes = {r.worker["process"] for r in Store(first).records()}
        assert len(processes) >= 2            # cells ran on both nodes' workers
        assert {r.versions.get("ray") for r in Store(first).records()} == {ray.__version__}
        # the same grid with the second node killed mid-grid: retried or failed, never lost
        watcher = _kill_when_running(worker, uri)
        counts = run_grid(grid, Store(uri), quiet=True, executor=options)
        watcher.join(30)
        assert worker.poll() is not None
        assert counts["finished"] + counts["failed"] == 12, counts
        # the rerun (on the head alone) completes it, without duplicates
        rerun = run_grid(grid, Store(uri), quiet=True, executor=options)
        assert rerun["finished"] == counts["failed"] and rerun["failed"] == 0
        assert metrics(uri) == serial_metrics


def test_ray_workers_log_to_an_mlflow_server(tmp_path, serial_metrics):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                    "--port", str(port), "--workers", "1",
                    "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                    "--artifacts-destination", str(tmp_path / "artifacts")],
                   f"http://127.0.0.1:{port}/health", env=env)
    try:
        uri = f"http://127.0.0.1:{port}"
        grid = load_grid(write(tmp_path / "g.yaml", GRID))
        with ray_cluster(tmp_path) as (address, worker):
            options = ExecutorOptions(executor="ray", ray_address=address, results="worker")
            watcher = _kill_when_running(worker, uri, after_finished=2)
            counts = run_grid(grid, Store(uri), quiet=True, executor=options)
            watcher.join(30)
            assert counts["finished"] + counts["failed"] == 12, counts
            rerun = run_grid(grid, Store(uri), quiet=True, executor=options)
            assert counts["finished"] + rerun["finished"] == 12
            assert metrics(uri) == serial_metrics
            records = [r for r in Store(uri).records() if r.finished]
            assert all(r.worker["node"] for r in records)
            # artifacts reached the server's store
            client = Store(uri).client
            names = {a.path for a in client.list_artifacts(records[0].run_id)}
            assert {"record.json", "per_level_f1.png"} <= names
    finally:
        stop(server)
