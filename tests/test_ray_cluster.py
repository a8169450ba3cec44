"""The Ray executor on a real two-node cluster on 127.0.0.1, with the driver writing the
records and with workers logging to an `mlflow server`: the same metrics as a serial grid,
a node killed mid-grid, its cells retried or failed, the rerun without duplicates.

Ray 2.60 listens on every interface when the machine's name resolves to an outside address,
whatever ``--node-ip-address`` says (seen with ``ss -ltnp``: the GCS, the raylet, the agents
on ``*`` or the outside address). So these tests run in a private network namespace that
has only a loopback interface (``unshare --net``; with ``--map-root-user`` when not root):
``test_ray_cluster_in_a_private_network`` runs this module there as a child pytest, and the
cluster tests themselves run only inside it. Where no such namespace can be made, they skip
with that reason."""

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
from small_grid import GRID, N_CELLS, metrics, serial_metrics_in

ray = pytest.importorskip("ray")
INSIDE = "HMTC_TEST_PRIVATE_NETWORK"     # set in the child pytest inside the namespace
in_private_network = pytest.mark.skipif(
    os.environ.get(INSIDE) != "1",
    reason="runs inside a private network namespace (test_ray_cluster_in_a_private_network)")


def _namespace_prefix() -> list[str] | None:
    """The command prefix that runs a command in a new network namespace with its loopback
    up, or None where this machine allows none."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not (unshare and ip):
        return None
    for prefix in ([unshare, "--net", "--fork"],
                   [unshare, "--net", "--fork", "--map-root-user"]):
        command = [*prefix, "--", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh"]
        probe = subprocess.run([*command, "true"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    return None


def test_ray_cluster_in_a_private_network():
    if os.environ.get(INSIDE) == "1":
        pytest.skip("the child run itself")
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("no private network namespace here (unshare --net and ip are needed): "
                    "Ray's servers would listen on every interface")
    child = subprocess.run(
        [*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         __file__], env={**os.environ, INSIDE: "1"}, cwd=Path(__file__).parents[1],
        capture_output=True, text=True, timeout=1200)
    tail = child.stdout[-6000:] + child.stderr[-2000:]
    assert child.returncode == 0, tail
    # the three Ray tests and the interface check ran; only this wrapper skipped there
    assert "4 passed, 1 skipped" in child.stdout, tail


def test_ray_servers_listen_only_in_the_namespace():
    """Inside the namespace the only interface is the loopback: whatever Ray binds is
    reachable from this machine's loopback only."""
    if os.environ.get(INSIDE) != "1":
        pytest.skip("checked inside the private network namespace")
    import socket
    interfaces = sorted(name for _, name in socket.if_nameindex())
    assert interfaces == ["lo"], interfaces


@pytest.fixture(scope="module")
def serial_metrics(tmp_path_factory):
    return serial_metrics_in(tmp_path_factory.mktemp("serial"))


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
        # the head's note of "the current cluster" (ray stop would remove it; a later
        # ray.init() without an address would try to join the stopped cluster)
        note = Path("/tmp/ray/ray_current_cluster")
        with contextlib.suppress(OSError):
            if note.read_text().strip() == f"127.0.0.1:{port}":
                note.unlink()


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


@in_private_network
def test_ray_two_nodes_match_serial_and_survive_a_lost_node(tmp_path, serial_metrics):
    uri = f"sqlite:///{tmp_path / 'ray.db'}"
    grid = load_grid(write(tmp_path / "g.yaml", GRID))
    with ray_cluster(tmp_path) as (address, worker):
        options = ExecutorOptions(executor="ray", ray_address=address, max_retries=2)
        # a first full grid over both nodes: the same metrics as serial
        first = f"sqlite:///{tmp_path / 'first.db'}"
        counts = run_grid(grid, Store(first), quiet=True, executor=options)
        assert counts["finished"] == N_CELLS, counts
        assert metrics(first) == serial_metrics
        processes = {r.worker["process"] for r in Store(first).records()}
        assert len(processes) >= 2            # cells ran on both nodes' workers
        assert {r.versions.get("ray") for r in Store(first).records()} == {ray.__version__}
        assert all(Store(first).test_predictions(r.run_id) is not None
                   for r in Store(first).records())
        # the same grid with the second node killed mid-grid: retried or failed, never lost
        watcher = _kill_when_running(worker, uri)
        counts = run_grid(grid, Store(uri), quiet=True, executor=options)
        watcher.join(30)
        assert worker.poll() is not None
        assert counts["finished"] + counts["failed"] == N_CELLS, counts
        # the rerun (on the head alone) completes it, without duplicates
        rerun = run_grid(grid, Store(uri), quiet=True, executor=options)
        assert rerun["finished"] == counts["failed"] and rerun["failed"] == 0
        assert metrics(uri) == serial_metrics


@in_private_network
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
            # a cell the lost worker logged before it died comes back "finished by another
            # process" (skipped) on its retry: every cell is accounted for, none twice
            assert counts["finished"] + counts["failed"] + counts["skipped"] == N_CELLS, counts
            rerun = run_grid(grid, Store(uri), quiet=True, executor=options)
            assert rerun["failed"] == 0, rerun
            assert metrics(uri) == serial_metrics
            records = [r for r in Store(uri).records() if r.finished]
            assert all(r.worker["node"] for r in records)
            # artifacts reached the server's store
            client = Store(uri).client
            names = {a.path for a in client.list_artifacts(records[0].run_id)}
            assert {"record.json", "per_level_f1.png", "test_predictions.npz"} <= names
    finally:
        stop(server)


@in_private_network
def test_ray_local_instance_ignores_a_stale_cluster_note(tmp_path, serial_metrics):
    """Without --ray-address the executor starts its own local instance, even where an
    earlier `ray start` that was killed left its note of "the current cluster" behind."""
    note = Path("/tmp/ray/ray_current_cluster")
    kept = note.read_text() if note.exists() else None
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(f"127.0.0.1:{free_port()}")          # nothing listens there
    try:
        uri = f"sqlite:///{tmp_path / 'local.db'}"
        grid = load_grid(write(tmp_path / "g.yaml", GRID))
        counts = run_grid(grid, Store(uri), quiet=True,
                          executor=ExecutorOptions(executor="ray", workers=2))
        assert counts["finished"] == N_CELLS, counts
        assert metrics(uri) == serial_metrics
    finally:
        if kept is None:
            note.unlink(missing_ok=True)
        else:
            note.write_text(kept)
