"""The report fits the page: figures within the column, one colour per method, tables that
do not wrap; rendered by a real headless browser where Chromium is installed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from hmtc_bench.plots import MAX_WIDTH, method_colours
from hmtc_bench.record import load_records_file
from hmtc_bench.report import build_report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from report_screenshot import PAGE, figure_widths, screenshot  # noqa: E402

SAMPLE = Path(__file__).parent / "data" / "records_sample.jsonl"


def test_figures_fit_the_page_and_tables_do_not_wrap():
    html = build_report(load_records_file(SAMPLE))
    widths = figure_widths(html)
    assert widths and max(widths) <= MAX_WIDTH * 90 <= PAGE - 64
    assert "white-space:nowrap" in html and "img{max-width:100%" in html


def test_one_colour_per_method_the_same_everywhere():
    names = [f"method-{i}" for i in range(12)]
    colours = method_colours(names)
    assert len(set(colours.values())) == 12
    assert method_colours(reversed(names)) == colours          # order of appearance: no matter


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed")
def test_report_renders_in_a_headless_browser(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(build_report(load_records_file(SAMPLE)), encoding="utf-8")
    shot = screenshot(page, tmp_path / "shot.png", height=900)
    from PIL import Image
    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # not a blank page


def test_report_with_significance_ranks_methods_across_datasets(tmp_path):
    from typer.testing import CliRunner

    from hmtc_bench.cli import app
    from hmtc_bench.record import RunRecord, dump_records
    from hmtc_bench.report import rank_table
    records = []
    for d, dataset in enumerate(["d1", "d2", "d3"]):
        for m, method in enumerate(["good", "fair", "poor"]):
            for seed in range(3):
                records.append(RunRecord(method, dataset, seed, "threshold", 0.5, {}, f"h{d}",
                                         "hh", status="finished", started_at="2026-01-01",
                                         metrics={"micro_f1": 0.9 - 0.1 * m + 0.01 * seed,
                                                  "macro_f1": 0.5}))
    dump_records(records, tmp_path / "runs.jsonl")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--records", str(tmp_path / "runs.jsonl"),
                                      "--output", str(out), "--significance"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Across datasets" in page and "critical-difference" in page and "<b>" in page
    assert (tmp_path / "report_cd.png").stat().st_size > 1000
    datasets, methods, table = rank_table(
        __import__("hmtc_bench.leaderboard", fromlist=["x"]).leaderboard(records))
    assert methods == ["fair", "good", "poor"] and len(datasets) == 3


def test_decoding_chosen_on_dev_beside_the_fixed_threshold_and_threshold_curves(tmp_path):
    """Per configuration: micro-/macro-F1 at 0.5 beside those of the decoding with the best
    dev micro-F1; one figure of micro-F1 against the threshold per dataset."""
    from hmtc_bench.leaderboard import leaderboard
    from hmtc_bench.report import decoding_rows, threshold_curves
    from hmtc_bench.runner import run_decodings
    from hmtc_bench.tracking import Store
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    for seed in (0, 1):
        run_decodings("flat-logreg", "synthetic", seed, {"max_features": 2000},
                      ["threshold", "top-down", "tuned"], 0.5, store, quiet=True)
    records = store.records()
    rows = leaderboard(records)
    [row] = decoding_rows(rows, leaderboard(records, ("dev_micro_f1",)))
    by_policy = {}
    for record in records:
        by_policy.setdefault(record.decode, []).append(record.metrics["dev_micro_f1"])
    best = max(by_policy, key=lambda p: sum(by_policy[p]) / 2)
    assert row["chosen"]["decode"] == best
    assert row["chosen_dev"] == pytest.approx(sum(by_policy[best]) / 2)
    assert row["fixed"]["decode"] == "threshold"
    [(name, curve)] = threshold_curves(records, rows)
    assert name == "flat-logreg" and len(curve) == 19
    at_half = [r.metrics["micro_f1"] for r in records if r.decode == "threshold"]
    assert curve["0.50"] == pytest.approx(sum(at_half) / 2)
    html = build_report(records)
    assert "decoding chosen on dev" in html and "micro-F1 against the threshold" in html
