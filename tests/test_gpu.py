"""On a GPU (skipped without CUDA): a neural cell runs on it, bf16 autocast by default, and
its record names the device and the GPU model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_msml_trains_and_is_recorded_on_the_gpu(synthetic):
    from hmtc_bench.methods.neural.msml import MSML
    from hmtc_bench.runner import run
    params = {**MSML.get_test_params(), "device": "auto"}
    record = run("msml", synthetic, params=params, track=False, quiet=True)
    assert record.finished
    assert record.worker["device"].startswith("cuda")
    assert record.worker["gpu"] == torch.cuda.get_device_name(0)
    assert np.isfinite(record.metrics["micro_f1"]) and record.metrics["micro_f1"] > 0
