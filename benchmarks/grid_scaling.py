"""Wall time of one grid of classical cells (n_jobs 1 each) run serial, with the processes
executor (2 workers) and with Ray (a local instance of 2 CPUs), in one run of this script;
each into its own new sqlite store, so every cell runs. Writes results/grid_scaling.md and
.json. The cells' metrics must agree across executors (checked here).

    python benchmarks/grid_scaling.py [--dataset ../shared/datasets/wos-sample] [--seeds 5]

Speed-up = serial wall / executor wall. Ray overhead per cell = (Ray wall - processes wall)
/ cells, beside Ray's start-up (``ray.init`` of a local instance), reported on its own.
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
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared/datasets/wos-sample"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default="flat-svm,flat-logreg,local-node,local-parent")
    parser.add_argument("--out", default=str(ROOT / "results" / "grid_scaling"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from hmtc_bench.executors import ExecutorOptions
    from hmtc_bench.grid import load_grid, run_grid
    from hmtc_bench.tracking import Store
    methods = args.methods.split(",")
    spec = (f"name: scaling\ndatasets: [{args.dataset}]\nseeds: {list(range(args.seeds))}\n"
            f"decode: [threshold]\nmethods: [{', '.join(methods)}]\n")
    rows, metrics = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.yaml"
        path.write_text(spec)
        grid = load_grid(path)
        n = grid.n_cells
        for name, options in [("serial", ExecutorOptions()),
                              ("processes, 2 workers",
                               ExecutorOptions(executor="processes", workers=2)),
                              ("ray, 2 CPUs (local)", ExecutorOptions(executor="ray", workers=2))]:
            uri = f"sqlite:///{tmp}/{options.executor}.db"
            store = Store(uri)
            store.check()
            ray_start = None
            if options.executor == "ray":
                import ray
                begin = time.perf_counter()
                ray.init(num_cpus=2, include_dashboard=False, logging_level="warning",
                         log_to_driver=False)
                ray_start = time.perf_counter() - begin
            start = time.perf_counter()
            counts = run_grid(grid, store, quiet=True, executor=options)
            wall = time.perf_counter() - start
            assert counts["finished"] == n and not counts["failed"], counts
            records = [r for r in store.records() if r.finished]
            metrics[name] = {(r.method, r.seed): round(r.metrics["micro_f1"], 10)
                             for r in records}
            fit = sum(r.fit_seconds + r.predict_seconds for r in records)
            rows.append({"executor": name, "cells": n, "wall_s": round(wall, 2),
                         "fit_predict_s": round(fit, 2),
                         "ray_start_s": None if ray_start is None else round(ray_start, 2)})
            print(rows[-1], file=sys.stderr, flush=True)
    first = next(iter(metrics.values()))
    assert all(m == first for m in metrics.values()), "metrics differ across executors"
    serial = rows[0]["wall_s"]
    for row in rows:
        row["speedup"] = round(serial / row["wall_s"], 2)
    ray_overhead = (rows[2]["wall_s"] - rows[1]["wall_s"]) / n
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"dataset": args.dataset, "methods": methods, "seeds": args.seeds, "rows": rows,
              "ray_overhead_per_cell_s": round(ray_overhead, 3), "cpus": os.cpu_count()}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Grid scaling: serial, processes and Ray", "",
             f"`python benchmarks/grid_scaling.py` on {os.cpu_count()} cores: "
             f"{n} cells ({', '.join(methods)} x {args.seeds} seeds, n_jobs 1, decode "
             f"threshold) on `{Path(args.dataset).name}`, each executor into a new store, "
             "in one run. The metrics of every cell are identical across the three.", "",
             "| executor | cells | wall s | speed-up over serial | fit+predict s (sum) | "
             "Ray start-up s |", "|---|---|---|---|---|---|"]
    for row in rows:
        start = "" if row["ray_start_s"] is None else f"{row['ray_start_s']:.2f}"
        lines.append(f"| {row['executor']} | {row['cells']} | {row['wall_s']:.2f} | "
                     f"{row['speedup']:.2f}x | {row['fit_predict_s']:.2f} | {start} |")
    lines += ["", f"Ray overhead per cell over the processes executor: "
                  f"{ray_overhead:.3f} s (Ray start-up not included; it is in its column)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
