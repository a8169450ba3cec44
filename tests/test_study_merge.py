"""benchmarks/msml_study.py --add: a corpus studied in a store of its own joins the tables
without dropping the corpora whose store is gone (they come from the data file)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from msml_study import merged, tables  # noqa: E402


def _run(dataset: str, method: str, seed: int, micro: float) -> dict:
    return {"method": method, "config": "default", "dataset": dataset, "seed": seed,
            "decode": "threshold", "fit_seconds": 1.0, "params": {},
            "metrics": {"micro_f1": micro, "macro_f1": micro, "deepest": micro,
                        "macro_f1_tail": micro, "inconsistency_ratio": 0.0,
                        "dev_micro_f1": micro}}


def _trial(value: float) -> list[dict]:
    return [{"number": 0, "state": "complete", "params": {"lr": 1e-3}, "dev_micro_f1": value,
             "dev_macro_f1": value, "fit_seconds": 1.0}]


def test_the_store_s_datasets_replace_theirs_and_the_rest_are_kept():
    before = {"trials": {"msml-study/msml/wos-sample": _trial(0.7),
                         "msml-study/msml/icd10cm": _trial(0.1)},
              "runs": [_run("wos-sample", "msml", 0, 0.7), _run("icd10cm", "msml", 0, 0.1)]}
    new = {"trials": {'msml-study/msml{"epochs": 5, "max_length": 64}/icd10cm': _trial(0.8)},
           "runs": [_run("icd10cm", "msml", s, 0.8) for s in range(3)]}
    out = merged(before, new)
    assert sorted(out["trials"]) == ['msml-study/msml/wos-sample',
                                     'msml-study/msml{"epochs": 5, "max_length": 64}/icd10cm']
    assert sorted((r["dataset"], r["metrics"]["micro_f1"]) for r in out["runs"]) == [
        ("icd10cm", 0.8)] * 3 + [("wos-sample", 0.7)]
    text = tables(out)
    assert "### icd10cm: default" in text and "### wos-sample: default" in text
    assert "0.1000" not in text    # the stale icd10cm entries are gone


def test_a_store_with_nothing_new_keeps_everything():
    before = {"trials": {"msml-study/msml/wos-sample": _trial(0.7)},
              "runs": [_run("wos-sample", "msml", 0, 0.7)]}
    assert merged(before, {"trials": {}, "runs": []}) == before
