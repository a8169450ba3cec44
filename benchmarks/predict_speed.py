"""Saved models in use: size on disk, load time, memory and prediction throughput of every
registered method on ICD-10-CM and RCV1-V2 dev, on 1 and 2 threads.

    python benchmarks/predict_speed.py [--methods flat-svm msml] [--datasets icd10cm]

Each method is fitted and saved (``HMTCMethod.save``) in the parent process: the classical
ones on the whole training split with their defaults; the neural ones with their
defaults (MiniLM-L6, 64 tokens) but one epoch on the first 512 training texts, which sets
their quality, not their prediction cost (the network is the same). Each measurement then
runs in a fresh process: import time, ``load_model`` time, resident memory added by the
loaded model and the process's peak, and throughput in documents per second of
``predict_proba`` (the model) and of ``predicting.predict_rows`` (what ``hmtc-bench
predict`` does: decoding and the output objects too), in batches (classical 1,000 texts,
neural 64), with torch / BLAS / OpenMP limited to 1 or 2 threads; the neural models both in
float32 (the CPU default) and with bf16 autocast (``precision="bf16"``). Texts: the test
texts (classical: RCV1-V2's 2,316 texts, all splits, twice), 256 for the neural models.
flat-lightgbm is not fitted on ICD-10-CM (as in ``baselines/full.yaml``: 2,225 per-label
models take too long on 2 cores).
Writes ``results/predict_speed.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RCV1 = ROOT.parent / "shared" / "datasets" / "rcv1-v2-dev"
NEURAL_TRAIN = 512
NEURAL_TEXTS = 256
# as in baselines/full.yaml: one LightGBM model per label is too slow to fit on ICD-10-CM's
# 2,225 labels on 2 cores
SKIP = {("flat-lightgbm", "icd10cm")}


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(folder: str, texts_file: str, threads: int, precision: str | None,
            batch: int) -> dict:
    """One measurement, in this (fresh) process."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    start = time.perf_counter()
    import numpy as np  # noqa: F401

    import networkx  # noqa: F401
    import sklearn.feature_extraction.text  # noqa: F401

    from hmtc_bench.methods.saving import _saved_class, load_model, read_manifest
    from hmtc_bench.predicting import predict_rows
    manifest = read_manifest(folder)
    _saved_class(manifest, Path(folder))   # the method's module, through the registry
    neural = manifest["class"].startswith("hmtc_bench.methods.neural")
    if neural:
        import safetensors.torch  # noqa: F401
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: F401

        from hmtc_bench.methods.neural import encoders, training  # noqa: F401
        torch.set_num_threads(threads)
    imported = time.perf_counter() - start
    before = rss_mb()
    start = time.perf_counter()
    model = load_model(folder)
    load = time.perf_counter() - start
    loaded = rss_mb()
    start = time.perf_counter()
    load_model(folder)                                # again: what the first paid once
    reload = time.perf_counter() - start
    if precision:
        model.precision = precision
    if hasattr(model, "progress"):
        model.progress = False
    texts = json.loads(Path(texts_file).read_text())
    model.predict_proba(texts[:batch])                 # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        model.predict_proba(texts[i:i + batch])
    proba_rate = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    n = sum(1 for _ in predict_rows(model, enumerate(texts), batch_size=batch))
    rows_rate = n / (time.perf_counter() - start)
    return {"import_s": imported, "load_s": load, "reload_s": reload, "model_mb": loaded - before,
            "peak_mb": rss_mb("VmHWM"), "docs_per_s": proba_rate, "rows_per_s": rows_rate,
            "n_texts": len(texts), "batch": batch}


def fit_and_save(method: str, data, folder: Path) -> dict:
    from hmtc_bench import progress
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.methods.saving import folder_bytes
    info = inspect_method(method)
    neural = info.cls.tags()["uses_dev"]
    params = {"epochs": 1, "progress": False} if neural else {}
    estimator = info.build(params, 0)
    texts, Y = data.train.texts, data.train.Y
    if neural:
        texts, Y = list(texts[:NEURAL_TRAIN]), Y[:NEURAL_TRAIN]
    start = time.perf_counter()
    with progress.quiet():
        estimator.fit(texts, Y, data.hierarchy,
                      dev=(data.dev.texts[:128], data.dev.Y[:128]) if neural else None)
    fit = time.perf_counter() - start
    estimator.save(folder, info={"benchmark": "predict_speed"})
    return {"neural": neural, "fit_s": fit, "size_mb": folder_bytes(folder) / 2**20,
            "n_train": len(texts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="*")
    parser.add_argument("--datasets", nargs="*", default=["icd10cm", "rcv1-v2-dev"])
    parser.add_argument("--out", default=str(ROOT / "results" / "predict_speed.md"))
    parser.add_argument("--measure", nargs=5, metavar=("FOLDER", "TEXTS", "THREADS",
                                                       "PRECISION", "BATCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        folder, texts, threads, precision, batch = args.measure
        print(json.dumps(measure(folder, texts, int(threads),
                                 None if precision == "-" else precision, int(batch))))
        return
    import warnings

    from hmtc_bench.data import load_dataset
    from hmtc_bench.methods import list_methods
    warnings.simplefilter("ignore")
    methods = args.methods or [m.name for m in list_methods() if m.available]
    rows = []
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as tmp:
        for dataset in args.datasets:
            data = load_dataset(str(RCV1) if dataset == "rcv1-v2-dev" else dataset)
            texts = list(data.test.texts)
            if dataset == "rcv1-v2-dev":
                texts = 2 * (list(data.train.texts) + list(data.dev.texts) + texts)
            for method in methods:
                if (method, dataset) in SKIP:
                    print(f"{dataset:<12} {method:<14} skipped (as in baselines/full.yaml)")
                    continue
                folder = Path(tmp) / dataset / method
                fitted = fit_and_save(method, data, folder)
                chosen = texts[:NEURAL_TEXTS] if fitted["neural"] else texts
                texts_file = Path(tmp) / f"{dataset}-{len(chosen)}.json"
                texts_file.write_text(json.dumps(chosen))
                precisions = ["fp32", "bf16"] if fitted["neural"] else ["-"]
                for precision in precisions:
                    for threads in (1, 2):
                        out = subprocess.run(
                            [sys.executable, __file__, "--measure", str(folder),
                             str(texts_file), str(threads), precision,
                             "64" if fitted["neural"] else "1000"],
                            capture_output=True, text=True, check=True)
                        result = json.loads(out.stdout.strip().splitlines()[-1])
                        row = {"dataset": data.name, "method": method, "threads": threads,
                               "precision": precision if precision != "-" else "",
                               **fitted, **result}
                        rows.append(row)
                        print(f"{data.name:<12} {method:<14} {threads} thr {row['precision']:<4}"
                              f" {result['docs_per_s']:8.0f} docs/s  load {result['load_s']:.2f} s"
                              f"  {fitted['size_mb']:.1f} MB", flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    out.write_text(render(rows))
    print(f"wrote {out}")


def render(rows: list[dict]) -> str:
    import platform
    lines = [
        "# Saved models in use: size, load time, memory, prediction throughput", "",
        "`python benchmarks/predict_speed.py` (figures: `results/predict_speed.json`). "
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}. Each row one "
        "fresh process; see the script's docstring for what is fitted and measured.", "",
        "- **size**: the saved folder on disk; **import**: seconds to import numpy, "
        "scikit-learn, networkx, the method's module (and torch, transformers) in a fresh "
        "process; **load**: the first `load_model` after that (checksums verified, arrays or "
        "weights read, and what the libraries import lazily on first use, e.g. "
        "transformers' BERT modules); **reload**: a second `load_model` in the same process; "
        "**model MB**: resident memory the loaded model adds; **peak MB**: the process's "
        "peak resident memory after predicting;",
        "- **docs/s**: `predict_proba` over the texts in batches; **end-to-end**: "
        "`predict_rows` (decoding and the output objects of `hmtc-bench predict`).", "",
        "| dataset | method | threads | precision | size MB | import s | load s | reload s | "
        "model MB | "
        "peak MB | docs/s | end-to-end docs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['threads']} | {r['precision'] or '-'} | "
            f"{r['size_mb']:.1f} | {r['import_s']:.2f} | {r['load_s']:.2f} | {r['reload_s']:.2f} | "
            f"{r['model_mb']:.0f} | {r['peak_mb']:.0f} | {r['docs_per_s']:,.0f} | "
            f"{r['rows_per_s']:,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
