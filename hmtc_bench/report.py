"""A static HTML report from stored run records: per dataset, the leaderboard (mean ± std
over seeds, n), per-level F1 bars, macro-F1 against fit time, inconsistency, and links to the
MLflow runs. Plots are embedded as PNG, so the page is one self-contained file."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections import defaultdict
from html import escape

from hmtc_bench.leaderboard import leaderboard, render


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _level_plot(rows: list[dict]):
    import matplotlib.pyplot as plt
    levels = sorted({int(k.rsplit("_", 1)[1]) for r in rows for k in r
                     if k.startswith("macro_f1_level_")})
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(rows)), 3.2))
    width = 0.8 / max(1, len(levels))
    for j, level in enumerate(levels):
        values = [r.get(f"macro_f1_level_{level}", (0, 0)) for r in rows]
        ax.bar([i + j * width for i in range(len(rows))], [v[0] for v in values], width,
               yerr=[v[1] for v in values], label=f"level {level}")
    ax.set_xticks([i + width * (len(levels) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels([f"{r['method']}\n{r['decode']}" for r in rows], fontsize=7)
    ax.set_ylabel("macro-F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _speed_plot(rows: list[dict]):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for r in rows:
        if "fit_seconds" in r and "macro_f1" in r:
            ax.scatter(r["fit_seconds"][0], r["macro_f1"][0])
            ax.annotate(f"{r['method']} ({r['decode']})", (r["fit_seconds"][0], r["macro_f1"][0]),
                        fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds (log)")
    ax.set_ylabel("macro-F1")
    fig.tight_layout()
    return fig


def build_report(records: list[dict], ui_url: str = "http://127.0.0.1:5000") -> str:
    import matplotlib
    matplotlib.use("Agg")
    levels = sorted({int(k.rsplit("_", 1)[1]) for r in records for k in r.get("metrics", {})
                     if k.startswith("macro_f1_level_")})
    columns = ("micro_f1", "macro_f1", "hier_f1", "macro_f1_tail", "inconsistency_ratio",
               *[f"macro_f1_level_{k}" for k in levels])
    rows = leaderboard(records, columns)
    by_dataset = defaultdict(list)
    for row in rows:
        by_dataset[row["dataset"]].append(row)
    experiment_of = {r.get("run_id"): r.get("experiment_id") for r in records}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hmtc-bench report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right}th{background:#eee}td:nth-child(-n+3){text-align:left}"
        "</style></head><body>",
        "<h1>hmtc-bench report</h1>",
        f"<p>{len(records)} stored runs, generated "
        f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}. Rows pool the runs "
        "that differ only in their seed: mean ± std over seeds, with n. Metric definitions: "
        "README.</p>",
    ]
    for dataset, dataset_rows in sorted(by_dataset.items()):
        parts.append(f"<h2>{escape(dataset)}</h2>")
        parts.append(render(dataset_rows, "html"))
        parts.append(f"<img alt='per-level macro-F1' src='{_png(_level_plot(dataset_rows))}'>")
        parts.append(f"<img alt='macro-F1 against fit time' "
                     f"src='{_png(_speed_plot(dataset_rows))}'>")
        links = []
        for row in dataset_rows:
            runs = " ".join(
                f"<a href='{ui_url}/#/experiments/{experiment_of.get(rid)}/runs/{rid}'>"
                f"{escape(str(rid)[:8])}</a>" for rid in row["run_ids"] if rid)
            links.append(f"<li>{escape(row['method'])} ({escape(row['decode'])}): {runs}</li>")
        parts.append("<details><summary>MLflow runs (start <code>hmtc-bench ui</code>)"
                     f"</summary><ul>{''.join(links)}</ul></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
