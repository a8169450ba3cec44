"""The results store: run records written to MLflow and read back.

A ``Store`` is built once from a tracking URI (the argument, else ``MLFLOW_TRACKING_URI``,
else the sqlite database ``results/mlflow.db`` under the current folder, artifacts in
``results/mlartifacts``) and passed down to the grid and the runner; it imports mlflow and
builds its client once, on first use. How a record maps onto an MLflow run:
``hmtc_bench.tracking.mapping``.

What it guarantees:

* ``check()`` (called by the command line and the grid before any data is loaded): the URI
  names a store that is reachable, writable, not corrupt and has MLflow's schema, or a
  one-line ``StoreError`` names it. An unreachable server fails in seconds.
* Many processes may create and write one sqlite store at once: its creation (MLflow's
  schema migration) is serialized by a lock file beside it (``<db>.lock``), and every write
  is retried while the database is locked. Servers (``mlflow server`` with a database)
  serialize writes themselves.
* A run is "finished" only once everything else of it is written (the status tag comes
  last). A run whose process died (killed, machine lost) stays "running" until the next
  process that checks the store marks it "killed" (``hmtc_bench.tracking.liveness``); it is
  never counted.
* ``start(records, claim=True)`` claims grid cells before a fit: if another live process
  claimed the same cell first, or it is finished, the claim is withdrawn (the new runs are
  deleted) and ``False`` returned, so two grids on one store never fit one cell twice. A
  claim expires with its process (see liveness).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from hmtc_bench.errors import StoreError
from hmtc_bench.record import PREDICTIONS, RunRecord, load_predictions, save_predictions
from hmtc_bench.tracking import mapping
from hmtc_bench.tracking.checks import check_uri, sqlite_path
from hmtc_bench.tracking.liveness import RUNNING, Heartbeat, is_stale

DEFAULT_DB = Path("results") / "mlflow.db"
RETRY_SECONDS = 120.0  # how long a write waits for a locked database
NO_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else the default sqlite."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    path = (Path.cwd() / DEFAULT_DB).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a sqlite database (``mlartifacts/``); None lets MLflow decide."""
    path = sqlite_path(uri)
    return (path.parent / "mlartifacts").resolve().as_uri() if path else None


def _import_mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import logging
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import mlflow
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


def _locked(err: Exception) -> bool:
    text = str(err).lower()
    return "database is locked" in text or "database table is locked" in text or \
        "busy" in text


def retry(action, seconds: float = RETRY_SECONDS):
    """``action()``, again while the database is locked (with growing pauses)."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            return action()
        except Exception as err:
            if not _locked(err) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


class Store:
    """One MLflow tracking store. ``Store()`` resolves the default URI."""

    def __init__(self, uri: str | None = None):
        self.uri = resolve_uri(uri)
        self._client = None
        self._experiments: dict[str, str] = {}
        self._start_ms: dict[str, int] = {}
        self._checked = 0  # 0: not yet, 1: for reading, 2: for writing

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    # ------------------------------------------------------------------ opening
    def check(self, write: bool = True) -> "Store":
        """Refuse a store that cannot be used (``StoreError``, one line naming the URI) and
        open it; ``write``: also that it can be written, and mark the runs of dead
        processes killed. Done once per store object (``start`` and ``records`` call it).
        Returns self."""
        level = 2 if write else 1
        if self._checked >= level:
            return self
        check_uri(self.uri, write)
        path = sqlite_path(self.uri)
        if path is not None and not path.exists():  # a new store, created by its first run
            self._checked = level
            return self
        try:
            if write:
                self.reap()
            else:
                retry(lambda: self.client.search_experiments(max_results=1))
        except StoreError:
            raise
        except Exception as err:
            raise StoreError(f"store {self.uri}: cannot be used ({_first_line(err)})") from None
        self._checked = level
        return self

    @property
    def client(self):
        if self._client is None:
            mlflow = _import_mlflow()
            path = sqlite_path(self.uri)
            if path is None:
                self._client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
            else:  # serialize the creation (schema migration) of a new sqlite store
                import fcntl
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(f"{path}.lock", "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
                        retry(lambda: client.search_experiments(max_results=1))
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
                self._client = client
        return self._client

    def _experiment_id(self, dataset: str) -> str:
        name = mapping.EXPERIMENT_PREFIX + dataset
        if name not in self._experiments:
            self._experiments[name] = retry(lambda: self._get_or_create(name))
        return self._experiments[name]

    def _get_or_create(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_root(self.uri))
        except Exception:  # created by another process meanwhile
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _experiment_ids(self, dataset: str | None = None) -> list[str]:
        return [e.experiment_id for e in retry(self.client.search_experiments)
                if e.name.startswith(mapping.EXPERIMENT_PREFIX)
                and (dataset is None or e.name == mapping.EXPERIMENT_PREFIX + dataset)]

    # ------------------------------------------------------------------ writing
    def start(self, records: list[RunRecord], claim: bool = False,
              token: str | None = None) -> bool:
        """Create the runs of ``records`` (status running; parameters and start tags
        written), setting their run ids. With ``claim``, give them up (delete them) and
        return False when a live process claimed any of their cells first or a finished
        run of one exists. ``token`` (tag ``claim_token``): the claims of one task; a retry
        of the task (its first attempt's worker lost) passes the same token and is not
        stopped by that attempt's claim, which a later ``reap`` marks killed."""
        self.check()
        client = self.client
        for record in records:
            experiment = self._experiment_id(record.dataset)
            tags = mapping.start_tags(record)
            if token:
                tags["claim_token"] = token
            run = retry(lambda: client.create_run(experiment, tags=tags))
            record.run_id, record.experiment_id = run.info.run_id, run.info.experiment_id
            self._start_ms[record.run_id] = run.info.start_time
            retry(lambda: client.log_batch(record.run_id, params=mapping.start_params(record)))
        if claim and not all(self._holds(record, token) for record in records):
            for record in records:
                retry(lambda: client.delete_run(record.run_id))
            return False
        return True

    def _holds(self, record: RunRecord, token: str | None = None) -> bool:
        """Whether ``record``'s run is the first live claim of its cell (claims of the same
        ``token`` aside), none finished."""
        mine = (self._start_ms[record.run_id], record.run_id)
        runs = retry(lambda: self.client.search_runs(
            [record.experiment_id], filter_string=f"tags.cell_key = '{record.cell_key}'",
            max_results=1000))
        for run in runs:
            if run.info.run_id == record.run_id:
                continue
            status = run.data.tags.get("status")
            if status == "finished":
                return False
            if token and run.data.tags.get("claim_token") == token:
                continue
            if status == RUNNING and (run.info.start_time, run.info.run_id) < mine and \
                    not is_stale(run.data.tags, run.info.start_time):
                return False
        return True

    def heartbeat(self, records: list[RunRecord]) -> Heartbeat:
        """A context manager refreshing the records' heartbeats while they are fitted."""
        def write(run_id, now):
            retry(lambda: self.client.set_tag(run_id, "heartbeat", str(int(now))), 10)
        return Heartbeat(write, [r.run_id for r in records if r.run_id])

    def finish(self, record: RunRecord, plot: bool = True, model=None) -> str:
        """Write the end of a started run: metrics, tags, artifacts (with ``model``, a
        saved model folder, its MLflow model ``model``), then its status."""
        client = self.client
        run_id = record.run_id
        retry(lambda: client.log_batch(run_id, metrics=mapping.end_metrics(record),
                                       tags=mapping.end_tags(record)))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "record.json"
            path.write_text(json.dumps(record.to_dict(predictions=False), indent=2,
                                       default=str))
            retry(lambda: client.log_artifact(run_id, str(path)))
            if record.test_predictions is not None:
                arrays = Path(tmp) / PREDICTIONS
                save_predictions(record.test_predictions, arrays)
                retry(lambda: client.log_artifact(run_id, str(arrays)))
            if plot and record.metrics:
                from hmtc_bench.plots import save_png
                figure = Path(tmp) / "per_level_f1.png"
                save_png(mapping.run_figure(record), figure)
                retry(lambda: client.log_artifact(run_id, str(figure)))
        if model is not None:
            from hmtc_bench.tracking.models import log_model
            retry(lambda: log_model(client, run_id, model, {
                "decode": record.decode, "threshold": record.threshold,
                "decode_params": record.decode_params}))   # a tuned decoding's thresholds
        retry(lambda: client.set_tag(run_id, "status", record.status))
        retry(lambda: client.set_terminated(run_id,
                                            "FINISHED" if record.finished else "FAILED"))
        return run_id

    def log(self, record: RunRecord, plot: bool = True) -> str:
        """Write a whole record as a new run; returns (and sets on the record) its run id."""
        self.start([record])
        return self.finish(record, plot)

    def reap(self) -> int:
        """Mark the running runs of dead processes killed; returns how many."""
        client = self.client
        killed = 0
        for experiment in self._experiment_ids():
            for status in (RUNNING, "logging"):  # "logging": written by hmtc-bench 0.1
                runs = retry(lambda: client.search_runs(
                    [experiment], filter_string=f"tags.status = '{status}'", max_results=1000))
                for run in runs:
                    if is_stale(run.data.tags, run.info.start_time):
                        retry(lambda: client.set_tag(run.info.run_id, "status", "killed"))
                        retry(lambda: client.set_terminated(run.info.run_id, "KILLED"))
                        killed += 1
        return killed

    # ------------------------------------------------------------------ reading
    def records(self, dataset: str | None = None) -> list[RunRecord]:
        """Run records read back (finished, failed, killed and running), newest first; none
        from an sqlite store that does not exist yet."""
        path = sqlite_path(self.uri)
        if path is not None and not path.exists():
            return []
        self.check(write=False)
        client = self.client
        records = []
        for experiment in self._experiment_ids(dataset):
            token = None
            while True:
                page = retry(lambda: client.search_runs(
                    [experiment], max_results=1000, page_token=token,
                    order_by=["attributes.start_time DESC"]))
                records.extend(mapping.record_of(run) for run in page)
                token = page.token
                if not token:
                    break
        return records

    def test_predictions(self, run_id: str):
        """(Y_true, predicted) of a finished run's test documents (its artifact
        ``test_predictions.npz``), or None for a run stored without them."""
        client = self.client
        names = {a.path for a in retry(lambda: client.list_artifacts(run_id))}
        if PREDICTIONS not in names:
            return None
        quiet = os.environ.get(NO_BAR)
        os.environ[NO_BAR] = "false"          # MLflow's download bar: not on our output
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = retry(lambda: client.download_artifacts(run_id, PREDICTIONS, tmp))
                return load_predictions(path)
        finally:
            if quiet is None:
                del os.environ[NO_BAR]
            else:
                os.environ[NO_BAR] = quiet

    def finished_by(self, token: str) -> list[RunRecord]:
        """The finished runs claimed with ``token``: what an earlier attempt of one task
        wrote before its worker was lost (so a retry counts them instead of skipping)."""
        client = self.client
        return [mapping.record_of(run) for experiment in self._experiment_ids()
                for run in retry(lambda: client.search_runs(
                    [experiment], max_results=1000,
                    filter_string=f"tags.claim_token = '{token}' and tags.status = 'finished'"))]

    def finished_cells(self) -> set[str]:
        return {r.cell_key for r in self.records() if r.finished}

    # ------------------------------------------------------------------ UI
    def serve_ui(self, port: int = 5000) -> int:
        """Serve the MLflow UI on 127.0.0.1 (blocks until interrupted or terminated);
        returns the exit code. The server runs in its own process group, stopped whole on
        exit, so no worker is left behind."""
        import signal
        import subprocess
        import sys
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.uri,
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        root = artifact_root(self.uri)
        if root:
            command += ["--default-artifact-root", root]
        process = subprocess.Popen(command, env=env, start_new_session=True)

        def stop(*_):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            return process.wait()
        except KeyboardInterrupt:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                return process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                return process.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)




def keep_locally(records: list[RunRecord], store: Store) -> Path:
    """Write records the store could not take to a JSON-lines file (beside an sqlite store,
    else in the user's cache, else the temporary folder); ``hmtc-bench import FILE`` logs
    them later. Returns the file."""
    from hmtc_bench.record import dump_records
    name = f"unlogged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl"
    folders = [Path(os.environ.get("HMTC_BENCH_CACHE", Path.home() / ".cache" / "hmtc-bench")),
               Path(tempfile.gettempdir())]
    path = sqlite_path(store.uri)
    if path is not None:
        folders.insert(0, path.parent)
    for folder in folders:
        try:
            return dump_records(records, folder / "unlogged" / name)
        except OSError:
            continue
    raise StoreError(f"store {store.uri}: the run records could not be kept anywhere")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
