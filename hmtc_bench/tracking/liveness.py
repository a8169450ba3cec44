"""Whether a running run is still alive: heartbeats, and the runs a killed process left.

A run is written with ``status=running`` and the writing process's ``host``, ``pid`` and
``heartbeat`` (seconds since the epoch), refreshed every ``HEARTBEAT_SECONDS`` while the
process fits. A running run is *stale* when its process is gone: on this host, its pid is no
longer alive; elsewhere, its heartbeat is older than ``stale_seconds()`` (default 300,
``HMTC_BENCH_STALE_SECONDS``). Stale runs are marked ``status=killed`` (MLflow status KILLED)
by the next process that opens the store, and never counted.
"""

from __future__ import annotations

import os
import socket
import threading
import time

HEARTBEAT_SECONDS = 30.0
RUNNING = "running"


def stale_seconds() -> float:
    return float(os.environ.get("HMTC_BENCH_STALE_SECONDS", "300"))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (exited, not yet reaped by its parent, as the
    workers of a killed Ray node are) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):   # no /proc (macOS): alive as far as we can tell
        return True


def is_stale(tags: dict, start_time_ms: int | None, now: float | None = None) -> bool:
    """Whether a run whose status tag is not final belongs to a process that is gone."""
    now = time.time() if now is None else now
    if tags.get("host") == socket.gethostname() and tags.get("pid", "").isdigit():
        if int(tags["pid"]) != os.getpid() and not pid_alive(int(tags["pid"])):
            return True
    beat = tags.get("heartbeat")
    last = float(beat) if beat else (start_time_ms or 0) / 1000
    return now - last > stale_seconds()


class Heartbeat:
    """Refreshes the ``heartbeat`` tag of the runs this process is fitting, in a daemon
    thread; ``with Heartbeat(write, run_ids):`` around the fit."""

    def __init__(self, write, run_ids, every: float = HEARTBEAT_SECONDS):
        self._write = write            # write(run_id, seconds_since_epoch)
        self._run_ids = list(run_ids)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="hmtc-heartbeat")

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            for run_id in self._run_ids:
                try:
                    self._write(run_id, time.time())
                except Exception:  # a missed beat only makes a run look older
                    pass

    def __enter__(self) -> "Heartbeat":
        if self._run_ids:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
