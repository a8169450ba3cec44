"""The msml design choices changed one at a time: ``results/msml_ablations_data.json`` and
the tables of ``results/msml_ablations.md`` (between ``<!-- ablations:start -->`` and
``<!-- ablations:end -->``; the reading by hand around them is kept).

Reads the msml runs of ``baselines/msml-ablations.yaml`` (one seed per change) and
``baselines/msml-ablations-seeds.yaml`` (the defaults on two more seeds) from their store
and writes, per corpus: each change's dev micro- and macro-F1 at threshold 0.5 against the
defaults on the same seed, that difference in units of the defaults' standard deviation over
seeds 0-2 (the noise a one-seed change is read against), and the test figures (micro- and
macro-F1 at 0.5 and with the policy best on dev, the tail labels' macro-F1, the inconsistency
ratio) with the fit seconds; then one line per change across the corpora; then every change
run on several seeds (``baselines/msml-new-defaults.yaml``) against the defaults on the same
seeds: mean ± std and the paired t-test's p per metric, at threshold 0.5 and with the policy
best on dev; then msml against its rivals at the same budget (flat-bert and hiagm,
``baselines/msml-budget-rival.yaml``), claim by claim of the paper (a table of all corpora
first, then one per corpus and rival), and against its module ablations at its defaults
(``baselines/msml-module-ablations.yaml``).

    hmtc-bench bench baselines/msml-ablations.yaml --executor processes --workers 2 \
        --tracking-uri sqlite:///results/ablations.db
    hmtc-bench bench baselines/msml-ablations-seeds.yaml --executor processes --workers 2 \
        --tracking-uri sqlite:///results/ablations.db
    hmtc-bench bench baselines/msml-new-defaults.yaml --executor processes --workers 2 \
        --tracking-uri sqlite:///results/ablations.db
    hmtc-bench bench baselines/msml-budget-rival.yaml --executor processes --workers 2 \
        --tracking-uri sqlite:///results/ablations.db
    hmtc-bench bench baselines/msml-module-ablations.yaml --executor processes --workers 2 \
        --tracking-uri sqlite:///results/ablations.db
    python benchmarks/msml_ablations.py --tracking-uri sqlite:///results/ablations.db
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean, stdev

from hmtc_bench.evaluation.significance import paired_seed_test
from hmtc_bench.methods import get_method
from hmtc_bench.record import canonical
from hmtc_bench.tracking import Store
from sections import write_section  # benchmarks/sections.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- ablations:start -->", "<!-- ablations:end -->"
METHOD = "msml"
# baselines/msml-budget-rival.yaml: the paper's rivals at msml's new budget
RIVALS = ("flat-bert", "hiagm")
# baselines/msml-module-ablations.yaml: msml at its defaults minus one module
ABLATIONS = ("msml-no-msfem", "msml-no-mlipm", "msml-no-hgm")
# the defaults the changes are made from: msml's before this study (its grids pin them)
BEFORE = {"max_length": 64, "epochs": 5}
NOISE = 2.0     # a change counts on a corpus when its dev difference exceeds 2 seed-stds
CLAIMS = ("micro_f1", "macro_f1", "deepest_macro_f1", "macro_f1_tail", "inconsistency_ratio")
SEEDED = ("dev_micro_f1", "dev_macro_f1", "micro_f1", "macro_f1", "macro_f1_tail",
          "inconsistency_ratio")


def change_name(params: dict) -> str:
    """A plain name for a change from the defaults (the corpus-specific lists named by what
    they do)."""
    if not params:
        return "defaults"
    parts = []
    for key, value in sorted(params.items()):
        if key == "kernel_sizes":
            first, last = value[0], value[-1]
            kind = ("uniform" if all(v == first for v in value)
                    else "reversed" if first[0] < last[0] else "custom")
            parts.append(f"kernel_sizes {kind} ({value})")
        elif key == "level_weights":
            rising = all(a < b for a, b in zip(value, value[1:]))
            parts.append(f"level_weights {'rising' if rising else 'custom'} ({value})")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def runs_of(store: Store) -> list[dict]:
    methods = (METHOD, *RIVALS, *ABLATIONS)
    # each method's defaults before this study: a run's "change" is what differs from them
    bases = {name: canonical({k: v for k, v in {**get_method(name)().get_params(),
                                                **BEFORE}.items() if k != "random_state"})
             for name in methods}
    out = []
    for record in store.records():
        if not record.finished or record.method not in methods:
            continue
        mine = record.identity_params()
        base = bases[record.method]
        change = {k: v for k, v in mine.items() if k in base and v != base[k]}
        m = record.metrics
        levels = [int(k.rsplit("_", 1)[1]) for k in m if k.startswith("macro_f1_level_")]
        out.append({"method": record.method, "dataset": Path(record.dataset).name,
                    "change": change_name(change),
                    "deepest_macro_f1": m.get(f"macro_f1_level_{max(levels)}") if levels
                    else None,
                    "params": change, "seed": record.seed, "decode": record.decode,
                    "dev_micro_f1": m.get("dev_micro_f1"), "dev_macro_f1": m.get("dev_macro_f1"),
                    "micro_f1": m.get("micro_f1"), "macro_f1": m.get("macro_f1"),
                    "macro_f1_tail": m.get("macro_f1_tail"),
                    "inconsistency_ratio": m.get("inconsistency_ratio"),
                    "fit_seconds": record.fit_seconds})
    return out


def _pick(runs, dataset, change, decode="threshold", method=METHOD):
    return {r["seed"]: r for r in runs if r["dataset"] == dataset and r["change"] == change
            and r["decode"] == decode and r["method"] == method}


def _best_decode(runs, dataset, change, seed, method=METHOD) -> dict | None:
    """The run of the policy with the highest dev micro-F1 (ties: the first in name order)."""
    rows = [r for r in runs if r["dataset"] == dataset and r["change"] == change
            and r["seed"] == seed and r["dev_micro_f1"] is not None and r["method"] == method]
    return max(sorted(rows, key=lambda r: r["decode"]), key=lambda r: r["dev_micro_f1"],
               default=None)


def _seeded(runs, dataset, change) -> dict | None:
    """A change on two or more seeds against the defaults on the same seeds, per metric, at
    threshold 0.5 and with the policy best on dev (per seed, for each of the two)."""
    base = _pick(runs, dataset, "defaults")
    seeds = sorted(set(_pick(runs, dataset, change)) & set(base))
    if len(seeds) < 2:
        return None
    row = {"change": change, "seeds": seeds}
    for decoding in ("threshold", "best on dev"):
        def value(which, seed, key, decoding=decoding):
            run = (_pick(runs, dataset, which)[seed] if decoding == "threshold"
                   else _best_decode(runs, dataset, which, seed))
            return run[key]
        for key in SEEDED:
            if decoding != "threshold" and key.startswith("dev_"):
                continue
            a = [value(change, seed, key) for seed in seeds]
            b = [value("defaults", seed, key) for seed in seeds]
            test = paired_seed_test(a, b)
            row[f"{decoding}: {key}"] = {"change": [mean(a), stdev(a)],
                                         "defaults": [mean(b), stdev(b)],
                                         "difference": test["mean_difference"],
                                         "p": test["p_value"]}
    return row


def _against(runs, dataset, other) -> list[dict]:
    """msml against another method in every configuration both ran on the same seeds (the
    rivals: each claim of the paper; the module ablations: what the module adds), at
    threshold 0.5 and with each one's policy best on dev. With one seed: the difference only
    (no spread, no p)."""
    out = []
    for change in sorted({r["change"] for r in runs if r["method"] == other
                          and r["dataset"] == dataset}):
        seeds = sorted(set(_pick(runs, dataset, change)) & set(
            _pick(runs, dataset, change, method=other)))
        if not seeds:
            continue
        row = {"other": other, "change": change, "seeds": seeds}
        for decoding in ("threshold", "best on dev"):
            def value(method, seed, key, decoding=decoding):
                run = (_pick(runs, dataset, change, method=method)[seed]
                       if decoding == "threshold"
                       else _best_decode(runs, dataset, change, seed, method))
                return run[key]
            for key in CLAIMS:
                a = [value(METHOD, seed, key) for seed in seeds]
                b = [value(other, seed, key) for seed in seeds]
                if None in a or None in b:
                    continue
                test = paired_seed_test(a, b) if len(seeds) > 1 else None
                row[f"{decoding}: {key}"] = {
                    "change": [mean(a), stdev(a) if len(a) > 1 else None],
                    "defaults": [mean(b), stdev(b) if len(b) > 1 else None],
                    "difference": mean(x - y for x, y in zip(a, b)),
                    "p": test["p_value"] if test else None}
        out.append(row)
    return out


def summarise(runs: list[dict]) -> dict:
    """Per corpus and change: the figures of the tables (see the module docstring)."""
    out = {}
    for dataset in sorted({r["dataset"] for r in runs}):
        base = _pick(runs, dataset, "defaults")
        if 0 not in base:
            continue
        spread = {k: stdev([r[k] for r in base.values()]) if len(base) > 1 else None
                  for k in ("dev_micro_f1", "dev_macro_f1")}
        rows = []
        for change in sorted({r["change"] for r in runs if r["dataset"] == dataset
                              and r["method"] == METHOD},
                             key=lambda c: (c != "defaults", c)):
            here = _pick(runs, dataset, change)
            if 0 not in here:
                continue
            run, best = here[0], _best_decode(runs, dataset, change, 0)
            row = {"change": change, "params": run["params"], "seeds": sorted(here)}
            for key in ("dev_micro_f1", "dev_macro_f1"):
                row[key] = run[key]
                row[f"{key}_diff"] = run[key] - base[0][key]
                row[f"{key}_z"] = (row[f"{key}_diff"] / spread[key]
                                   if spread[key] else None)
            for key in ("micro_f1", "macro_f1", "macro_f1_tail", "inconsistency_ratio",
                        "fit_seconds"):
                row[key] = run[key]
            row["best_decode"] = best["decode"] if best else None
            row["best_micro_f1"] = best["micro_f1"] if best else None
            rows.append(row)
        seeded = [_seeded(runs, dataset, change) for change in
                  sorted({r["change"] for r in runs if r["dataset"] == dataset
                              and r["method"] == METHOD})
                  if change != "defaults"]
        out[dataset] = {"seeded": [row for row in seeded if row],
                        "against": [row for other in (*RIVALS, *ABLATIONS)
                                    for row in _against(runs, dataset, other)],
                        "defaults_over_seeds": {
            k: {"mean": mean(r[k] for r in base.values()), "std": spread.get(k),
                "n": len(base)} if k in spread else None
            for k in ("dev_micro_f1", "dev_macro_f1")}, "rows": rows}
    return out


def _num(value, fmt=".4f") -> str:
    return "—" if value is None else format(value, fmt)


def _spread(pair) -> str:
    return f"{pair[0]:.4f}" + ("" if pair[1] is None else f" ± {pair[1]:.4f}")


def claims_table(summary: dict) -> list[str]:
    """The paper's claims at equal budget, every corpus and rival in one table: msml minus
    the rival per claim (inconsistency: lower is better), with the paired t-test's p."""
    rows = [(dataset, row) for dataset, part in summary.items() for row in part["against"]
            if row["other"] in RIVALS]
    if not rows:
        return []
    out = ["### The paper's claims at equal budget: msml minus each rival (p over seeds)", "",
           "| corpus | rival | budget | seeds | decoding | " + " | ".join(CLAIMS) + " |",
           "|---|---|---|---|---|" + "---|" * len(CLAIMS)]
    for dataset, row in rows:
        for decoding in ("threshold", "best on dev"):
            cells = []
            for key in CLAIMS:
                cell = row.get(f"{decoding}: {key}")
                cells.append("—" if cell is None else f"{cell['difference']:+.3f} "
                             f"({_num(cell['p'], '.3f')})")
            out.append(f"| {dataset} | {row['other']} | {row['change']} | "
                       f"{len(row['seeds'])} | {decoding} | " + " | ".join(cells) + " |")
    return out + [""]


def tables(summary: dict) -> str:
    out = [START, ""]
    for dataset, part in summary.items():
        d = part["defaults_over_seeds"]
        out += [f"### {dataset}", "",
                f"Defaults over seeds ({d['dev_micro_f1']['n']}): dev micro-F1 "
                f"{d['dev_micro_f1']['mean']:.4f} ± {_num(d['dev_micro_f1']['std'])}, dev "
                f"macro-F1 {d['dev_macro_f1']['mean']:.4f} ± {_num(d['dev_macro_f1']['std'])}."
                " Every row: seed 0; Δ against the defaults' seed 0; z = Δ / the defaults' std "
                "over seeds.", "",
                "| change | dev micro | Δ | z | dev macro | Δ | z | test micro | test macro "
                "| tail macro | incons. | best decode on dev: test micro | fit s |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in part["rows"]:
            out.append(
                f"| {row['change']} | {row['dev_micro_f1']:.4f} | "
                f"{row['dev_micro_f1_diff']:+.4f} | {_num(row['dev_micro_f1_z'], '+.1f')} | "
                f"{row['dev_macro_f1']:.4f} | {row['dev_macro_f1_diff']:+.4f} | "
                f"{_num(row['dev_macro_f1_z'], '+.1f')} | {_num(row['micro_f1'])} | "
                f"{_num(row['macro_f1'])} | {_num(row['macro_f1_tail'])} | "
                f"{_num(row['inconsistency_ratio'])} | {row['best_decode']}: "
                f"{_num(row['best_micro_f1'])} | {_num(row['fit_seconds'], '.0f')} |")
        out.append("")
    kinds = {}
    for dataset, part in summary.items():
        for row in part["rows"]:
            if row["change"] != "defaults":
                kind = row["change"].split(" (")[0]
                kinds.setdefault(kind, {})[dataset] = row
    datasets = list(summary)
    out += ["### Across corpora (dev micro-F1 Δ / z; macro-F1 Δ / z)", "",
            "| change | " + " | ".join(datasets) + " | more than noise on dev micro-F1 |",
            "|---|" + "---|" * len(datasets) + "---|"]
    for kind, per in sorted(kinds.items()):
        cells, helps, hurts = [], 0, 0
        for dataset in datasets:
            row = per.get(dataset)
            if row is None:
                cells.append("—")
                continue
            z = row["dev_micro_f1_z"]
            helps += z is not None and z > NOISE
            hurts += z is not None and z < -NOISE
            cells.append(f"{row['dev_micro_f1_diff']:+.3f} / {_num(z, '+.1f')}; "
                         f"{row['dev_macro_f1_diff']:+.3f} / "
                         f"{_num(row['dev_macro_f1_z'], '+.1f')}")
        verdict = (f"better on {helps} of {len(per)}" if helps else "") + \
            (("; " if helps else "") + f"worse on {hurts} of {len(per)}" if hurts else "")
        if not any(row["dev_micro_f1_z"] is not None for row in per.values()):
            verdict = "(no spread of the defaults yet)"
        out.append(f"| {kind} | " + " | ".join(cells) + f" | {verdict or 'no'} |")
    out.append("")
    out += claims_table(summary)
    for dataset, part in summary.items():
        sections = [(f"{row['change']} against the defaults", ("change", "defaults"), row)
                    for row in part["seeded"]]
        sections += [(f"msml against {row['other']}, both at {row['change']}",
                      (METHOD, row["other"]), row) for row in part["against"]]
        for title, (left, right), row in sections:
            out += [f"### {dataset}: {title}, seeds "
                    f"{', '.join(map(str, row['seeds']))}"
                    + (" (paired t-test over seeds)" if len(row["seeds"]) > 1
                       else " (one seed: no spread, no p)"), "",
                    f"| decoding | metric | {left} | {right} | Δ | p |",
                    "|---|---|---|---|---|---|"]
            for name, cell in row.items():
                if ": " not in name:
                    continue
                decoding, key = name.split(": ", 1)
                out.append(f"| {decoding} | {key} | {_spread(cell['change'])} | "
                           f"{_spread(cell['defaults'])} | {cell['difference']:+.4f} | "
                           f"{_num(cell['p'], '.3f')} |")
            out.append("")
    out += [END]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///results/ablations.db")
    parser.add_argument("--data", default=str(ROOT / "results" / "msml_ablations_data.json"))
    parser.add_argument("--out", default=str(ROOT / "results" / "msml_ablations.md"))
    args = parser.parse_args()
    runs = runs_of(Store(args.tracking_uri))
    summary = summarise(runs)
    Path(args.data).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1,
                                          sort_keys=True, default=str) + "\n", encoding="utf-8")
    text = tables(summary)
    path = Path(args.out)
    write_section(path, text, START, END, title='MSML design choices, one at a time')
    print(f"wrote {path} and {args.data}")


if __name__ == "__main__":
    main()
