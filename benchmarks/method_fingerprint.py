"""Metrics of every registered method, to check that a refactoring changes no result.

Fits every registered method with its ``get_test_params()`` on the synthetic data, and
flat-svm, local-node and msml (msml with its test parameters) on ICD-10-CM, with seed 0;
decodes at threshold 0.5 and top-down; writes every metric to a JSON file. Run it before and
after a change and compare the files (``--compare OLD.json``: exit 1 on any difference)::

    python benchmarks/method_fingerprint.py --out results/method_fingerprint.json
    python benchmarks/method_fingerprint.py --out /tmp/after.json --compare OLD.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from hmtc_bench.data import load_dataset
from hmtc_bench.evaluation import decode, evaluate
from hmtc_bench.methods import get_method, list_methods, make_method

ICD_METHODS = ("flat-svm", "local-node", "msml")
POLICIES = ("threshold", "top-down")


def fingerprint(data, name: str) -> dict:
    params = get_method(name).get_test_params()
    if data.name == "icd10cm" and name != "msml":
        params = {}
    model = make_method(name, params, random_state=0)
    model.fit(data.train.texts, data.train.Y, data.hierarchy, dev=(data.dev.texts, data.dev.Y))
    proba = model.predict_proba(data.test.texts)
    counts = data.train.Y.sum(axis=0).A1
    return {"params": {k: str(v) for k, v in params.items()},
            **{policy: evaluate(data.test.Y, decode(proba, data.hierarchy, policy),
                                data.hierarchy, counts) for policy in POLICIES}}


def differences(old: dict, new: dict, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = [f"{path}/{k}: missing after" for k in old if k not in new]
        found += [f"{path}/{k}: new" for k in new if k not in old]
        for key in old.keys() & new.keys():
            found += differences(old[key], new[key], f"{path}/{key}")
        return found
    if isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new):
        return []
    return [] if old == new else [f"{path}: {old} -> {new}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/method_fingerprint.json")
    parser.add_argument("--compare", help="an earlier output; exit 1 if anything differs")
    parser.add_argument("--skip-icd", action="store_true", help="synthetic data only")
    args = parser.parse_args()
    result = {"synthetic": {}, "icd10cm": {}}
    synthetic = load_dataset("synthetic")
    for info in list_methods():
        if info.available:
            print(f"synthetic {info.name}", file=sys.stderr, flush=True)
            result["synthetic"][info.name] = fingerprint(synthetic, info.name)
    if not args.skip_icd:
        icd = load_dataset("icd10cm")
        for name in ICD_METHODS:
            print(f"icd10cm {name}", file=sys.stderr, flush=True)
            result["icd10cm"][name] = fingerprint(icd, name)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if args.compare:
        old = json.loads(Path(args.compare).read_text())
        if args.skip_icd:
            old.pop("icd10cm", None)
            result.pop("icd10cm", None)
        found = differences(old, result)
        for line in found:
            print(line)
        print(f"{len(found)} differences against {args.compare}")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
