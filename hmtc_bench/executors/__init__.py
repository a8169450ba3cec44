"""Where a grid's cells run: ``serial`` (one after another in this process, the default),
``processes`` (worker processes on this machine) or ``ray`` (a Ray cluster, or a local Ray
instance started for the grid).

A cell (``cells.Cell``) is one task: one fit of a dataset x configuration x seed, with all
its decodings. ``run_cells`` is the driver of the parallel executors:

* **Results** (``results``): ``"driver"`` (default): workers send their records back and the
  driver writes them to its store, so the default sqlite file works even when the workers
  are on other machines; the driver claims each cell in the store before it is submitted
  (so two grids on one store never fit one cell twice) and keeps the claims' heartbeats
  alive. ``"worker"``: each worker logs to the store itself, which must then be a tracking
  server every node reaches (``mlflow server`` with a database backend); the worker claims
  the cell as a serial grid does. Artifacts (the per-level plot, a logged model) reach the
  store either way: in ``"driver"`` mode the model comes back as the bytes of a tar file.
* **Failures**: a cell whose fit fails is recorded failed with its error and the grid goes
  on; a worker lost while fitting (killed, node gone) has its cell retried up to
  ``max_retries`` times, then recorded failed; a cell running longer than ``cell_timeout``
  seconds is stopped (its worker killed) and recorded failed. Killing the driver leaves its
  claims "running"; the next process that opens the store marks them killed, and a rerun
  runs exactly the unfinished cells.
* **Progress**: one bar over the cells (running / finished / failed, ETA; plain lines when
  stderr is not a terminal) and one line per finished cell naming its worker (host:pid).

Backends: ``processes.ProcessPool`` and ``ray_cluster.RayCluster`` (the only module that
imports Ray). Both give each worker each dataset once (``cells.worker_data``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hmtc_bench.errors import ParameterError

EXECUTORS = ("serial", "processes", "ray")
RESULTS = ("driver", "worker")
DATA_MODES = ("object-store", "path")


@dataclass
class ExecutorOptions:
    """How a grid's cells are run (``hmtc-bench bench --executor ...``)."""
    executor: str = "serial"
    workers: int | None = None        # processes: worker count (default: the cores);
                                      # ray without an address: the local instance's CPUs
    ray_address: str | None = None    # auto, host:port, ray://host:10001; None: local Ray
    results: str = "driver"
    data: str = "object-store"        # ray: how datasets reach the workers
    max_retries: int = 2              # retries of a cell whose worker was lost
    cell_timeout: float | None = None  # seconds; None: no limit
    gpus_per_cell: float = 1.0        # ray: the GPU share of a neural cell

    def check(self, store_uri: str) -> "ExecutorOptions":
        """Refuse what cannot work, before any data is loaded (one line naming the option)."""
        from hmtc_bench.executors.cells import store_is_local
        for option, value, allowed in (("executor", self.executor, EXECUTORS),
                                       ("results", self.results, RESULTS),
                                       ("data", self.data, DATA_MODES)):
            if value not in allowed:
                raise ParameterError(f"--{option} {value!r}: choose one of "
                                     f"{', '.join(allowed)}")
        if self.workers is not None and self.workers < 1:
            raise ParameterError(f"--workers {self.workers}: must be at least 1")
        if self.max_retries < 0:
            raise ParameterError(f"--max-retries {self.max_retries}: must be 0 or more")
        if self.cell_timeout is not None and self.cell_timeout <= 0:
            raise ParameterError(f"--cell-timeout {self.cell_timeout}: must be > 0 seconds")
        g = self.gpus_per_cell
        if not (0 < g <= 1 or (g >= 1 and g == int(g))):
            raise ParameterError(f"--gpus-per-cell {self.gpus_per_cell}: a fraction in (0, 1] "
                                 "or a whole number")
        if self.executor == "ray":
            import importlib.util
            if importlib.util.find_spec("ray") is None:
                raise ParameterError("--executor ray needs Ray: pip install -e \".[ray]\" "
                                     "(ray[default])")
        if self.ray_address and self.executor != "ray":
            raise ParameterError("--ray-address applies to --executor ray")
        if self.executor == "serial" and self.results == "worker":
            raise ParameterError("--results worker applies to --executor processes or ray")
        if self.results == "worker" and self.executor == "ray" and store_is_local(store_uri) \
                and self.ray_address:
            raise ParameterError(f"--results worker: workers on other machines cannot write "
                                 f"the local file {store_uri}; give --tracking-uri of an "
                                 "`mlflow server`, or keep --results driver")
        return self


def make_backend(options: ExecutorOptions):
    if options.executor == "processes":
        from hmtc_bench.executors.processes import ProcessPool
        return ProcessPool(options)
    from hmtc_bench.executors.ray_cluster import RayCluster
    return RayCluster(options)


def run_cells(cells, store, options: ExecutorOptions, claimed: dict, counts: dict, say,
              show_progress: bool = True) -> dict:
    """Run ``cells`` on the executor of ``options``; ``claimed[cell.index]`` holds the cell's
    started records (``results="driver"``: the driver's claims in ``store``). Updates and
    returns ``counts`` (finished, skipped, failed decodings)."""
    from hmtc_bench import progress
    from hmtc_bench.errors import StoreError
    from hmtc_bench.executors.cells import unpacked
    from hmtc_bench.record import RunRecord
    from hmtc_bench.runner import finish_records
    from hmtc_bench.tracking.liveness import HEARTBEAT_SECONDS
    backend = make_backend(options)
    by_index = {cell.index: cell for cell in cells}
    done = {"finished": 0, "failed": 0}
    started = time.perf_counter()
    try:
        backend.start(cells)
        say(f"executor {options.executor}: {backend.describe()}")
        pending = list(cells)
        last_beat = time.monotonic()
        bar = progress.Progress(len(cells), "grid", unit="cells", enabled=show_progress,
                                interval=30.0)

        def status() -> str:
            return (f"{backend.in_flight()} running, {done['finished']} finished, "
                    f"{done['failed']} failed")
        with bar:
            while pending or backend.in_flight():
                while pending and backend.has_room():
                    cell = pending.pop(0)
                    if options.results == "driver" and \
                            not store.start(claimed[cell.index], claim=True):
                        counts["skipped"] += len(cell.policies)
                        say(f"[{_position(counts)}/{counts['total']}] {cell.label}: claimed or "
                            "finished by another process, skipped")
                        bar.update()
                        continue
                    backend.submit(cell)
                bar.postfix(status())
                for index, outcome in backend.poll(timeout=0.5):
                    cell = by_index[index]
                    records = claimed.get(index) or []
                    failed = _settle(cell, outcome, records, options, store, finish_records,
                                     unpacked, RunRecord)
                    n = len(cell.policies)
                    if outcome.get("taken"):
                        counts["skipped"] += n
                        say(f"[{_position(counts)}/{counts['total']}] {cell.label}: claimed or "
                            "finished by another process, skipped")
                    elif failed:
                        counts["failed"] += n
                        done["failed"] += 1
                        say(f"[{_position(counts)}/{counts['total']}] {cell.label}: FAILED "
                            f"({failed}) on {outcome.get('worker', '?')}")
                    else:
                        counts["finished"] += n
                        done["finished"] += 1
                        scores = ", ".join(
                            f"{r['decode']} micro {r['metrics'].get('micro_f1', float('nan')):.4f}"
                            for r in outcome["records"])
                        fit = outcome["records"][0].get("fit_seconds") or 0.0
                        say(f"[{_position(counts)}/{counts['total']}] {cell.label}: {scores} "
                            f"(fit {fit:.1f} s) on {outcome['worker']}; "
                            f"{(time.perf_counter() - started) / 60:.1f} min")
                    bar.postfix(status())
                    bar.update()
                if options.results == "driver" and \
                        time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    _beat(store, [r for i in backend.running_indices()
                                  for r in claimed.get(i) or []])
            bar.postfix(status())             # the closing line: nothing left running
    except (KeyboardInterrupt, StoreError):
        raise
    finally:
        backend.close()
    return counts


def _position(counts: dict) -> int:
    return sum(counts[k] for k in ("finished", "skipped", "failed", "unavailable")
               if k in counts)


def _settle(cell, outcome: dict, claimed, options, store, finish_records, unpacked,
            RunRecord) -> str | None:
    """Write a cell's outcome to the store (driver mode); returns its error, or None when it
    finished."""
    if outcome.get("taken"):
        return None
    error = outcome.get("error")
    returned = outcome.get("records") or []
    if options.results == "worker":
        return error or (None if returned and all(r["status"] == "finished" for r in returned)
                         else "no records came back")
    by_policy = {r["decode"]: r for r in returned}
    final = []
    for record in claimed:
        data = by_policy.get(record.decode)
        if data is not None:
            back = RunRecord.from_dict(data)
            if back.cell_key != record.cell_key:   # the worker ran something else
                error = (f"the worker's record of {record.decode} is another cell "
                         f"({back.cell_key}, expected {record.cell_key}): check that every "
                         "node runs the same hmtc-bench")
                back = None
        else:
            back = None
        if back is None:
            record.status = "failed"
            record.error = error or "the worker returned no record of this decoding"
            back = record
        back.run_id, back.experiment_id = record.run_id, record.experiment_id
        back.worker = {**(back.worker or {}), "executor": options.executor,
                       "process": outcome.get("worker", "?")}
        final.append(back)
    with unpacked(outcome.get("model")) as folder:
        finish_records(store, final, model=folder if all(r.finished for r in final) else None)
    if all(r.finished for r in final):
        outcome["records"] = [r.to_dict(predictions=False) for r in final]
        return None
    return error or next((r.error for r in final if r.error), "failed")


def _beat(store, records) -> None:
    """Refresh the heartbeats of the driver's claims of the cells now running."""
    now = str(int(time.time()))
    for record in records:
        if record.run_id:
            try:
                store.client.set_tag(record.run_id, "heartbeat", now)
            except Exception:  # a missed beat only makes a claim look older
                pass


__all__ = ["DATA_MODES", "EXECUTORS", "ExecutorOptions", "RESULTS", "run_cells"]
