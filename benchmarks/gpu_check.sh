#!/usr/bin/env bash
# A short check on one GPU (e.g. the `device` tool's machine): msml on the embedded default
# (ICD-10-CM), seed 0, device auto (CUDA, bf16 autocast); prints the device, the training
# examples/s and the test micro- and macro-F1. Usage: bash benchmarks/gpu_check.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
python - "${1:-5}" <<'PY'
import sys
import torch
from hmtc_bench.data import load_dataset
from hmtc_bench.runner import run
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device")
data = load_dataset("icd10cm")
record = run("msml", data, params={"device": "auto", "epochs": int(sys.argv[1]),
                                   "progress": False}, track=False, quiet=True)
history = record.training["history"]
n = len(data.train)
seconds = sum(h["seconds"] for h in history)
print(f"device {record.worker['device']} ({record.worker.get('gpu')}), torch {torch.__version__}")
print(f"training: {len(history)} epochs, {n * len(history) / seconds:.1f} examples/s "
      f"(epoch time incl. dev scoring), fit {record.fit_seconds:.1f} s")
print(f"test micro-F1 {record.metrics['micro_f1']:.4f}, macro-F1 {record.metrics['macro_f1']:.4f}")
PY
