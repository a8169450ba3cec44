"""HMCN-F and HiAGM-TP: networks, the word encoder, training, checkpoints (tiny models)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hmtc_bench.hierarchy import LabelHierarchy  # noqa: E402
from hmtc_bench.methods import get_method  # noqa: E402
from hmtc_bench.methods.neural import batching, encoders, training  # noqa: E402
from hmtc_bench.methods.neural.heads import label_edges  # noqa: E402
from hmtc_bench.methods.neural.hiagm import HiAGM  # noqa: E402
from hmtc_bench.methods.neural.hiagm_net import HierarchyGCN, HiAGMNet  # noqa: E402
from hmtc_bench.methods.neural.hmcn import HMCN  # noqa: E402
from hmtc_bench.methods.neural.hmcn_net import HMCNNet  # noqa: E402
from hmtc_bench.testing import _small_data  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return _small_data()


def stack(data, encoder="tiny-random"):
    torch.manual_seed(0)
    _, model = encoders.load_encoder(encoder, texts=data.train.texts)
    return encoders.encoder_stack(model)


def batch(data, n=6, encoder="tiny-random"):
    tokenizer, _ = encoders.load_encoder(encoder, texts=data.train.texts)
    ids = encoders.tokenize(tokenizer, data.test.texts[:n], 32)
    return batching.pad_ids(ids, 0, "cpu")


def hmcn_net(data, **kw):
    h = data.hierarchy
    return HMCNNet(stack(data), [h.level_columns(lv) for lv in range(1, h.depth + 1)],
                   label_edges(h), n_filters=8, global_size=16, local_size=16, **kw).eval()


def test_registered():
    assert get_method("hmcn") is HMCN and get_method("hiagm") is HiAGM
    assert HMCN.TAGS["family"] == HiAGM.TAGS["family"] == "global"


def test_edges_leave_the_root_out(data):
    h = data.hierarchy
    edges = label_edges(h)
    assert len(edges) == sum(len(h.parents(lab)) for lab in h.labels if h.level(lab) > 1)
    for p, c in edges:
        assert h.labels[p] in h.parents(h.labels[c])


# ---------------------------------------------------------------------------- HMCN
def test_hmcn_final_score_mixes_local_and_global(data):
    ids, mask = batch(data)
    for beta in (0.0, 0.3, 1.0):
        net = hmcn_net(data, beta=beta)
        with torch.no_grad():
            states = net.encoder(ids, mask)
            global_logits, local = net.outputs(states, mask)
            p = torch.sigmoid(net.classify(states, mask))
        local_p = torch.sigmoid(torch.cat(local, 1)[:, net.inverse_order])
        expected = beta * local_p + (1 - beta) * torch.sigmoid(global_logits)
        assert p.shape == (len(ids), len(data.hierarchy))
        torch.testing.assert_close(p, expected.clamp(1e-6, 1 - 1e-6), atol=1e-5, rtol=1e-4)


def test_hmcn_violation_penalty(data):
    ids, mask = batch(data)
    targets = torch.zeros(len(ids), len(data.hierarchy))
    plain, penalised = hmcn_net(data), hmcn_net(data, violation_penalty=10.0)
    with torch.no_grad():
        states = plain.encoder(ids, mask)
        p = plain._final(*plain.outputs(states, mask))
        excess = torch.relu(p[:, plain.edge_child] - p[:, plain.edge_parent]).pow(2).mean()
        difference = penalised.training_loss(states, mask, targets) \
            - plain.training_loss(states, mask, targets)
    assert excess > 0
    torch.testing.assert_close(difference, 10.0 * excess, atol=1e-5, rtol=1e-4)


def test_hmcn_bad_beta(data):
    with pytest.raises(ValueError, match="beta"):
        hmcn_net(data, beta=1.5)


# ---------------------------------------------------------------------------- HiAGM
def test_gcn_priors_are_child_over_parent_counts():
    h = LabelHierarchy.from_edges([("Root", "a"), ("Root", "b"), ("a", "a1"), ("a", "a2"),
                                   ("b", "b1")])
    edges = label_edges(h)
    gcn = HierarchyGCN(len(h), edges, 4)
    Y = h.encode([["a", "a1"], ["a", "a1"], ["a", "a2"], ["a"], ["b"]])
    gcn.set_priors(Y)
    weight = {(h.labels[p], h.labels[c]): w for (p, c), w
              in zip(edges, gcn.top_down_weight.tolist())}
    assert weight == pytest.approx({("a", "a1"): 0.5, ("a", "a2"): 0.25, ("b", "b1"): 0.0})


def test_gcn_messages_follow_the_edges():
    h = LabelHierarchy.from_edges([("Root", "a"), ("Root", "b"), ("a", "a1"), ("b", "b1")])
    gcn = HierarchyGCN(len(h), label_edges(h), 4, dropout=0.0)
    gcn.set_priors(sp.csr_matrix(np.ones((1, len(h)))))
    torch.manual_seed(0)
    v = torch.randn(1, len(h), 4)
    moved = v.clone()
    moved[0, h.index["a"]] += 5.0
    out, out_moved = gcn(v), gcn(moved)
    changed = {lab for lab in h.labels
               if not torch.allclose(out[0, h.index[lab]], out_moved[0, h.index[lab]])}
    assert changed <= {"a", "a1"} and "a1" in changed       # its child hears it; b, b1 do not


@pytest.mark.parametrize("output", ["flatten", "per-node"])
def test_hiagm_outputs_and_recursive_penalty(data, output):
    ids, mask = batch(data)
    L = len(data.hierarchy)
    net = HiAGMNet(stack(data), L, label_edges(data.hierarchy), n_filters=8, node_dim=4,
                   output=output, recursive_penalty=0.0).eval()
    net.init_from_labels(data.train.Y)
    with torch.no_grad():
        states = net.encoder(ids, mask)
        assert net.classify(states, mask).shape == (len(ids), L)
        targets = torch.zeros(len(ids), L)
        base = net.training_loss(states, mask, targets)
        net.recursive_penalty = 2.0
        w = net._weights()
        edges = label_edges(data.hierarchy)
        expected = (w[edges[:, 0]] - w[edges[:, 1]]).pow(2).sum()
        torch.testing.assert_close(net.training_loss(states, mask, targets) - base, expected,
                                   atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="output"):
        HiAGMNet(stack(data), L, label_edges(data.hierarchy), output="mean")


# ---------------------------------------------------------------------------- word encoder
def test_word_encoder_states_do_not_depend_on_the_batch(data):
    torch.manual_seed(0)
    tokenizer, model = encoders.load_encoder("textrcnn", texts=data.train.texts)
    model.eval()
    assert isinstance(model, encoders.WordEncoder) and encoders.encoder_stack(model) is model
    assert tokenizer.get_vocab()["[PAD]"] == 0
    ids = encoders.tokenize(tokenizer, data.test.texts[:4], 64)
    ids[0] = ids[0][:5]
    alone_ids, alone_mask = batching.pad_ids(ids[:1], 0, "cpu")
    all_ids, all_mask = batching.pad_ids(ids, 0, "cpu")
    with torch.no_grad():
        alone = model(alone_ids, alone_mask)[0]
        together = model(all_ids, all_mask)[0, :alone.shape[0]]
    torch.testing.assert_close(alone, together, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="n_state_layers"):
        encoders.encoder_stack(model, 2)


def test_word_encoder_is_trained_at_the_head_rate(data):
    net = HMCNNet(stack(data, "textrcnn"), [data.hierarchy.level_columns(1)], np.zeros((0, 2)),
                  n_filters=4, global_size=8, local_size=8)
    trainer = training.Trainer(mode="full", lr_encoder=1e-9, lr_head=1e-3)
    optimizer = trainer.optimizer(net, 0)
    embedding = net.encoder.embeddings.weight
    rates = [g["lr"] for g in optimizer.param_groups if any(p is embedding for p in g["params"])]
    assert rates == [1e-3]


# ---------------------------------------------------------------------------- end to end
def fitted(cls, data, **params):
    return cls(**{**cls.get_test_params(), **params}).fit(data.train.texts, data.train.Y,
                                                          data.hierarchy)


@pytest.mark.parametrize("cls", [HMCN, HiAGM])
def test_textrcnn_learns_the_top_level(cls, data):
    method = fitted(cls, data, encoder="textrcnn", epochs=8, patience=8)
    history = method.train_state_["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    top = data.hierarchy.level_columns(1)
    predicted = method.predict_proba(data.test.texts)[:, top] >= 0.5
    truth = data.test.Y[:, top].toarray().astype(bool)
    accuracy = (predicted == truth).all(axis=1).mean()
    assert accuracy > 0.6, accuracy      # chance: about 1/3 (three top labels)


@pytest.mark.parametrize("cls", [HMCN, HiAGM])
def test_checkpoint_round_trip_with_each_encoder(cls, data, tmp_path):
    for encoder in ("tiny-random", "textrcnn"):
        folder = tmp_path / encoder
        method = fitted(cls, data, encoder=encoder, epochs=1, checkpoint_dir=str(folder))
        assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".bin", ".pt")]
        if encoder == "textrcnn":
            config = json.loads((folder / "encoder" / "word_encoder.json").read_text())
            assert config["vocab_size"] == len(method.tokenizer_.get_vocab())
        loaded = cls.from_checkpoint(folder)
        assert type(loaded) is cls and loaded.get_params() == method.get_params()
        np.testing.assert_allclose(loaded.predict_proba(data.test.texts),
                                   method.predict_proba(data.test.texts), atol=1e-6)


def test_dag_hierarchy():
    h = LabelHierarchy.from_edges([("Root", "a"), ("Root", "b"), ("a", "x"), ("b", "x"),
                                   ("x", "y")])
    texts = ["alpha x-ray yankee", "beta x-ray", "alpha", "beta", "alpha x-ray"] * 8
    labels = [["a", "x", "y"], ["b", "x"], ["a"], ["b"], ["a", "x"]] * 8
    Y = h.encode(labels)
    for cls in (HMCN, HiAGM):
        method = cls(**{**cls.get_test_params(), "encoder": "textrcnn", "epochs": 2}) \
            .fit(texts, Y, h)
        assert method.predict_proba(texts[:5]).shape == (5, len(h))
    assert sorted((h.labels[p], h.labels[c]) for p, c in label_edges(h)) == \
        [("a", "x"), ("b", "x"), ("x", "y")]


@pytest.mark.parametrize("name", ["hiagm", "hmcn", "msml", "flat-bert"])
def test_fits_and_predicts_under_bf16_autocast(name):
    """precision="bf16" (the default on a GPU): every network runs in mixed dtypes (HiAGM's
    message passing once added bf16 updates into a float32 tensor and failed)."""
    import numpy as np

    from hmtc_bench.methods import get_method
    from hmtc_bench.testing import _small_data
    data = _small_data()
    cls = get_method(name)
    method = cls(**{**cls.get_test_params(), "precision": "bf16", "epochs": 2})
    method.fit(data.train.texts, data.train.Y, data.hierarchy, dev=(data.dev.texts, data.dev.Y))
    proba = method.predict_proba(data.test.texts)
    assert np.isfinite(proba).all() and proba.shape == (len(data.test), len(data.hierarchy))
