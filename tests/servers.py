"""Servers started by tests: on 127.0.0.1, each in its own process group, stopped with
every process of the group by its own id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], url: str, timeout: float = 120, env=None) -> subprocess.Popen:
    """Start ``command`` in a new process group and wait until ``url`` answers."""
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if \
                    process.poll() is not None else "(still starting)"
                stop(process)
                raise RuntimeError(f"{command[0]} did not answer {url}: {output[-2000:]}")
            time.sleep(0.3)


def group_members(pgid: int) -> list[int]:
    """The process ids of the process group ``pgid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to every process of the server's group, by id; SIGKILL to those left."""
    pgid = process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in group_members(pgid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while group_members(pgid) and time.monotonic() < deadline:
            try:
                process.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        if not group_members(pgid):
            break
    process.wait(5)
    if process.stdout:
        process.stdout.close()
    assert not group_members(pgid), f"server processes left: {group_members(pgid)}"
