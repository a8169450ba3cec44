"""The leaderboard: a pure function of stored run records.

One row per configuration (``hmtc_bench.record``: runs that differ only in their seed are
pooled): mean ± std over seeds, with n. Only finished runs count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from statistics import mean, stdev

from hmtc_bench.record import LEGACY_ADDED_PARAMS, RunRecord

COLUMNS = ("micro_f1", "macro_f1", "hier_f1", "macro_f1_tail", "inconsistency_ratio")
FORMATS = ("markdown", "csv", "html")
SECONDS_LIKE = ("fit_seconds", "predict_seconds", "peak_memory_mb")


def _deepest(metrics: dict) -> str | None:
    levels = [int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("macro_f1_level_")]
    return f"macro_f1_level_{max(levels)}" if levels else None


def leaderboard(records: list[RunRecord], columns=COLUMNS) -> list[dict]:
    """Rows sorted by dataset, then by mean micro-F1 (best first).

    A row is one configuration (``RunRecord.config_key``: method, identity parameters,
    dataset and hierarchy hashes, decoding policy and threshold); its runs are the finished
    runs of that configuration, one per seed (a seed recorded twice counts once: the first
    record given, the newest when read from a store)."""
    groups: dict[str, dict[str, RunRecord]] = defaultdict(dict)
    for record in records:
        if record.finished:
            groups[record.config_key].setdefault(record.cell_key, record)
    rows = []
    for key, cells in groups.items():
        runs = list(cells.values())
        first = runs[0]
        row = {"dataset": first.dataset, "dataset_hash": first.dataset_hash,
               "method": first.method, "decode": first.decode, "threshold": first.threshold,
               "n": len(runs), "seeds": sorted(r.seed for r in runs)}
        for column in list(columns) + ["fit_seconds"]:
            stats = _stats(runs, column)
            if stats:
                row[column] = stats
        deepest = _deepest(first.metrics)
        if deepest and deepest not in columns:
            row["deepest_level_macro_f1"] = _stats(runs, deepest)
        row["params"] = first.identity_params()
        row["omitted"] = {k: r.params[k] for r in reversed(runs) for k in r.omitted
                          if k in r.params}
        row["config_key"] = key
        row["run_ids"] = [r.run_id for r in runs]
        row["per_seed"] = {column: {(r.seed, r.split_seed): r.metrics[column] for r in runs
                                    if r.metrics.get(column) is not None}
                           for column in columns}
        if first.split_seed is not None:
            row["dataset_hash"] = first.corpus_hash or first.dataset_hash
            row["resampled"] = True
        rows.append(row)
    rows.sort(key=lambda r: (r["dataset"], -r.get("micro_f1", (0, 0))[0], r["method"],
                             r["decode"], json.dumps(r["params"], sort_keys=True)))
    return rows


SIGNIFICANCE_METRICS = ("micro_f1", "macro_f1")
ALPHA = 0.05


def mark_significance(rows: list[dict], metrics=SIGNIFICANCE_METRICS,
                      alpha: float = ALPHA) -> list[dict]:
    """Mark, per dataset and metric, the best row and every row not significantly worse
    than it: a paired t-test of the per-seed values over the seeds (and split seeds) both
    rows have (``evaluation.significance.paired_seed_test``), two-sided at ``alpha``. A row
    is untested (never marked, unless best) with fewer than 3 matched seeds, or when its
    per-seed differences have no spread (a fixed split and deterministic fits: the seeds
    are no sample of anything). Sets ``row["marks"]`` ({metric: "best" | "tied" |
    "worse" | "untested"}) and returns the rows."""
    from hmtc_bench.evaluation.significance import paired_seed_test
    groups: dict = defaultdict(list)
    for row in rows:
        groups[row["dataset"], row["dataset_hash"]].append(row)
    for group in groups.values():
        for metric in metrics:
            scored = [r for r in group if metric in r]
            if not scored:
                continue
            best = max(scored, key=lambda r: r[metric][0])
            for row in scored:
                marks = row.setdefault("marks", {})
                if row is best:
                    marks[metric] = "best"
                    continue
                seeds = sorted(set(row["per_seed"][metric]) & set(best["per_seed"][metric]),
                               key=str)
                a = [best["per_seed"][metric][s] for s in seeds]
                b = [row["per_seed"][metric][s] for s in seeds]
                diffs = [x - y for x, y in zip(a, b)]
                if len(seeds) >= 3 and max(abs(d) for d in diffs) < 1e-12:
                    marks[metric] = "tied"         # the same value on every seed
                    continue
                if len(seeds) < 3 or max(diffs) - min(diffs) < 1e-12:
                    marks[metric] = "untested"
                    continue
                p = paired_seed_test(a, b)["p_value"]
                marks[metric] = "tied" if p >= alpha else "worse"
    return rows


SIGNIFICANCE_NOTE = (
    "**Bold**: per dataset and metric (micro- and macro-F1), the best row and every row not "
    "significantly worse (two-sided paired t-test of the per-seed values over the seeds and "
    "split seeds both rows have, p >= 0.05; equal on every seed counts as not worse). Rows "
    "with fewer than 3 matched seeds, or whose per-seed differences from the best are one "
    "nonzero constant (a fixed split and deterministic fits), are not tested and not bold.")


def _stats(runs: list[RunRecord], column: str) -> tuple[float, float] | None:
    values = [r.metrics.get(column, getattr(r, column, None)) for r in runs]
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return mean(values), stdev(values) if len(values) > 1 else 0.0


def _cell(value, digits: int = 4, n: int = 2) -> str:
    """``mean ± std``; the mean alone for a single run (no spread to show)."""
    if isinstance(value, tuple):
        m, s = value
        return f"{m:.{digits}f}" if n == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"
    return str(value)


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    metric_cols = []
    for row in rows:
        for key, value in row.items():
            if isinstance(value, tuple) and key not in metric_cols and key != "fit_seconds":
                metric_cols.append(key)
    metric_cols.append("fit_seconds")
    header = ["dataset", "method", "decode", "n"] + metric_cols
    body = []
    for row in rows:
        cells = [_dataset_cell(row, rows), _method_cell(row, rows), row["decode"], str(row["n"])]
        for c in metric_cols:
            value = row.get(c)
            text = _cell(value, 1 if c in SECONDS_LIKE else 4, row["n"]) if value else ""
            if row.get("marks", {}).get(c) in ("best", "tied"):
                text = f"**{text}**"
            cells.append(text)
        body.append(cells)
    return header, body


def _csv_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Numbers as numbers: each metric as two columns, its mean and ``<metric>_std``."""
    header, _ = _table(rows)
    metric_cols = header[4:]
    out = ["dataset", "method", "decode", "n"]
    for c in metric_cols:
        out += [c, f"{c}_std"]
    body = []
    for row in rows:
        cells = [_dataset_cell(row, rows), _method_cell(row, rows), row["decode"], row["n"]]
        for c in metric_cols:
            m, s = row.get(c) or ("", "")
            cells += [m, s]
        body.append(cells)
    return out, body


def _method_cell(row: dict, rows: list[dict]) -> str:
    """The method name, with the parameters that tell it apart from rows of the same method
    (and the threshold, where rows differ in it)."""
    same = [r for r in rows if r["dataset"] == row["dataset"] and r["method"] == row["method"]]

    def value(other, k):
        return other["params"].get(k, other["omitted"].get(k, LEGACY_ADDED_PARAMS.get(k)))
    keys = sorted({k for r in same for k in r["params"]
                   if len({json.dumps(value(o, k), default=str) for o in same}) > 1})
    # floats (tuned values) at 4 significant digits, unless that makes two values look alike
    short = {k: len({_short(value(o, k)) for o in same})
             == len({json.dumps(value(o, k), default=str) for o in same}) for k in keys}
    shown = [f"{k}={_short(value(row, k)) if short[k] else str(value(row, k))}" for k in keys]
    if len({r["threshold"] for r in same}) > 1:
        shown.append(f"threshold={row['threshold']}")
    return f"{row['method']} ({', '.join(shown)})" if shown else row["method"]


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _dataset_cell(row: dict, rows: list[dict]) -> str:
    """The dataset name, with its hash where two different datasets share the name."""
    hashes = {r["dataset_hash"] for r in rows if r["dataset"] == row["dataset"]}
    name = row["dataset"] + (" (resampled splits)" if row.get("resampled") else "")
    return name if len(hashes) == 1 else f"{name} [{row['dataset_hash'][:8]}]"


def render(rows: list[dict], fmt: str = "markdown") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    if fmt == "csv":
        import csv
        import io
        out = io.StringIO()
        writer = csv.writer(out)
        header, body = _csv_table(rows)
        writer.writerow(header)
        writer.writerows(body)
        return out.getvalue()
    header, body = _table(rows)
    if fmt == "html":
        from html import escape
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        def td(c):
            if c.startswith("**") and c.endswith("**") and len(c) > 4:
                return f"<td><b>{escape(c[2:-2])}</b></td>"
            return f"<td>{escape(c)}</td>"
        lines = "".join("<tr>" + "".join(td(c) for c in cells) + "</tr>" for cells in body)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{lines}</tbody>\n</table>\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if any("marks" in row for row in rows):
        lines += ["", SIGNIFICANCE_NOTE]
    return "\n".join(lines) + "\n"
