"""The ``processes`` executor: worker processes on this machine.

``workers`` processes (default: the machine's cores), started with the ``forkserver``
method (a clean interpreter each, none of the driver's threads or open stores), each with
its own inbox; the driver hands a cell to an idle worker and reads results from one shared
outbox. A worker reads each dataset once from its path (``cells.worker_data``) and runs
cells one after another, its BLAS and torch threads limited to the cell's cores. A worker
that dies while fitting is replaced and its cell retried (``max_retries``); one that runs a
cell past ``cell_timeout`` is killed, replaced, and the cell recorded failed. A worker whose
driver is gone (killed, even with SIGKILL) exits within ``WATCH_SECONDS``: no cell runs on
for nobody.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time

WATCH_SECONDS = 2.0


def _watch_driver(driver: int) -> None:
    """Exit this worker as soon as process ``driver`` is gone (a daemon thread)."""
    from hmtc_bench.tracking.liveness import pid_alive

    def watch():
        while pid_alive(driver):
            time.sleep(WATCH_SECONDS)
        os._exit(3)
    threading.Thread(target=watch, daemon=True, name="hmtc-bench-driver-watch").start()


def _worker_main(inbox, outbox, results: str, driver: int | None = None) -> None:
    """A worker's loop: cells from ``inbox`` until None, outcomes to ``outbox``."""
    from hmtc_bench.executors.cells import (cpu_threads, run_cell, share_work, worker_data,
                                            worker_name)
    if driver is not None:
        _watch_driver(driver)
    share_work()
    while True:
        cell = inbox.get()
        if cell is None:
            return
        try:
            data = worker_data(cell)
            with cpu_threads(cell.resources.get("cpus", 1)):
                outcome = run_cell(cell, data, results)
        except Exception as err:   # the dataset failed to load
            outcome = {"records": [], "model": None, "worker": worker_name(),
                       "error": f"{type(err).__name__}: {err}", "taken": False}
        outbox.put((cell.index, outcome))


class _Slot:
    def __init__(self):
        self.process = None
        self.inbox = None
        self.cell = None
        self.since = 0.0
        self.tries = 0


class ProcessPool:
    """A pool of worker processes with retries and timeouts (see the module docstring)."""

    def __init__(self, options):
        self.options = options
        self.n = options.workers or os.cpu_count() or 1
        self.context = multiprocessing.get_context("forkserver")
        self.outbox = None
        self.slots: list[_Slot] = []
        self.tries: dict[int, int] = {}
        self.retry: list = []

    def describe(self) -> str:
        return f"{self.n} worker processes on this machine"

    def start(self, cells) -> None:
        self.outbox = self.context.Queue()
        self.slots = [_Slot() for _ in range(self.n)]
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        slot.inbox = self.context.Queue()
        slot.process = self.context.Process(
            target=_worker_main,
            args=(slot.inbox, self.outbox, self.options.results, os.getpid()),
            daemon=True, name="hmtc-bench-worker")
        slot.process.start()
        slot.cell = None

    def has_room(self) -> bool:
        self._resubmit()
        return any(slot.cell is None for slot in self.slots)

    def in_flight(self) -> int:
        return sum(slot.cell is not None for slot in self.slots) + len(self.retry)

    def running_indices(self) -> list[int]:
        return [slot.cell.index for slot in self.slots if slot.cell is not None]

    def submit(self, cell) -> None:
        slot = next(slot for slot in self.slots if slot.cell is None)
        slot.cell, slot.since = cell, time.monotonic()
        slot.inbox.put(cell)

    def _resubmit(self) -> None:
        while self.retry and any(slot.cell is None for slot in self.slots):
            self.submit(self.retry.pop(0))

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        """Outcomes that arrived within ``timeout`` seconds, with those of lost and timed-out
        cells."""
        out = []
        try:
            out.append(self.outbox.get(timeout=timeout))
            while True:
                out.append(self.outbox.get_nowait())
        except queue.Empty:
            pass
        for index, _ in out:
            for slot in self.slots:
                if slot.cell is not None and slot.cell.index == index:
                    slot.cell = None
        now = time.monotonic()
        for slot in self.slots:
            if slot.cell is None:
                if not slot.process.is_alive():
                    self._spawn(slot)
                continue
            cell = slot.cell
            if not slot.process.is_alive():
                tries = self.tries[cell.index] = self.tries.get(cell.index, 0) + 1
                code = slot.process.exitcode
                self._spawn(slot)
                if tries <= self.options.max_retries:
                    self.retry.append(cell)
                else:
                    out.append((cell.index, _lost(cell, f"worker lost (exit code {code}) "
                                                        f"{tries} times")))
            elif self.options.cell_timeout and now - slot.since > self.options.cell_timeout:
                self._kill(slot)
                self._spawn(slot)
                out.append((cell.index, _lost(cell, f"timed out after "
                                                    f"{self.options.cell_timeout:g} s")))
        self._resubmit()
        return out

    def _kill(self, slot: _Slot) -> None:
        slot.process.terminate()
        slot.process.join(5)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(5)

    def close(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                try:
                    slot.inbox.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 10
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    self._kill(slot)


def _lost(cell, why: str) -> dict:
    return {"records": [], "model": None, "worker": "?", "error": why, "taken": False}
