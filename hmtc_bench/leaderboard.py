"""The leaderboard: a pure function of stored run records.

One row per dataset x method x decoding policy x parameters (runs that differ only in their
seed are pooled): mean ± std over seeds, with n. Only finished runs count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from statistics import mean, stdev

COLUMNS = ("micro_f1", "macro_f1", "hier_f1", "macro_f1_tail", "inconsistency_ratio")
FORMATS = ("markdown", "csv", "html")
SECONDS_LIKE = ("fit_seconds", "predict_seconds", "peak_memory_mb")
SEED_PARAMS = ("random_state",)  # set from the run's seed: not a parameter of the row
# Parameters added after runs were recorded, with the value that keeps the earlier
# behaviour. At that value a run's identity (its grid cell key, its leaderboard row) leaves
# the parameter out, so the runs recorded before it existed still count as the same
# configuration.
ADDED_PARAMS = {"precision": "auto"}


def identity_params(params: dict) -> dict:
    """``params`` without the added parameters that are at their earlier-behaviour value."""
    return {k: v for k, v in params.items()
            if not (k in ADDED_PARAMS and str(v) == str(ADDED_PARAMS[k]))}


def _deepest(metrics: dict) -> str | None:
    levels = [int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("macro_f1_level_")]
    return f"macro_f1_level_{max(levels)}" if levels else None


def leaderboard(records: list[dict], columns=COLUMNS) -> list[dict]:
    """Rows sorted by dataset, then by mean micro-F1 (best first)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("status") != "finished":
            continue
        params = {k: v for k, v in identity_params(record.get("params", {})).items()
                  if k not in SEED_PARAMS}
        key = (record["dataset"], record["method"], record["decode"],
               json.dumps(params, sort_keys=True, default=str))
        groups[key].append(record)
    rows = []
    for (dataset, method, decode, _), runs in groups.items():
        row = {"dataset": dataset, "method": method, "decode": decode, "n": len(runs),
               "seeds": sorted({r["seed"] for r in runs})}
        for column in list(columns) + ["fit_seconds"]:
            stats = _stats(runs, column)
            if stats:
                row[column] = stats
        deepest = _deepest(runs[0]["metrics"])
        if deepest and deepest not in columns:
            row["deepest_level_macro_f1"] = _stats(runs, deepest)
        row["params"] = {k: v for k, v in identity_params(runs[0].get("params", {})).items()
                         if k not in SEED_PARAMS}
        row["run_ids"] = [r.get("run_id") for r in runs]
        rows.append(row)
    rows.sort(key=lambda r: (r["dataset"], -r.get("micro_f1", (0, 0))[0]))
    return rows


def _stats(runs: list[dict], column: str) -> tuple[float, float] | None:
    values = [r["metrics"].get(column, r.get(column)) for r in runs]
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return mean(values), stdev(values) if len(values) > 1 else 0.0


def _cell(value, digits=4) -> str:
    if isinstance(value, tuple):
        m, s = value
        return f"{m:.{digits}f} ± {s:.{digits}f}"
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
        cells = [row["dataset"], _method_cell(row, rows), row["decode"], str(row["n"])]
        for c in metric_cols:
            value = row.get(c)
            cells.append(_cell(value, 1 if c in SECONDS_LIKE else 4) if value else "")
        body.append(cells)
    return header, body


def _method_cell(row: dict, rows: list[dict]) -> str:
    """The method name, with the parameters that tell it apart from rows of the same method."""
    same = [r for r in rows if r["dataset"] == row["dataset"] and r["method"] == row["method"]]
    def value(params, k):
        return params.get(k, ADDED_PARAMS.get(k))
    keys = sorted({k for r in same for k in r["params"]
                   if len({str(value(o["params"], k)) for o in same}) > 1})
    if not keys:
        return row["method"]
    return (f"{row['method']} ("
            + ", ".join(f"{k}={value(row['params'], k)}" for k in keys) + ")")


def render(rows: list[dict], fmt: str = "markdown") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    header, body = _table(rows)
    if fmt == "csv":
        import csv
        import io
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(body)
        return out.getvalue()
    if fmt == "html":
        from html import escape
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        lines = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
                        for cells in body)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{lines}</tbody>\n</table>\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"
