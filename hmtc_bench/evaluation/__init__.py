"""Evaluation: pure metric functions, and decoding kept apart from them."""

from hmtc_bench.evaluation.decoding import DEFAULT_POLICY, DEFAULT_THRESHOLD, POLICIES, decode
from hmtc_bench.evaluation.metrics import evaluate

__all__ = ["evaluate", "decode", "POLICIES", "DEFAULT_POLICY", "DEFAULT_THRESHOLD"]
