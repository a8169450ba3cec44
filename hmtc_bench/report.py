"""A static HTML report from run records: per dataset, the leaderboard (mean ± std over
seeds, n), per-level F1 bars, macro-F1 against fit time, inconsistency, and links to the
MLflow runs. Plots are embedded as PNG, so the page is one self-contained file, and the same
records give the same bytes (the page is dated by its newest run, not by the clock)."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from hmtc_bench.leaderboard import leaderboard, render
from hmtc_bench.plots import (level_f1_figure, levels_of, method_colours, png_data_uri,
                              speed_figure)
from hmtc_bench.record import RunRecord


def _label(row: dict) -> str:
    return f"{row['method']} ({row['decode']})"


def _colours(rows: list[dict], palette: dict) -> dict:
    """Each row's label coloured by its method (the same colour in every figure)."""
    return {_label(r): palette[r["method"]] for r in rows}


def _level_figure(rows: list[dict], palette: dict):
    levels = levels_of({k for r in rows for k in r})
    groups = [(_label(r), {lv: r.get(f"macro_f1_level_{lv}", (0, 0)) for lv in levels})
              for r in rows]
    return level_f1_figure(groups, ylabel="macro-F1", colours=_colours(rows, palette),
                           hatched={_label(r) for r in rows if r["decode"] != "threshold"})


def _speed_figure(rows: list[dict], palette: dict):
    points = [(_label(r), r["fit_seconds"][0], r["macro_f1"][0]) for r in rows
              if "fit_seconds" in r and "macro_f1" in r]
    return speed_figure(points, _colours(rows, palette),
                        marked={_label(r) for r in rows if r["decode"] != "threshold"})


def rank_table(rows: list[dict], metric: str = "micro_f1"):
    """(datasets, methods, table): for every dataset and every method run on all of them,
    the mean ``metric`` of the method's best row there (best on test: optimistic for
    methods with many configurations)."""
    best: dict = defaultdict(dict)
    for row in rows:
        if metric in row:
            key = (row["dataset"], row["dataset_hash"])
            best[key][row["method"]] = max(best[key].get(row["method"], -1.0), row[metric][0])
    datasets = sorted(best)
    methods = sorted(set.intersection(*(set(m) for m in best.values()))) if best else []
    return datasets, methods, [[best[d][m] for m in methods] for d in datasets]


def ranks_section(rows: list[dict], metric: str = "micro_f1"):
    """HTML on the methods' average ranks across datasets (Friedman test, Nemenyi CD) and
    its critical-difference figure, or (None, None) with fewer than 2 datasets or 2
    methods in common."""
    from hmtc_bench.evaluation.significance import friedman
    from hmtc_bench.plots import cd_figure
    datasets, methods, table = rank_table(rows, metric)
    if len(datasets) < 2 or len(methods) < 2:
        return None, None
    result = friedman(table)
    figure = cd_figure(methods, result["ranks"], result["cd"],
                       f"average ranks by {metric} over {len(datasets)} datasets")
    p = result["p_value"]
    test = ("Friedman test: chi2 = {:.2f}, p = {:.3g}".format(result["statistic"], p)
            if p is not None else "the Friedman test needs 3 methods or more")
    html = (f"<h2>Across datasets ({escape(metric)})</h2><p>Average ranks (1 = best) of the "
            f"{len(methods)} methods run on all {len(datasets)} datasets, each by its best row "
            f"per dataset; {test}; Nemenyi critical difference at alpha 0.05: "
            f"{result['cd']:.2f} (Demšar 2006): methods joined by a bar do not differ "
            "significantly.</p>")
    return html, figure


def build_report(records: list[RunRecord], ui_url: str = "http://127.0.0.1:5000",
                 significance: bool = False) -> str:
    """The report; ``significance``: the leaderboards mark the best rows and those not
    significantly worse, and a section ranks the methods across datasets."""
    levels = levels_of({k for r in records for k in r.metrics})
    columns = ("micro_f1", "macro_f1", "hier_f1", "macro_f1_tail", "inconsistency_ratio",
               *[f"macro_f1_level_{k}" for k in levels])
    rows = leaderboard(records, columns)
    if significance:
        from hmtc_bench.leaderboard import mark_significance
        mark_significance(rows)
    by_dataset = defaultdict(list)
    for row in rows:
        by_dataset[row["dataset"]].append(row)
    palette = method_colours(r["method"] for r in rows)
    experiment_of = {r.run_id: r.experiment_id for r in records}
    newest = max((r.started_at for r in records if r.started_at), default="")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hmtc-bench report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right;white-space:nowrap}th{background:#eee}"
        "td:nth-child(-n+3){text-align:left}img{max-width:100%;height:auto;display:block;"
        "margin:8px 0}.table{overflow-x:auto}</style></head><body>",
        "<h1>hmtc-bench report</h1>",
        f"<p>{len(records)} runs, the newest started {escape(newest)}. Rows pool the runs "
        "that differ only in their seed: mean ± std over seeds, with n. Metric definitions: "
        "README.</p>",
    ]
    for dataset, dataset_rows in sorted(by_dataset.items()):
        parts.append(f"<h2>{escape(dataset)}</h2>")
        parts.append(f"<div class='table'>{render(dataset_rows, 'html')}</div>")
        parts.append(f"<img alt='per-level macro-F1' "
                     f"src='{png_data_uri(_level_figure(dataset_rows, palette))}'>")
        parts.append(f"<img alt='macro-F1 against fit time' "
                     f"src='{png_data_uri(_speed_figure(dataset_rows, palette))}'>")
        links = []
        for row in dataset_rows:
            runs = " ".join(
                f"<a href='{ui_url}/#/experiments/{experiment_of.get(rid)}/runs/{rid}'>"
                f"{escape(str(rid)[:8])}</a>" for rid in row["run_ids"] if rid)
            links.append(f"<li>{escape(row['method'])} ({escape(row['decode'])}): {runs}</li>")
        parts.append("<details><summary>MLflow runs (start <code>hmtc-bench ui</code>)"
                     f"</summary><ul>{''.join(links)}</ul></details>")
    if significance:
        html, figure = ranks_section(rows)
        if html:
            parts += [html, f"<img alt='critical-difference diagram' "
                            f"src='{png_data_uri(figure)}'>"]
    parts.append("</body></html>")
    return "\n".join(parts)
