"""What computing data-only work once saves on a grid: the grid run with ``shared_work`` off
(every cell vectorizes its own texts) and on (the default of ``run_grid``), one after the
other in one run of this script, each into its own new sqlite store, serially. Writes
results/shared_work.md and .json; the cells' metrics must be identical in both.

    python benchmarks/shared_work_saving.py [--grid baselines/full.yaml] [--only-on]

Saving = wall(off) - wall(on); beside it the seconds the reused values once cost (the
memo's own account, ``shared_work.STATS``: each value's compute time, measured when it was
computed, times its reuses) and what was computed and reused. ``--only-on`` runs the grid
with sharing only (half the time): the saving is then the memo's account alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", default=str(ROOT / "baselines" / "full.yaml"))
    parser.add_argument("--out", default=str(ROOT / "results" / "shared_work"))
    parser.add_argument("--only-on", action="store_true")
    args = parser.parse_args()
    from hmtc_bench import shared_work
    from hmtc_bench.grid import load_grid, run_grid
    from hmtc_bench.tracking import Store
    os.chdir(ROOT)           # the grid's dataset folders are relative to the repository
    grid = load_grid(args.grid)
    rows, metrics = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for sharing in (True,) if args.only_on else (False, True):
            store = Store(f"sqlite:///{tmp}/{'on' if sharing else 'off'}.db")
            before = dict(shared_work.STATS)
            real_scope = shared_work.scope
            if not sharing:       # run_grid's scope made a no-op: nothing is memoised
                shared_work.scope = _no_scope
            try:
                start = time.perf_counter()
                counts = run_grid(grid, store, quiet=True)
                wall = time.perf_counter() - start
            finally:
                shared_work.scope = real_scope
            records = [r for r in store.records() if r.finished]
            metrics[sharing] = {(r.dataset, r.method, r.seed, r.decode):
                                r.metrics["micro_f1"] for r in records}
            rows.append({"sharing": "on" if sharing else "off", "cells": len(records),
                         "failed": counts["failed"], "wall_s": round(wall, 1),
                         "computed": shared_work.STATS["computed"] - before["computed"],
                         "reused": shared_work.STATS["reused"] - before["reused"],
                         "reused_cost_s": round(shared_work.STATS["seconds_saved"]
                                                - before["seconds_saved"], 1)})
            print(rows[-1], file=sys.stderr, flush=True)
    if not args.only_on:
        assert metrics[False] == metrics[True], "metrics differ with and without sharing"
        off, on = rows
        saving = off["wall_s"] - on["wall_s"]
        reference, how = off["wall_s"], "measured: wall with sharing off minus on"
    else:
        on = rows[0]
        saving = on["reused_cost_s"]
        reference, how = on["wall_s"] + saving, ("the memo's account: the compute time of "
                                                 "every reused value, measured when computed")
    result = {"grid": str(Path(args.grid).resolve().relative_to(ROOT)), "rows": rows,
              "saving_s": round(saving, 1), "saving_fraction": round(saving / reference, 3),
              "saving_is": how, "cpus": os.cpu_count()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    command = f"python benchmarks/shared_work_saving.py --grid {result['grid']}" + \
        (" --only-on" if args.only_on else "")
    lines = ["# Shared work: computed once per grid", "",
             f"`{command}` on {os.cpu_count()} cores, serial executor, into a new store"
             + ("" if args.only_on else "; the grid with sharing off, then on, in one run; "
                "the metrics of every run are identical") + ".", "",
             "| sharing | runs | wall s | values computed | reuses | their cost s |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['sharing']} | {row['cells']} | {row['wall_s']:.1f} | "
                     f"{row['computed']} | {row['reused']} | {row['reused_cost_s']:.1f} |")
    lines += ["", f"Saving: {saving:.1f} s of {reference:.1f} s "
                  f"({100 * saving / reference:.1f} %; {how})."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


class _no_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
