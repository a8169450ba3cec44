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
SEED_PARAMS = ("random_state",)  # set from the run's seed: not a parameter of the row


def _deepest(metrics: dict) -> str | None:
    levels = [int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("macro_f1_level_")]
    return f"macro_f1_level_{max(levels)}" if levels else None


def leaderboard(records: list[dict], columns=COLUMNS) -> list[dict]:
    """Rows sorted by dataset, then by mean micro-F1 (best first)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("status") != "finished":
            continue
        params = {k: v for k, v in record.get("params", {}).items() if k not in SEED_PARAMS}
        key = (record["dataset"], record["method"], record["decode"],
               json.dumps(params, sort_keys=True, default=str))
        groups[key].append(record)
    rows = []
    for (dataset, method, decode, _), runs in groups.items():
        row = {"dataset": dataset, "method": method, "decode": decode, "n": len(runs),
               "seeds": sorted({r["seed"] for r in runs})}
        wanted = list(columns)
        deepest = _deepest(runs[0]["metrics"])
        if deepest and deepest not in wanted:
            wanted.append(deepest)
        for column in wanted + ["fit_seconds"]:
            values = [r["metrics"].get(column, r.get(column)) for r in runs]
            values = [float(v) for v in values if v is not None]
            if values:
                row[column] = (mean(values), stdev(values) if len(values) > 1 else 0.0)
        row["deepest_level_metric"] = deepest
        row["run_ids"] = [r.get("run_id") for r in runs]
        rows.append(row)
    rows.sort(key=lambda r: (r["dataset"], -r.get("micro_f1", (0, 0))[0]))
    return rows


def _cell(value, digits=4) -> str:
    if isinstance(value, tuple):
        m, s = value
        return f"{m:.{digits}f} ± {s:.{digits}f}"
    return str(value)


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    metric_cols = []
    for row in rows:
        for key, value in row.items():
            if isinstance(value, tuple) and key not in metric_cols:
                metric_cols.append(key)
    header = ["dataset", "method", "decode", "n"] + [
        "deepest_level_macro_f1" if c.startswith("macro_f1_level_") else c for c in metric_cols]
    body = []
    for row in rows:
        cells = [row["dataset"], row["method"], row["decode"], str(row["n"])]
        for c in metric_cols:
            if c.startswith("macro_f1_level_"):
                c = row.get("deepest_level_metric") or c
            value = row.get(c)
            digits = 1 if c == "fit_seconds" else 4
            cells.append(_cell(value, digits) if value is not None else "")
        body.append(cells)
    return header, body


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
