"""The report as a reader sees it: ``results/report.html`` rendered by headless Chromium at
1,280 px, the top of the page saved as ``results/report_1280.png``, and every embedded figure
checked to fit the page (its width in pixels against the page's 1,200 px column).

    python benchmarks/report_screenshot.py          # needs chromium (Debian: apt install chromium)
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

PAGE = 1200       # the report's max-width (px), margins included
WINDOW = 1280


def figure_widths(html: str) -> list[int]:
    """The pixel widths of the PNG figures embedded in a report."""
    widths = []
    for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html):
        header = base64.b64decode(data[:64])
        widths.append(struct.unpack(">I", header[16:20])[0])
    return widths


def screenshot(html_path: Path, out: Path, height: int = 2400) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed (Debian: apt install chromium)")
    subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={WINDOW},{height}",
                    f"--screenshot={out.resolve()}", html_path.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", default="results/report.html")
    parser.add_argument("--out", default="results/report_1280.png")
    args = parser.parse_args(argv)
    html = Path(args.report).read_text(encoding="utf-8")
    widths = figure_widths(html)
    too_wide = [w for w in widths if w > PAGE - 64]
    print(f"{len(widths)} figures, widest {max(widths, default=0)} px "
          f"(page column {PAGE - 64} px): {len(too_wide)} too wide")
    shot = screenshot(Path(args.report), Path(args.out))
    print(f"wrote {shot}")
    return 1 if too_wide else 0


if __name__ == "__main__":
    sys.exit(main())
