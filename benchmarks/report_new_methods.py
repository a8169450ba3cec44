"""The methods after HiAGM (hitin, cond-softmax, knn) beside msml, hiagm and flat-bert.

Reads the run records of ``baselines/new-methods.yaml`` (exported to ``results/runs-neural``)
and writes, between the markers ``<!-- new-methods:start -->`` and ``<!-- new-methods:end
-->`` of ``results/global_baselines.md`` (the rest of the file is kept), per corpus:

* the new methods' rows at the fixed threshold 0.5 and top-down (mean ± std over 3 seeds,
  with fit and predict seconds), and each configuration's decoding chosen on dev (the
  policy with the best mean dev micro-F1, ``hmtc_bench.report.decoding_rows``);
* round 1's msml, hiagm (MiniLM) and flat-bert rows at the same encoder budget, copied
  from ``results/leaderboard_round1.md`` (their store was not kept, so they cannot be
  recomputed or paired per seed; marked "round 1").

    hmtc-bench export results/runs-neural --tracking-uri sqlite:///results/neural.db
    python benchmarks/report_new_methods.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hmtc_bench.leaderboard import leaderboard
from hmtc_bench.record import load_records_file
from hmtc_bench.report import decoding_rows
from sections import write_section  # benchmarks/sections.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- new-methods:start -->", "<!-- new-methods:end -->"
COLUMNS = ("micro_f1", "macro_f1", "hier_f1", "macro_f1_tail", "inconsistency_ratio")
SHOWN = ("micro_f1", "macro_f1", "hier_f1", "macro_f1_tail", "inconsistency_ratio",
         "deepest_level_macro_f1", "fit_seconds", "predict_seconds")
ROUND1 = {"msml", "flat-bert", "hiagm"}
DATASETS = ["wos-sample", "amazon-sample", "rcv1-v2-dev", "icd10cm", "reuters21578",
            "20newsgroups"]


def _cell(stats, digits=4) -> str:
    if not stats:
        return "—"
    mean, std = stats
    if digits == 1:
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.4f} ± {std:.4f}"


def round1_rows(path: Path) -> dict[str, list[list[str]]]:
    """Round 1's msml / hiagm (MiniLM) / flat-bert rows (threshold and top-down) per dataset,
    as the cells of its table: method, decode, n, micro, macro, hier, tail, inconsistency,
    deepest macro, fit seconds."""
    rows: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 11 or cells[0] == "dataset" or set(cells[0]) <= {"-"}:
            continue
        dataset, method = cells[0], cells[1]
        name = method.split(" (")[0]
        if name not in ROUND1 or cells[2] not in ("threshold", "top-down"):
            continue
        if any(word in method for word in ("textrcnn", "bf16", "n_filters=64")):
            continue
        rows.setdefault(dataset, []).append(cells[1:])
    return rows


def section(records) -> str:
    from hmtc_bench.leaderboard import _method_cell
    board = leaderboard(records, (*COLUMNS, "predict_seconds"))
    dev = leaderboard(records, ("dev_micro_f1",))
    old = round1_rows(ROOT / "results" / "leaderboard_round1.md")
    out = [START, "",
           "## Round 2: the methods after HiAGM (hitin, cond-softmax, knn)", "",
           "Produced by:", "", "```",
           "hmtc-bench bench baselines/new-methods.yaml --executor processes --workers 2 \\",
           "    --tracking-uri sqlite:///results/neural.db",
           "hmtc-bench export results/runs-neural --tracking-uri sqlite:///results/neural.db",
           "python benchmarks/report_new_methods.py", "```", "",
           "Encoder budget as msml's in round 1: MiniLM-L6, top 2 layers trained over the "
           "cached bottom 4, 64 tokens; 5 epochs (early stopping on dev micro-F1), 2 on "
           "Reuters-21578 and 20 Newsgroups; knn trains nothing (k = 10). 3 seeds; fit and "
           "predict seconds on the shared 2-core machine, two cells at a time (processes "
           "executor, one torch thread each). Rows marked *round 1* are copied from "
           "`leaderboard_round1.md` (same budget; their store was not kept: no per-seed "
           "pairing, no predict seconds). Columns: micro-F1, macro-F1, hierarchical F1, "
           "tail macro-F1, inconsistency ratio, deepest level's macro-F1, fit s, predict s.",
           ""]
    for dataset in DATASETS:
        rows = [r for r in board if r["dataset"] == dataset and r["decode"] in
                ("threshold", "top-down")]
        if not rows and dataset not in old:
            continue
        out += [f"### {dataset}", "",
                "| method | decode | n | micro | macro | hier | tail | incons. | deepest | fit s "
                "| predict s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines = []
        for row in rows:
            lines.append((row["micro_f1"][0], "| " + " | ".join(
                [_method_cell(row, board), row["decode"], str(row["n"])]
                + [_cell(row.get(c), 1 if c.endswith("seconds") else 4) for c in SHOWN])
                + " |"))
        for cells in old.get(dataset, []):
            micro = float(cells[3].split(" ")[0])
            lines.append((micro, "| " + " | ".join(
                [f"{cells[0]} *round 1*", *cells[1:], "—"]) + " |"))
        out += [line for _, line in sorted(lines, key=lambda x: -x[0])]
        chosen = decoding_rows([r for r in board if r["dataset"] == dataset],
                               [r for r in dev if r["dataset"] == dataset])
        if chosen:
            out += ["", "Decoding chosen on dev (best mean dev micro-F1 of the 7 policies) "
                    "against the fixed 0.5:", "",
                    "| method | micro at 0.5 | macro at 0.5 | chosen | dev micro | micro "
                    "| macro |", "|---|---|---|---|---|---|---|"]
            for r in chosen:
                c, f = r["chosen"], r["fixed"]
                dev_micro = "—" if r["chosen_dev"] is None else f"{r['chosen_dev']:.4f}"
                out.append(f"| {r['method']} | {_cell(f and f.get('micro_f1'))} | "
                           f"{_cell(f and f.get('macro_f1'))} | {c['decode'] if c else '—'} | "
                           f"{dev_micro} | {_cell(c and c.get('micro_f1'))} | "
                           f"{_cell(c and c.get('macro_f1'))} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(ROOT / "results" / "runs-neural"))
    parser.add_argument("--out", default=str(ROOT / "results" / "global_baselines.md"))
    args = parser.parse_args()
    records = load_records_file(args.records)
    text = section(records)
    path = Path(args.out)
    write_section(path, text, START, END)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
