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
