"""Local methods side by side with HiClass 5.0.8 on 20 Newsgroups (bydate).

Both get the same TF-IDF matrix (``hmtc_bench.methods.classical.features.make_vectorizer``
with the methods' defaults, fitted once on the training texts) and the same base estimator
with the same settings; both fit with BLAS limited to one thread per fit (see below).
Reported per (estimator, method, n_jobs): hierarchical F1 (Kiritchenko), micro- and macro-F1
computed by ``hmtc_bench.evaluation.metrics`` on the predictions of both, and the fit and
predict seconds of the classifiers (vectorizing excluded for both; it is reported once), the
best of ``--repeats`` runs.

HiClass lives in its own virtual environment (its pins may clash with ours):

    python -m venv /tmp/hiclass-venv && /tmp/hiclass-venv/bin/pip install hiclass==5.0.8
    python benchmarks/bench_hiclass.py --hiclass-python /tmp/hiclass-venv/bin/python

The same file is the HiClass worker: run with ``--worker FOLDER`` by that interpreter, it
imports only numpy, scipy, scikit-learn and hiclass.

Notes on the estimators. HiClass calls ``predict_proba`` of its local classifiers, which
``LinearSVC`` lacks; it gets a ``LinearSVC`` subclass whose ``predict_proba`` is the
logistic function of the decision value, i.e. our own score mapping. HiClass predicts one
full path per document (argmax among the children at every level); ours decode their
``predict_proba`` with the project's default policy (threshold 0.5; the local methods are
consistent by construction, so ``top-down`` gives the same sets).

Solver seconds (n_jobs=1 only): the time spent inside the base estimators' own ``fit``
calls (liblinear / lbfgs), summed, on both sides. Everything else in the fit is the
system's overhead (slicing rows, building targets, copying data for the solver). Both
systems solve the same binary problems, so the solver seconds bound what any speed-up over
HiClass can reach with the same estimator on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HICLASS_CLASSES = {"local-node": "LocalClassifierPerNode",
                   "local-parent": "LocalClassifierPerParentNode",
                   "local-level": "LocalClassifierPerLevel"}

# the same estimator settings on both sides
# (ours: hmtc_bench.methods.classical.features.ESTIMATORS)
ESTIMATOR_SETTINGS = {
    "svm": {"C": 1.0, "dual": True, "tol": 1e-4, "max_iter": 1000},
    "logreg": {"C": 1.0, "solver": "lbfgs", "tol": 1e-4, "max_iter": 1000},
    "lightgbm": {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31,
                 "min_child_samples": 20},
}


# ====================================================================== HiClass worker
SOLVER_SECONDS = [0.0]     # time inside the base estimators' fit (in this process)


def _timed_fit(cls):
    """Make ``cls.fit`` add its duration to SOLVER_SECONDS (returns the original fit)."""
    original = cls.fit

    def fit(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            SOLVER_SECONDS[0] += time.perf_counter() - start

    cls.fit = fit
    return original


class TimedFit:
    """Mixin: the estimator's fit adds its duration to SOLVER_SECONDS."""

    def fit(self, X, y, sample_weight=None):
        start = time.perf_counter()
        try:
            return super().fit(X, y, sample_weight)
        finally:
            SOLVER_SECONDS[0] += time.perf_counter() - start


def _hiclass_estimator(name: str, seed: int):
    import numpy as np
    if name == "svm":
        from sklearn.svm import LinearSVC

        class LinearSVCProba(TimedFit, LinearSVC):
            """LinearSVC whose predict_proba is the logistic function of the margin."""

            def predict_proba(self, X):
                p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -50, 50)))
                return np.column_stack([1 - p, p])

        globals()["LinearSVCProba"] = LinearSVCProba   # picklable for HiClass's n_jobs
        LinearSVCProba.__module__ = "__main__"
        LinearSVCProba.__qualname__ = "LinearSVCProba"
        return LinearSVCProba(random_state=seed, **ESTIMATOR_SETTINGS["svm"])
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        class TimedLogisticRegression(TimedFit, LogisticRegression):
            pass

        globals()["TimedLogisticRegression"] = TimedLogisticRegression
        TimedLogisticRegression.__module__ = "__main__"
        TimedLogisticRegression.__qualname__ = "TimedLogisticRegression"
        return TimedLogisticRegression(random_state=seed, **ESTIMATOR_SETTINGS["logreg"])
    if name == "lightgbm":
        from lightgbm import LGBMClassifier
        return LGBMClassifier(random_state=seed, verbose=-1, deterministic=True,
                              force_row_wise=True, n_jobs=1, **ESTIMATOR_SETTINGS["lightgbm"])
    raise ValueError(name)


def run_worker(folder: Path) -> None:
    """Fit and predict HiClass's local classifiers as the job file says; write results."""
    import numpy as np
    import scipy.sparse as sp
    import hiclass
    from threadpoolctl import threadpool_limits
    job = json.loads((folder / "job.json").read_text())
    X_train = sp.load_npz(folder / "X_train.npz")
    X_test = sp.load_npz(folder / "X_test.npz")
    paths = json.loads((folder / "paths.json").read_text())
    depth = max(len(p) for p in paths)
    y_train = np.array([p + [""] * (depth - len(p)) for p in paths])
    results = []
    for method, n_jobs in job["runs"]:
        cls = getattr(hiclass, HICLASS_CLASSES[method])
        model = cls(local_classifier=_hiclass_estimator(job["estimator"], job["seed"]),
                    n_jobs=n_jobs)
        with threadpool_limits(limits=1, user_api="blas"):
            SOLVER_SECONDS[0] = 0.0
            start, cpu = time.perf_counter(), time.process_time()
            model.fit(X_train, y_train)
            fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
            start = time.perf_counter()
            pred = model.predict(X_test)
            predict_s = time.perf_counter() - start
        pred = [[str(v) for v in np.atleast_1d(row) if str(v) != ""] for row in pred]
        results.append({"method": method, "n_jobs": n_jobs, "fit_s": fit_s,
                        "fit_cpu_s": fit_cpu_s if n_jobs == 1 else None,
                        "solver_s": SOLVER_SECONDS[0] if n_jobs == 1 else None,
                        "predict_s": predict_s, "pred": pred})
        print(f"  hiclass {HICLASS_CLASSES[method]} n_jobs={n_jobs}: fit {fit_s:.2f}s "
              f"predict {predict_s:.2f}s", flush=True)
    (folder / "result.json").write_text(json.dumps(
        {"results": results, "versions": _versions(["hiclass", "sklearn", "numpy", "scipy"])}))


def _versions(modules) -> dict:
    import importlib
    out = {}
    for name in modules:
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:   # not installed
            out[name] = None
    return out


# ====================================================================== main
def _evaluate(Y_true, Y_pred, hierarchy) -> dict:
    from hmtc_bench.evaluation.metrics import hierarchical_prf, inconsistency, macro_f1, micro_f1
    return {"hF1": hierarchical_prf(Y_true, Y_pred, hierarchy)[2],
            "micro_F1": micro_f1(Y_true, Y_pred),
            "macro_F1": macro_f1(Y_true, Y_pred),
            "inconsistent_docs": inconsistency(Y_pred, hierarchy)[1]}


def _deepest_paths(Y, hierarchy) -> list[list[str]]:
    """The one path of each document (20 Newsgroups is single-path), top label first."""
    paths = []
    for labels in hierarchy.decode(Y):
        deepest = max(labels, key=hierarchy.level)
        paths.append(sorted(hierarchy.ancestors(deepest) | {deepest}, key=hierarchy.level))
    return paths


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hiclass-python", default="/tmp/hiclass-venv/bin/python")
    parser.add_argument("--data", default=None, help="20news-bydate.tar.gz (default: "
                        "../shared/datasets/20newsgroups/20news-bydate.tar.gz)")
    parser.add_argument("--estimators", default="svm,logreg")
    parser.add_argument("--methods", default="local-node,local-parent,local-level")
    parser.add_argument("--n-jobs", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/hiclass_comparison")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of other estimators already in --out's .json")
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.worker)
        return

    import scipy.sparse as sp
    from hmtc_bench.data.formats.newsgroups import load
    from hmtc_bench.evaluation.decoding import decode
    from hmtc_bench.methods import get_method
    from hmtc_bench.methods.classical.features import make_vectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC
    for cls in (LinearSVC, LogisticRegression):   # ours fit these classes in this process
        _timed_fit(cls)                            # when n_jobs=1

    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    estimators = args.estimators.split(",")
    methods = args.methods.split(",")
    n_jobs_list = [int(n) for n in args.n_jobs.split(",")]
    load_before = _load_avg()

    data = load(args.data)
    h = data.hierarchy
    print(f"20 Newsgroups: {len(data.train)} train / {len(data.test)} test, {h}", flush=True)
    start = time.perf_counter()
    vectorizer = make_vectorizer(2, 1, 200_000, True, False)
    X_train = vectorizer.fit_transform(data.train.texts)
    vectorize_fit_s = time.perf_counter() - start
    start = time.perf_counter()
    X_test = vectorizer.transform(data.test.texts)
    vectorize_test_s = time.perf_counter() - start
    print(f"TF-IDF {X_train.shape}: fit_transform {vectorize_fit_s:.1f}s, "
          f"transform test {vectorize_test_s:.1f}s", flush=True)

    rows = []
    hiclass_versions = None
    with tempfile.TemporaryDirectory(prefix="bench-hiclass-") as tmp:
        folder = Path(tmp)
        sp.save_npz(folder / "X_train.npz", X_train)
        sp.save_npz(folder / "X_test.npz", X_test)
        (folder / "paths.json").write_text(json.dumps(_deepest_paths(data.train.Y, h)))
        for estimator in estimators:
            best: dict = {}
            for repeat in range(args.repeats):
                print(f"[{estimator}] repeat {repeat + 1}/{args.repeats}", flush=True)
                # HiClass, in its own interpreter
                runs = [[m, n] for m in methods for n in n_jobs_list]
                (folder / "job.json").write_text(json.dumps(
                    {"estimator": estimator, "seed": args.seed, "runs": runs}))
                subprocess.run([args.hiclass_python, __file__, "--worker", str(folder)],
                               check=True)
                result = json.loads((folder / "result.json").read_text())
                hiclass_versions = result["versions"]
                for r in result["results"]:
                    key = ("hiclass", r["method"], r["n_jobs"])
                    pred = h.close_matrix(h.encode(r["pred"]))
                    _keep_best(best, key, r["fit_s"], r["predict_s"], pred, r["fit_cpu_s"],
                               r.get("solver_s"))
                # ours
                for method in methods:
                    for n_jobs in n_jobs_list:
                        model = get_method(method)(estimator=estimator, n_jobs=n_jobs,
                                                   random_state=args.seed)
                        SOLVER_SECONDS[0] = 0.0
                        start, cpu = time.perf_counter(), time.process_time()
                        model.fit_features(X_train, data.train.Y, h, vectorizer)
                        fit_s, fit_cpu_s = (time.perf_counter() - start,
                                            time.process_time() - cpu)
                        start = time.perf_counter()
                        pred = decode(model.predict_proba_features(X_test), h)
                        predict_s = time.perf_counter() - start
                        print(f"  ours {method} n_jobs={n_jobs}: fit {fit_s:.2f}s "
                              f"predict {predict_s:.2f}s", flush=True)
                        _keep_best(best, ("hmtc-bench", method, n_jobs), fit_s, predict_s, pred,
                                   fit_cpu_s if n_jobs == 1 else None,
                                   SOLVER_SECONDS[0] if n_jobs == 1 else None)
            for (system, method, n_jobs), entry in best.items():
                rows.append({"estimator": estimator, "method": method, "system": system,
                             "n_jobs": n_jobs, "fit_s": round(entry["fit_s"], 3),
                             "fit_cpu_s": None if entry["fit_cpu_s"] is None
                             else round(entry["fit_cpu_s"], 3),
                             "solver_s": None if entry["solver_s"] is None
                             else round(entry["solver_s"], 3),
                             "predict_s": round(entry["predict_s"], 3),
                             **{k: round(v, 4) for k, v in
                                _evaluate(data.test.Y, entry["pred"], h).items()}})

    report = {
        "command": command,
        "dataset": {"name": "20newsgroups", "train": len(data.train), "test": len(data.test),
                    "labels": len(h), "depth": h.depth},
        "features": {"shape": list(X_train.shape), "vectorizer": "word 1-2-grams, "
                     "max_features 200000, sublinear tf", "fit_transform_s":
                     round(vectorize_fit_s, 2), "transform_test_s": round(vectorize_test_s, 2)},
        "repeats": args.repeats, "timing": "best of repeats; classifiers only",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_before": load_before,
                    "load_avg_after": _load_avg()},
        "versions": {"hiclass_env": hiclass_versions,
                     "ours": _versions(["hmtc_bench", "sklearn", "numpy", "scipy", "lightgbm"])},
        "estimator_settings": {e: ESTIMATOR_SETTINGS[e] for e in estimators},
        "rows": rows,
    }
    out = Path(args.out)
    if args.merge and out.with_suffix(".json").is_file():
        old = json.loads(out.with_suffix(".json").read_text())
        kept = [r for r in old["rows"] if r["estimator"] not in estimators]
        report["rows"] = kept + rows
        report["estimator_settings"] = {**old["estimator_settings"],
                                        **report["estimator_settings"]}
        report["merged_from"] = {"command": old["command"],
                                 "estimators": sorted({r["estimator"] for r in kept}),
                                 "machine": old["machine"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))


def _keep_best(best: dict, key, fit_s: float, predict_s: float, pred, fit_cpu_s=None,
               solver_s=None) -> None:
    entry = best.setdefault(key, {"fit_s": fit_s, "predict_s": predict_s, "pred": pred,
                                  "fit_cpu_s": fit_cpu_s, "solver_s": solver_s})
    entry["fit_s"] = min(entry["fit_s"], fit_s)
    entry["predict_s"] = min(entry["predict_s"], predict_s)
    for name, value in (("fit_cpu_s", fit_cpu_s), ("solver_s", solver_s)):
        if value is not None:
            entry[name] = min(entry[name], value)
    entry["pred"] = pred


def _num(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _markdown(report: dict) -> str:
    merged = report.get("merged_from")
    produced = f"Produced by `{report['command']}`" + (
        f"; the {', '.join(merged['estimators'])} rows earlier by `{merged['command']}` "
        f"(load average then {merged['machine']['load_avg_before']})" if merged else "")
    lines = ["# Local methods vs HiClass 5.0.8 on 20 Newsgroups", "",
             produced + ".", "",
             f"Data: {report['dataset']['train']} train / {report['dataset']['test']} test "
             f"documents, {report['dataset']['labels']} labels, depth "
             f"{report['dataset']['depth']} (leaves at depths 2 and 3, one path per document). "
             f"Same TF-IDF matrix for both ({report['features']['shape'][1]} features: "
             f"{report['features']['vectorizer']}; fit_transform "
             f"{report['features']['fit_transform_s']} s, not in the times below).", "",
             f"Times: classifiers only, best of {report['repeats']} runs, in seconds; "
             f"machine: {report['machine']['cpus']} CPUs, load average before "
             f"{report['machine']['load_avg_before']}, after "
             f"{report['machine']['load_avg_after']}. "
             "Speed-up = HiClass fit seconds / ours, at the same n_jobs, and HiClass at "
             "n_jobs=1 against ours at this n_jobs. Fit CPU seconds (single process, "
             "n_jobs=1 only) measure the work done and are less sensitive than wall-clock "
             "seconds to other jobs on a shared machine. Solver s (n_jobs=1 only): time "
             "inside the base estimators' own fit calls; the rest of the fit is overhead.", ""]
    header = ("| estimator | method | n_jobs | hF1 ours | hF1 HiClass | micro-F1 ours | "
              "micro-F1 HiClass | fit s ours | fit s HiClass | speed-up | speed-up vs "
              "HiClass n_jobs=1 | fit CPU s ours | fit CPU s HiClass | solver s ours | "
              "solver s HiClass | predict s ours | predict s HiClass |")
    lines += [header, "|" + "|".join(["---"] * (header.count("|") - 1)) + "|"]
    rows = report["rows"]
    index = {(r["estimator"], r["method"], r["system"], r["n_jobs"]): r for r in rows}
    for r in rows:
        if r["system"] != "hmtc-bench":
            continue
        other = index.get((r["estimator"], r["method"], "hiclass", r["n_jobs"]))
        single = index.get((r["estimator"], r["method"], "hiclass", 1))
        if other is None:
            continue
        lines.append(
            f"| {r['estimator']} | {r['method']} | {r['n_jobs']} | {r['hF1']:.4f} | "
            f"{other['hF1']:.4f} | {r['micro_F1']:.4f} | {other['micro_F1']:.4f} | "
            f"{r['fit_s']:.2f} | {other['fit_s']:.2f} | {other['fit_s'] / r['fit_s']:.1f}x | "
            f"{(single['fit_s'] / r['fit_s']) if single else float('nan'):.1f}x | "
            f"{_num(r['fit_cpu_s'])} | {_num(other['fit_cpu_s'])} | "
            f"{_num(r.get('solver_s'))} | {_num(other.get('solver_s'))} | "
            f"{r['predict_s']:.2f} | {other['predict_s']:.2f} |")
    for r in rows:
        other = index.get((r["estimator"], r["method"], "hiclass", 1))
        if (r["system"] == "hmtc-bench" and r["n_jobs"] == 1 and other
                and other.get("solver_s") is not None):
            target = other["fit_s"] / 3
            lines += ["", f"{r['estimator']} {r['method']}: a 3x speed-up over HiClass at "
                      f"n_jobs=1 needs a fit in {target:.2f} s; HiClass spends "
                      f"{other['solver_s']:.2f} s of its {other['fit_s']:.2f} s inside the "
                      f"solver and {other['fit_s'] - other['solver_s']:.2f} s around it; ours "
                      f"{r['solver_s']:.2f} s in the solver and "
                      f"{r['fit_s'] - r['solver_s']:.2f} s around it."]
    lines += ["", "HiClass: `LocalClassifierPerNode` / `PerParentNode` / `PerLevel` with the same "
              "base estimator settings " + json.dumps(report["estimator_settings"]) + "; "
              "macro-F1 and the share of inconsistent documents are in the JSON file.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
