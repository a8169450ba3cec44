"""The reliability battery: every fault class of "Nothing lost, nothing pooled", run for real.

Runs the four batteries (the store, the data, parameters, neural checkpoints and training),
each case in a temporary folder, and writes ``results/reliability.md``: one row per case
with the command, what was expected, what was seen, and whether they agree. Exit 1 if any
case disagrees.

    python benchmarks/reliability.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

BATTERIES = [("The store", "reliability_store", "store_battery"),
             ("Data and hierarchies", "reliability_data", "data_battery"),
             ("Parameters and grid files", "reliability_params", "params_battery"),
             ("Neural checkpoints and training", "reliability_neural", "neural_battery")]


TMP = re.compile(re.escape(tempfile.gettempdir()) + r"/[^/\s|:'\"]+")


def _cell(text) -> str:
    """A table cell: pipes escaped, one line, temporary folders written $TMP."""
    return TMP.sub("$TMP", str(text)).replace("|", "\\|").replace("\n", " ")


def print_cases(rows: list[dict]) -> int:
    """Print a battery's cases (for running one battery alone); 1 if any disagrees."""
    for row in rows:
        print(f"{'ok  ' if row['ok'] else 'FAIL'} {row['case']}\n     $ {row['command']}\n"
              f"     expected: {row['expected']}\n     seen:     {row['seen']}")
    failed = sum(not row["ok"] for row in rows)
    print(f"{len(rows) - failed} of {len(rows)} cases as expected")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/reliability.md")
    args = parser.parse_args(argv)
    lines = ["# Reliability battery", "",
             "Every case below was run for real by `python benchmarks/reliability.py` "
             f"({dt.date.today().isoformat()}), each in a temporary folder; `ok` means what "
             "was seen is what was expected. The same classes of fault are asserted by the "
             "tests (`tests/test_store_faults.py`, `tests/test_data_faults.py`, "
             "`tests/test_params.py`, `tests/test_neural_faults.py`).", ""]
    failed = 0
    for title, module, function in BATTERIES:
        start = time.perf_counter()
        rows = getattr(importlib.import_module(module), function)()
        seconds = time.perf_counter() - start
        failed += sum(not r["ok"] for r in rows)
        print(f"{title}: {sum(r['ok'] for r in rows)}/{len(rows)} ok ({seconds:.0f} s)",
              file=sys.stderr)
        lines += [f"## {title} ({sum(r['ok'] for r in rows)} of {len(rows)} ok)", "",
                  "| case | command | expected | seen | ok |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(r['case'])} | `{_cell(r['command'])}` | {_cell(r['expected'])} | "
                  f"{_cell(r['seen'])} | {'ok' if r['ok'] else 'NO'} |" for r in rows]
        lines.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}; {failed} cases disagree", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
