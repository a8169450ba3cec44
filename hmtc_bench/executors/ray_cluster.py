"""The ``ray`` executor: each cell one Ray task (the only module that imports Ray).

* **The cluster**: ``ray_address`` as ``ray.init`` takes it (``auto``, ``host:port``,
  ``ray://host:10001``); without one, a local Ray instance is started for the grid (with
  ``workers`` CPUs when given) and stopped after it.
* **Resources**: a cell asks for what its method's ``resources()`` says: a classical cell
  ``n_jobs`` CPUs; a neural cell ``gpus_per_cell`` of a GPU (and one CPU) when the cluster
  has GPUs, else the CPUs of the largest node. Tasks are retried ``max_retries`` times when
  their worker or node is lost (Ray's own retry of system failures); a task running past
  ``cell_timeout`` is cancelled (its worker killed) and recorded failed. The driver keeps
  as many cells in flight as the cluster has room for, so that a cell's time counts from
  when it starts, not while it waits in a queue.
* **Data** (``data``): ``"object-store"`` (default): the driver puts each dataset (its
  split) into Ray's object store once, and each worker process fetches it once, on its first
  cell of that dataset; works whatever the nodes' file systems. ``"path"``: each worker reads
  the dataset from its folder (the same absolute path on every node: a shared file system),
  once; nothing crosses the network but the cell.
* **Worker processes** are reused across cells (``max_calls=0``, also for GPU tasks, whose
  Ray default is one task per process), so that their datasets stay loaded; GPU memory is
  given back after each neural cell.
"""

from __future__ import annotations

import os
import time

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


def _task(cell, data_ref, results: str, cpus: int = 1) -> dict:
    from hmtc_bench.executors.cells import (cpu_threads, run_cell, share_work, worker_data,
                                            worker_name)
    share_work()
    try:
        data = worker_data(cell, data_ref)
    except Exception as err:
        return {"records": [], "model": None, "worker": worker_name(),
                "error": f"{type(err).__name__}: {err}", "taken": False}
    with cpu_threads(cpus):                 # the CPUs Ray granted the task
        return run_cell(cell, data, results)


class RayCluster:
    def __init__(self, options):
        self.options = options
        self.ray = None
        self.started_local = False
        self.refs: dict = {}          # object ref -> (cell, submitted at)
        self.data_refs: dict = {}     # data key -> [object ref]
        self.capacity = 1
        self.has_gpus = False
        self.biggest_node = 1

    def describe(self) -> str:
        resources = self.ray.cluster_resources()
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        where = self.options.ray_address or "a local instance"
        return (f"Ray {self.ray.__version__} at {where}: {len(nodes)} nodes, "
                f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
                f"data via {'paths' if self.options.data == 'path' else 'the object store'}")

    def start(self, cells) -> None:
        for key, value in RAY_ENV.items():
            os.environ.setdefault(key, value)
        import ray
        self.ray = ray
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False,
                          logging_level="warning")
            if self.options.ray_address:
                ray.init(address=self.options.ray_address, **kwargs)
            else:
                # "local": a new instance of this driver's, never a cluster some earlier
                # `ray start` left noted in /tmp/ray (ray.init() alone would try to join it)
                ray.init(address="local", num_cpus=self.options.workers, **kwargs)
                self.started_local = True
        resources = ray.cluster_resources()
        self.has_gpus = resources.get("GPU", 0) > 0
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.biggest_node = max([int(n["Resources"].get("CPU", 1)) for n in nodes] or [1])
        self.remote = ray.remote(max_calls=0)(_task)
        self.total_cpus = max(1, int(resources.get("CPU", 1)))
        self.total_gpus = resources.get("GPU", 0)
        self.used = {"cpus": 0.0, "gpus": 0.0}

    def _request(self, cell) -> dict:
        wants = cell.resources or {"cpus": 1, "gpu": False}
        if wants.get("gpu") and self.has_gpus:
            return {"num_cpus": max(1, int(wants.get("cpus", 1))),
                    "num_gpus": self.options.gpus_per_cell}
        if wants.get("gpu"):
            return {"num_cpus": self.biggest_node, "num_gpus": 0}
        return {"num_cpus": min(max(1, int(wants.get("cpus", 1))), self.biggest_node),
                "num_gpus": 0}

    def has_room(self) -> bool:
        return self.used["cpus"] < self.total_cpus and \
            (not self.has_gpus or self.used["gpus"] <= self.total_gpus)

    def in_flight(self) -> int:
        return len(self.refs)

    def running_indices(self) -> list[int]:
        return [cell.index for cell, _, _ in self.refs.values()]

    def _data_ref(self, cell):
        if self.options.data == "path":
            return None
        if cell.data_key not in self.data_refs:
            from hmtc_bench.executors.cells import worker_data
            data = worker_data(cell)           # the driver's copy, read once
            self.data_refs[cell.data_key] = [self.ray.put(data)]
        return self.data_refs[cell.data_key]

    def submit(self, cell) -> None:
        request = self._request(cell)
        ref = self.remote.options(
            **request, max_retries=self.options.max_retries, retry_exceptions=False,
            name=f"hmtc-bench cell {cell.index}").remote(
                cell, self._data_ref(cell), self.options.results, request["num_cpus"])
        self.refs[ref] = (cell, time.monotonic(), request)
        self.used["cpus"] += request["num_cpus"]
        self.used["gpus"] += request["num_gpus"]

    def _release(self, ref):
        cell, _, request = self.refs.pop(ref)
        self.used["cpus"] -= request["num_cpus"]
        self.used["gpus"] -= request["num_gpus"]
        return cell

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        out = []
        if self.refs:
            ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs),
                                     timeout=timeout)
            for ref in ready:
                cell = self._release(ref)
                try:
                    outcome = self.ray.get(ref)
                except Exception as err:   # lost more than max_retries times, or cancelled
                    outcome = {"records": [], "model": None, "worker": "?", "taken": False,
                               "error": f"{type(err).__name__}: "
                                        f"{str(err).strip().splitlines()[0][:300]}"}
                out.append((cell.index, outcome))
        else:
            time.sleep(timeout)
        limit = self.options.cell_timeout
        if limit:
            now = time.monotonic()
            for ref, (cell, since, _) in list(self.refs.items()):
                if now - since > limit:
                    self.ray.cancel(ref, force=True, recursive=True)
                    self._release(ref)
                    out.append((cell.index, {"records": [], "model": None, "worker": "?",
                                             "taken": False,
                                             "error": f"timed out after {limit:g} s"}))
        return out

    def close(self) -> None:
        if self.ray is None:
            return
        for ref in list(self.refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        self.refs.clear()
        self.data_refs.clear()
        if self.ray.is_initialized():
            self.ray.shutdown()
