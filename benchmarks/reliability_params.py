"""Reliability battery: parameter values, thresholds and grid shapes are checked before any
work.

``params_battery()`` runs each case for real (the typer app in this process, a temporary
store per case, the Python API) and returns one dict per case: ``case``, ``command`` (what
a user would type), ``expected``, ``seen`` (the first line of the output, and whether data
was loaded or runs were stored) and ``ok``. A refusal is ok when the command fails with the
expected one-line message, loaded no dataset and stored no run; an acceptance is ok when the
value arrives converted (``1e-3`` -> 0.001). Run as a script, it prints the table and exits
1 if a case is not ok::

    python benchmarks/reliability_params.py
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from unittest import mock

RUN = ["run", "--method", "flat-svm", "--dataset", "synthetic"]
OK_GRID = "datasets: [synthetic]\nmethods: [flat-svm]\n"

# (case, command-line arguments or None for a grid/API case, grid text, expected)
REFUSED_RUNS = [
    ("a word for a number", ["--param", "C=abc"],
     "flat-svm: parameter C=abc: must be a number > 0"),
    ("a number out of range", ["--param", "C=-1"],
     "flat-svm: parameter C=-1: must be a number > 0"),
    ("a word for an integer", ["--param", "ngram_max=two"],
     "flat-svm: parameter ngram_max=two: must be an integer >= 1"),
    ("a value not among the choices", ["--param", "class_weight=auto"],
     "flat-svm: parameter class_weight=auto: must be balanced or None"),
    ("an unknown parameter", ["--param", "gamma=1"], "flat-svm has no parameter 'gamma'"),
    ("a threshold above 1", ["--threshold", "1.5"], "--threshold 1.5: must be a number in [0, 1]"),
    ("a threshold that is not a number", ["--threshold", "nan"],
     "--threshold nan: must be a number in [0, 1]"),
    ("a negative seed", ["--seed", "-1"], "--seed -1: must be an integer >= 0"),
]
REFUSED_GRIDS = [
    ("grid: a word for a number", "datasets: [synthetic]\nmethods:\n"
     "  - {method: flat-svm, params: {C: abc}}\n",
     "methods entry 1 (flat-svm): parameter C=abc: must be a number > 0"),
    ("grid: a number out of range on an axis", "datasets: [synthetic]\nmethods:\n"
     "  - {method: flat-svm, grid: {C: [1.0, -1]}}\n",
     "methods entry 1 (flat-svm): parameter C=-1: must be a number > 0"),
    ("grid: a bad estimator parameter", "datasets: [synthetic]\nmethods:\n"
     "  - {method: local-node, params: {estimator_params: {C: 0}}}\n",
     "parameter estimator_params={'C': 0}: C for estimator 'svm' must be a number > 0"),
    ("grid: a neural parameter out of range", "datasets: [synthetic]\nmethods:\n"
     "  - {method: msml, params: {epochs: 0}}\n",
     "methods entry 1 (msml): parameter epochs=0: must be an integer >= 1"),
    ("grid: datasets a scalar", "datasets: synthetic\nmethods: [flat-svm]\n",
     "'datasets' must be a non-empty list (got 'synthetic')"),
    ("grid: methods a mapping", "datasets: [synthetic]\nmethods: {method: flat-svm}\n",
     "'methods' must be a non-empty list"),
    ("grid: a seed that is not an integer", "datasets: [synthetic]\nseeds: [0, a]\n"
     "methods: [flat-svm]\n", "'seeds' entry a: must be an integer >= 0"),
    ("grid: a threshold above 1", "datasets: [synthetic]\nthreshold: 1.5\nmethods: [flat-svm]\n",
     "threshold 1.5: must be a number in [0, 1]"),
    ("grid: a threshold that is not a number", "datasets: [synthetic]\nthreshold: .nan\n"
     "methods: [flat-svm]\n", "threshold nan: must be a number in [0, 1]"),
    ("grid: params a list", "datasets: [synthetic]\nmethods:\n"
     "  - {method: flat-svm, params: [C]}\n",
     "methods entry 1 (flat-svm): 'params' must be a mapping"),
    ("grid: a grid axis a scalar", "datasets: [synthetic]\nmethods:\n"
     "  - {method: flat-svm, grid: {C: 1}}\n",
     "methods entry 1 (flat-svm): grid axis 'C' must be a non-empty list"),
]
REFUSED_API = [
    ("API: a number out of range", "flat-svm", {"C": -1},
     "flat-svm: parameter C=-1: must be a number > 0"),
    ("API: a word for an integer", "local-node", {"ngram_max": "two"},
     "local-node: parameter ngram_max=two: must be an integer >= 1"),
    ("API: a bad estimator parameter", "local-node", {"estimator_params": {"tol": -1}},
     "parameter estimator_params={'tol': -1}: tol for estimator 'svm' must be a number > 0"),
    ("API: a neural choice", "hiagm", {"output": "flat"},
     "hiagm: parameter output=flat: must be per-node or flatten"),
]


@contextlib.contextmanager
def _watch_loading():
    """Count the datasets loaded (the loader still runs)."""
    import hmtc_bench.data
    import hmtc_bench.runner
    loaded: list[str] = []
    real = hmtc_bench.data.load_dataset

    def counting(name, *args, **kwargs):
        loaded.append(str(name))
        return real(name, *args, **kwargs)
    with mock.patch.object(hmtc_bench.data, "load_dataset", counting), \
            mock.patch.object(hmtc_bench.runner, "load_dataset", counting):
        yield loaded


def _records(db: Path) -> list:
    from hmtc_bench.tracking import Store
    return Store(f"sqlite:///{db}").records() if db.exists() else []


def _invoke(args: list[str]):
    from typer.testing import CliRunner

    from hmtc_bench.cli import app
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    return result.exit_code, (lines[0] if lines else ""), len(lines)


def _refusal(case, command, args, expected, db, loaded) -> dict:
    before = len(loaded)
    code, first, n_lines = _invoke(args)
    runs = len(_records(db))
    data = len(loaded) - before
    seen = f"exit {code}: {first}" + (f" [+{n_lines - 1} lines]" if n_lines > 1 else "")
    seen += f"; datasets loaded: {data}; runs stored: {runs}"
    ok = code == 1 and expected in first and n_lines == 1 and data == 0 and runs == 0
    return {"case": case, "command": command, "expected": f"refused: {expected}",
            "seen": seen, "ok": ok}


def params_battery() -> list[dict]:
    """Run every case; one dict per case (see the module docstring)."""
    from hmtc_bench.grid import load_grid
    from hmtc_bench.methods import make_method
    out = []
    with tempfile.TemporaryDirectory(prefix="hmtc-params-") as tmp, _watch_loading() as loaded:
        tmp = Path(tmp)
        for i, (case, extra, expected) in enumerate(REFUSED_RUNS):
            db = tmp / f"run{i}.db"
            args = [*RUN, *extra, "--tracking-uri", f"sqlite:///{db}"]
            out.append(_refusal(case, "hmtc-bench " + " ".join(RUN + extra), args, expected,
                                db, loaded))
        for i, (case, text, expected) in enumerate(REFUSED_GRIDS):
            grid = tmp / f"grid{i}.yaml"
            grid.write_text(text, encoding="utf-8")
            for dry in (["--dry-run"], []):
                db = tmp / f"grid{i}{'-dry' if dry else ''}.db"
                command = (f"hmtc-bench bench g.yaml {' '.join(dry)}".strip()
                           + f"   # g.yaml: {text.strip()!r}")
                out.append(_refusal(f"{case}{' (dry run)' if dry else ''}", command,
                                    ["bench", str(grid), *dry, "--tracking-uri",
                                     f"sqlite:///{db}"], expected, db, loaded))
        for case, name, params, expected in REFUSED_API:
            try:
                make_method(name, params)
                seen = "accepted"
            except Exception as err:  # noqa: BLE001 (what it raised is the finding)
                seen = f"{type(err).__name__}: {err}"
            out.append({"case": case, "command": f"make_method({name!r}, {params!r})",
                        "expected": f"ParameterError: {expected}", "seen": seen,
                        "ok": seen.startswith(("ParameterError", "InvalidParameterError"))
                        and expected in seen})
        # accepted, and converted
        method = make_method("flat-svm", {"C": "1e-3"})
        out.append({"case": "API: a numeric string for a number",
                    "command": "make_method('flat-svm', {'C': '1e-3'})",
                    "expected": "C == 0.001", "seen": f"C == {method.C!r}",
                    "ok": method.C == 0.001})
        grid = tmp / "exp.yaml"
        grid.write_text("datasets: [synthetic]\nseeds: 0\nmethods:\n"
                        "  - {method: flat-svm, params: {C: 1e-3}}\n", encoding="utf-8")
        spec = load_grid(grid)
        out.append({"case": "grid: 1e-3 and a scalar seed",
                    "command": "load_grid('g.yaml')   # C: 1e-3, seeds: 0",
                    "expected": "C == 0.001, seeds == [0]",
                    "seen": f"C == {spec.methods[0][1]['C']!r}, seeds == {spec.seeds}",
                    "ok": spec.methods[0][1]["C"] == 0.001 and spec.seeds == [0]})
        db = tmp / "accepted.db"
        extra = ["--param", "C=1e-3", "--param", "max_features=500", "--threshold", "0.4"]
        code, first, _ = _invoke([*RUN, *extra, "--tracking-uri", f"sqlite:///{db}"])
        records = _records(db)
        got = [(r.status, r.params.get("C"), r.threshold) for r in records]
        out.append({"case": "run: --param C=1e-3 is the number 0.001",
                    "command": "hmtc-bench " + " ".join(RUN + extra),
                    "expected": "exit 0; one finished run with C == 0.001, threshold 0.4",
                    "seen": f"exit {code}; runs (status, C, threshold): {got}",
                    "ok": code == 0 and got == [("finished", 0.001, 0.4)]})
    return out


if __name__ == "__main__":
    from reliability import print_cases
    sys.exit(print_cases(params_battery()))
