"""The store's fault battery: each case run for real, in a temporary folder, through the
command line (``python -m hmtc_bench.cli``) or a small writer script.

``store_battery()`` returns one dict per case: ``case``, ``command``, ``expected``, ``seen``
(what happened, in a line) and ``ok``. ``benchmarks/reliability.py`` writes them, with the
other batteries, to ``results/reliability.md``.
"""

from __future__ import annotations

import collections
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hmtc_bench.record import RunRecord
from hmtc_bench.tracking import Store

CLI = [sys.executable, "-m", "hmtc_bench.cli"]
WRITER = """\
import sys
from hmtc_bench.record import RunRecord
from hmtc_bench.tracking import Store
store = Store(sys.argv[1])
for seed in range(3):
    store.log(RunRecord("m", "d", 10 * int(sys.argv[2]) + seed, "threshold", 0.5, {}, "h",
                        "g", status="finished", metrics={"micro_f1": 0.5}), plot=False)
"""
HANGING = """\
import sys, time
from hmtc_bench.record import RunRecord
from hmtc_bench.tracking import Store
store = Store(sys.argv[1])
store.start([RunRecord("m", "d", 0, "threshold", 0.5, {}, "h", "g")])
print("started", flush=True)
time.sleep(120)
"""
GRID = """\
name: tiny
datasets: [synthetic]
seeds: [0, 1, 2]
decode: [threshold, top-down]
methods:
  - {method: flat-svm, params: {max_features: 2000}, grid: {C: [0.5, 1.0]}}
"""


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def _last_line(process: subprocess.CompletedProcess) -> str:
    lines = (process.stderr.strip() or process.stdout.strip()).splitlines()
    return f"exit {process.returncode}: {lines[-1] if lines else ''}"


def _bad_file(folder: Path, name: str, content: bytes | None) -> str:
    path = folder / name
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (x)")
    else:
        path.write_bytes(content)
    return f"sqlite:///{path}"


def store_battery() -> list[dict]:
    cases = []

    def case(name, command, expected, seen, ok):
        cases.append({"case": name, "command": command, "expected": expected, "seen": seen,
                      "ok": bool(ok)})

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # concurrent writers on a new store
        uri = f"sqlite:///{tmp / 'new.db'}"
        script = tmp / "writer.py"
        script.write_text(WRITER)
        start = time.perf_counter()
        writers = [subprocess.Popen([sys.executable, str(script), uri, str(i)],
                                    stderr=subprocess.PIPE, text=True) for i in range(8)]
        codes = [w.wait(timeout=600) for w in writers]
        found = len(Store(uri).records())
        case("8 writers start at once on a store that does not exist",
             "8 x python writer.py sqlite:///new.db (3 runs each)",
             "every process exits 0; 24 runs stored",
             f"exit codes {sorted(set(codes))}; {found} runs stored "
             f"({time.perf_counter() - start:.1f} s)", set(codes) == {0} and found == 24)
        # two grids at once
        uri = f"sqlite:///{tmp / 'grids.db'}"
        Store(uri).check()
        grid = tmp / "g.yaml"
        grid.write_text(GRID)
        both = [subprocess.Popen(CLI + ["bench", str(grid), "--tracking-uri", uri],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for _ in range(2)]
        outs = [b.communicate(timeout=600)[0].strip() for b in both]
        keys = collections.Counter(r.cell_key for r in Store(uri).records() if r.finished)
        case("two `bench` of one 12-cell grid at once on one store",
             "hmtc-bench bench g.yaml --tracking-uri sqlite:///grids.db  (twice, at once)",
             "12 finished cells, each once; the fits split between the two",
             f"{len(keys)} cells, at most {max(keys.values(), default=0)} run each; "
             f"grid 1: {outs[0]}; grid 2: {outs[1]}",
             len(keys) == 12 and set(keys.values()) == {1})
        # kill -9 while a run is being written
        uri = f"sqlite:///{tmp / 'killed.db'}"
        script = tmp / "hang.py"
        script.write_text(HANGING)
        process = subprocess.Popen([sys.executable, str(script), uri], stdout=subprocess.PIPE,
                                   text=True)
        process.stdout.readline()
        process.send_signal(signal.SIGKILL)
        process.wait()
        before = [r.status for r in Store(uri).records()]
        after = [r.status for r in Store(uri).check().records()]
        board = _cli("leaderboard", "--tracking-uri", uri)
        case("a process killed (SIGKILL) while its run is in the store",
             "writer started, kill -9, then any command that opens the store",
             "run marked killed on the next start, never counted",
             f"status {before} -> {after}; leaderboard: {_last_line(board)}",
             after == ["killed"] and "no finished runs" in board.stderr)
        # bad store files and locations, before any data is loaded
        for name, uri, expected in [
            ("an empty (0-byte) store file", _bad_file(tmp, "empty.db", b""),
             "is an empty file, not an MLflow store"),
            ("a file that is not a database", _bad_file(tmp, "junk.db", b"\0junk" * 100),
             "is not an SQLite database"),
            ("an SQLite database that is not an MLflow store", _bad_file(tmp, "other.db", None),
             "is an SQLite database but not an MLflow store"),
            ("a read-only location", "sqlite:////proc/hmtc-bench/store.db",
             "cannot create the folder"),
            ("a URI whose scheme is unknown", "foo://somewhere", "unknown scheme"),
        ]:
            result = _cli("run", "--method", "flat-svm", "--dataset", "synthetic",
                          "--tracking-uri", uri)
            case(name, f"hmtc-bench run --method flat-svm --dataset synthetic "
                       f"--tracking-uri {uri.replace(str(tmp), '$TMP')}",
                 f"one line '{expected}', exit 1, no data loaded",
                 _last_line(result).replace(str(tmp), "$TMP"),
                 result.returncode == 1 and expected in result.stderr
                 and "loading dataset" not in result.stderr)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        start = time.perf_counter()
        result = _cli("run", "--method", "flat-svm", "--dataset", "synthetic",
                      "--tracking-uri", f"http://127.0.0.1:{port}")
        seconds = time.perf_counter() - start
        case("an unreachable tracking server",
             "hmtc-bench run --method flat-svm --dataset synthetic "
             "--tracking-uri http://127.0.0.1:<closed port>",
             "one line 'unreachable' within seconds, exit 1",
             f"{_last_line(result)} ({seconds:.1f} s)",
             result.returncode == 1 and "unreachable" in result.stderr and seconds < 20)
        # a leaderboard row keyed by the data, not the name
        runs = [RunRecord("m", "same-name", 0, "threshold", 0.5, {}, h, "g",
                          status="finished", metrics={"micro_f1": v})
                for h, v in (("aaaa1111", 0.2), ("bbbb2222", 0.9))]
        from hmtc_bench.leaderboard import leaderboard
        rows = leaderboard(runs + [runs[0]], ("micro_f1",))
        case("two datasets with one name; a seed recorded twice",
             "leaderboard([run on data A, run on data B, run on data A again])",
             "two rows, n = 1 each",
             f"{len(rows)} rows, n = {[r['n'] for r in rows]}",
             len(rows) == 2 and all(r["n"] == 1 for r in rows))
    return cases


if __name__ == "__main__":
    from reliability import print_cases
    sys.exit(print_cases(store_battery()))
