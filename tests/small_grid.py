"""The small classical grid the executor tests run (serial, processes, Ray) and compare."""

import collections

from conftest import write
from hmtc_bench.grid import load_grid, run_grid
from hmtc_bench.tracking import Store

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
N_CELLS = 12   # 2 methods x 3 seeds x 2 policies


def metrics(uri):
    """(method, seed, policy) -> micro-F1 of the finished runs; fails on a duplicate."""
    runs = [r for r in Store(uri).records() if r.finished]
    keys = collections.Counter(r.cell_key for r in runs)
    assert max(keys.values()) == 1, "a cell finished twice"
    return {(r.method, r.seed, r.decode): round(r.metrics["micro_f1"], 10) for r in runs}


def serial_metrics_in(folder):
    """The metrics of the grid run serially into a store in ``folder``."""
    uri = f"sqlite:///{folder / 'serial.db'}"
    counts = run_grid(load_grid(write(folder / "g.yaml", GRID)), Store(uri), quiet=True)
    assert counts["finished"] == N_CELLS
    return metrics(uri)
