"""Speed of the evaluator on RCV1-V2 test size: 800,000 x 103 predictions.

    python benchmarks/bench_evaluate.py        # writes results/evaluate_speed.json

The reference measured in the same run is scikit-learn's f1_score (micro and macro) on the
same sparse matrices; our evaluate() computes every figure of the run record.
"""

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import f1_score

from hmtc_bench.evaluation import decode, evaluate
from hmtc_bench.hierarchy import LabelHierarchy

N_DOCS = 800_000


def rcv1_like_hierarchy() -> LabelHierarchy:
    """4 / 55 / 43 / 1 labels per level, as RCV1-V2."""
    rng = np.random.default_rng(0)
    top = [f"T{i}" for i in range(4)]
    second = [f"S{i}" for i in range(55)]
    third = [f"U{i}" for i in range(43)]
    edges = [("Root", t) for t in top]
    edges += [(top[i % 4], s) for i, s in enumerate(second)]
    edges += [(second[int(rng.integers(0, 55))], u) for u in third]
    edges += [(third[0], "V0")]
    return LabelHierarchy.from_edges(edges, tree=True)


def main(out=Path("results/evaluate_speed.json")):
    hierarchy = rcv1_like_hierarchy()
    L = len(hierarchy)
    rng = np.random.default_rng(1)
    leaves = rng.integers(0, L, size=(N_DOCS, 2))
    rows = np.repeat(np.arange(N_DOCS), 2)
    Y_true = hierarchy.close_matrix(sp.csr_matrix(
        (np.ones(2 * N_DOCS, dtype=np.int8), (rows, leaves.ravel())), shape=(N_DOCS, L)))
    proba = np.clip(Y_true.toarray() * 0.6 + rng.random((N_DOCS, L), dtype=np.float32) * 0.5, 0, 1)
    figures = {"documents": N_DOCS, "labels": L}
    start = time.perf_counter()
    Y_pred = decode(proba, hierarchy, "top-down")
    figures["decode_top_down_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    record = evaluate(Y_true, Y_pred, hierarchy, train_counts=np.arange(L))
    figures["evaluate_all_metrics_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    micro = f1_score(Y_true, Y_pred, average="micro", zero_division=0)
    macro = f1_score(Y_true, Y_pred, average="macro", zero_division=0)
    figures["sklearn_micro_and_macro_seconds"] = time.perf_counter() - start
    figures["ratio_evaluate_to_sklearn"] = (figures["evaluate_all_metrics_seconds"]
                                            / figures["sklearn_micro_and_macro_seconds"])
    assert abs(micro - record["micro_f1"]) < 1e-9 and abs(macro - record["macro_f1"]) < 1e-9
    figures["metrics_in_record"] = len(record)
    figures["command"] = "python benchmarks/bench_evaluate.py"
    machine = platform.processor() or platform.machine()
    figures["machine"] = f"{machine}, python {sys.version.split()[0]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
