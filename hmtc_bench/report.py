"""A static HTML report from run records: per dataset, the leaderboard (mean ± std over
seeds, n), per-level F1 bars, macro-F1 against fit time, inconsistency, and links to the
MLflow runs. Plots are embedded as PNG, so the page is one self-contained file, and the same
records give the same bytes (the page is dated by its newest run, not by the clock)."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from hmtc_bench.leaderboard import leaderboard, render
from hmtc_bench.plots import (level_f1_figure, levels_of, method_colours, png_data_uri,
                              speed_figure, threshold_figure)
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


def _configuration(row: dict) -> str:
    """A row's configuration apart from its decoding."""
    import json
    return json.dumps([row["dataset_hash"], row["method"], row["params"], row["threshold"]],
                      sort_keys=True, default=str)


def decoding_rows(rows: list[dict], dev_rows: list[dict]) -> list[dict]:
    """Per configuration (its rows apart from the decoding): test micro- and macro-F1 at the
    fixed threshold (policy ``threshold``) beside those of the decoding chosen on dev (the
    highest mean dev micro-F1 of its rows; fitted policies were fitted on that same dev
    split). Without dev scores in the records, no choice."""
    from hmtc_bench.leaderboard import _method_cell
    dev = {r["config_key"]: r.get("dev_micro_f1") for r in dev_rows}
    families: dict = defaultdict(list)
    for row in rows:
        families[_configuration(row)].append(row)
    out = []
    for family in families.values():
        fixed = next((r for r in family if r["decode"] == "threshold"), None)
        scored = [r for r in family if dev.get(r["config_key"])]
        chosen = max(scored, key=lambda r: (dev[r["config_key"]][0], r["decode"] == "threshold"),
                     default=None)
        out.append({"method": _method_cell(family[0], rows), "fixed": fixed, "chosen": chosen,
                    "chosen_dev": dev[chosen["config_key"]][0] if chosen else None})
    return sorted(out, key=lambda r: -(r["chosen"] or r["fixed"] or {}).get(
        "micro_f1", (0, 0))[0])


def decoding_table(rows: list[dict], dev_rows: list[dict]) -> str:
    """``decoding_rows`` as an HTML table."""
    def cell(row, metric):
        return f"{row[metric][0]:.4f}" if row and metric in row else "—"
    lines = ["<table><tr><th>method</th><th>micro-F1 at 0.5</th><th>macro-F1 at 0.5</th>"
             "<th>decoding chosen on dev</th><th>its dev micro-F1</th><th>micro-F1</th>"
             "<th>macro-F1</th></tr>"]
    for r in decoding_rows(rows, dev_rows):
        chosen = r["chosen"]
        dev = "—" if r["chosen_dev"] is None else f"{r['chosen_dev']:.4f}"
        lines.append(
            f"<tr><td>{escape(r['method'])}</td><td>{cell(r['fixed'], 'micro_f1')}</td>"
            f"<td>{cell(r['fixed'], 'macro_f1')}</td>"
            f"<td>{escape(chosen['decode']) if chosen else 'no dev scores recorded'}</td>"
            f"<td>{dev}</td>"
            f"<td>{cell(chosen, 'micro_f1')}</td><td>{cell(chosen, 'macro_f1')}</td></tr>")
    lines.append("</table>")
    return "".join(lines)


def threshold_curves(records: list[RunRecord], rows: list[dict]) -> list[tuple[str, dict]]:
    """Per configuration with recorded curves: the test micro-F1 against the threshold,
    averaged over its seeds (one curve per fit: taken from its ``threshold`` records)."""
    from hmtc_bench.leaderboard import _method_cell
    label = {r["config_key"]: _method_cell(r, rows) for r in rows}
    by_config: dict = defaultdict(list)
    for record in records:
        if record.finished and record.threshold_curve and record.decode == "threshold" \
                and record.config_key in label:
            by_config[label[record.config_key]].append(record.threshold_curve)
    curves = []
    for name, found in sorted(by_config.items()):
        keys = sorted(set.intersection(*(set(c) for c in found)), key=float)
        curves.append((name, {k: sum(c[k] for c in found) / len(found) for k in keys}))
    return curves


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
    dev_rows = leaderboard(records, ("dev_micro_f1",))
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
        if len({r["decode"] for r in dataset_rows}) > 1:
            parts.append("<h3>Decoding: the fixed threshold 0.5 against the decoding chosen "
                         "on dev</h3>")
            parts.append(f"<div class='table'>{decoding_table(dataset_rows, dev_rows)}</div>")
        curves = threshold_curves(records, dataset_rows)
        if curves:
            parts.append(f"<img alt='micro-F1 against the threshold' src='"
                         f"{png_data_uri(threshold_figure(curves, title=dataset))}'>")
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
