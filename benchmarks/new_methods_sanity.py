"""Sanity check of the methods after HiAGM on the synthetic corpus: each against flat-bert at
the same encoder budget (the encoder methods' defaults: MiniLM-L6, 64 tokens, top 2 layers
trained over the cached bottom, 5 epochs), 3 seeds, decoded at threshold 0.5. Writes
results/new_methods_sanity.md and .json: micro / macro-F1 overall and at the deepest level,
fit and predict seconds, mean and std over seeds.

    python benchmarks/new_methods_sanity.py [--methods flat-bert,hitin,...] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="flat-bert,hitin,cond-softmax,knn")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "results" / "new_methods_sanity"))
    args = parser.parse_args()
    from hmtc_bench import shared_work
    from hmtc_bench.data import load_dataset
    from hmtc_bench.runner import run_decodings
    data = load_dataset("synthetic")
    deep = data.hierarchy.depth
    keys = ["micro_f1", "macro_f1", f"micro_f1_level_{deep}", f"macro_f1_level_{deep}"]
    rows = {}
    with shared_work.scope():      # as in a grid: tokens and frozen states computed once
        for method in args.methods.split(","):
            runs = []
            for seed in range(args.seeds):
                record = run_decodings(method, data, seed, {"progress": False},
                                       ["threshold"], track=False, quiet=True)[0]
                runs.append({**{k: record.metrics[k] for k in keys},
                             "fit_s": record.fit_seconds, "predict_s": record.predict_seconds})
                print(method, seed, runs[-1], flush=True)
            rows[method] = {k: (statistics.mean(r[k] for r in runs),
                                statistics.pstdev(r[k] for r in runs)) for k in runs[0]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"dataset": "synthetic", "seeds": args.seeds, "deepest_level": deep, "rows": rows},
        indent=2) + "\n")
    lines = ["# The methods after HiAGM on the synthetic corpus", "",
             f"`python benchmarks/new_methods_sanity.py --methods {args.methods} --seeds "
             f"{args.seeds}`: the encoder methods' defaults (the same encoder budget), "
             f"threshold 0.5, mean ± std over {args.seeds} seeds; level {deep} is the "
             "deepest.", "",
             f"| method | micro-F1 | macro-F1 | micro-F1 level {deep} | macro-F1 level {deep} "
             "| fit s | predict s |", "|---|---|---|---|---|---|---|"]
    for method, row in rows.items():
        cells = [f"{row[k][0]:.3f} ± {row[k][1]:.3f}" for k in keys]
        lines.append(f"| {method} | " + " | ".join(cells) +
                     f" | {row['fit_s'][0]:.1f} | {row['predict_s'][0]:.1f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
