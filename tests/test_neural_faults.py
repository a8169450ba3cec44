"""Neural checkpoints and training that cannot lie: a checkpoint of other data is never
resumed, a damaged file is never loaded, a NaN loss never ends as a finished run, and a
checkpoint names its method by its registered name. Tiny random encoder, seconds each."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from hmtc_bench.errors import CheckpointError, HMTCError, TrainingError  # noqa: E402
from hmtc_bench.methods.base import NotFittedError  # noqa: E402
from hmtc_bench.methods.neural import checkpoints  # noqa: E402
from hmtc_bench.methods.neural.msml import MSML  # noqa: E402
from hmtc_bench.methods.neural.msml_net import MSMLNet  # noqa: E402
from hmtc_bench.methods.neural.training import Trainer  # noqa: E402
from hmtc_bench.testing import _small_data  # noqa: E402

PARAMS = {"epochs": 3, "patience": 5}


@pytest.fixture(scope="module")
def data():
    return _small_data()


def tiny(**params):
    return MSML(**{**MSML.get_test_params(), **PARAMS, **params})


def fit(method, data, drop: int = 0, dev: bool = True):
    """Fit on ``data`` (without its first ``drop`` training texts: other data, the same
    hierarchy; ``dev=False``: the dev split held out of the training texts)."""
    return method.fit(data.train.texts[drop:], data.train.Y[drop:], data.hierarchy,
                      dev=(data.dev.texts, data.dev.Y) if dev else None)


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_unfitted(method):
    assert not hasattr(method, "network_") and not hasattr(method, "train_state_")
    with pytest.raises(NotFittedError):
        method.predict_proba(["a text"])


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, HMTCError)
    return message


@pytest.fixture(scope="module")
def reference(data):
    return fit(tiny(), data).predict_proba(data.test.texts)


@pytest.fixture(scope="module")
def interrupted(data, tmp_path_factory):
    """A checkpoint of a run interrupted after its first epoch (of three)."""
    folder = tmp_path_factory.mktemp("interrupted")
    original = checkpoints.Checkpoint.save_epoch

    def save_epoch(self, network, optimizer, state, improved):
        original(self, network, optimizer, state, improved)
        if state["epoch"] == 1:
            raise KeyboardInterrupt("simulated interruption after epoch 1")

    checkpoints.Checkpoint.save_epoch = save_epoch
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(tiny(checkpoint_dir=str(folder)), data)
    finally:
        checkpoints.Checkpoint.save_epoch = original
    return folder


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    method = fit(tiny(checkpoint_dir=str(folder)), data)
    return folder, method.predict_proba(data.test.texts)


def copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "checkpoint")


def flip(path, at: float = 0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------- other data
@pytest.mark.parametrize("drop, dev", [(30, True), (0, False)])
def test_resume_refuses_other_data(data, interrupted, finished, tmp_path, drop, dev):
    for source in (interrupted, finished[0]):
        folder = copy(source, tmp_path / source.name)
        before = snapshot(folder)
        method = tiny(checkpoint_dir=str(folder), resume=True)
        with pytest.raises(CheckpointError) as err:
            fit(method, data, drop=drop, dev=dev)
        message = one_line(err)
        assert f"cannot resume from {folder}:" in message and "trained on other data" in message
        assert "resume=False" in message
        assert snapshot(folder) == before  # the folder is left untouched
        assert_unfitted(method)


def test_resume_false_on_other_data_starts_afresh(data, interrupted, tmp_path):
    folder = copy(interrupted, tmp_path)
    saved = json.loads((folder / "config.json").read_text())["data"]
    method = fit(tiny(epochs=1, checkpoint_dir=str(folder)), data, drop=30)
    assert [r["epoch"] for r in method.train_state_["history"]] == [1]
    written = json.loads((folder / "config.json").read_text())["data"]
    assert written["hash"] != saved["hash"] and written["n_train"] == saved["n_train"] - 30


# ---------------------------------------------------------------------------- damaged files
def test_corrupted_weights_are_never_loaded(data, finished, interrupted, tmp_path):
    folder = copy(finished[0], tmp_path / "finished")
    flip(folder / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        MSML.from_checkpoint(folder)
    assert one_line(err) == (f"{folder / 'model.safetensors'}: SHA-256 checksum mismatch "
                             "(corrupted or changed since it was written); nothing was "
                             "loaded; train again with resume=False")
    method = tiny(checkpoint_dir=str(folder), resume=True)
    with pytest.raises(CheckpointError, match="model.safetensors: SHA-256 checksum mismatch"):
        fit(method, data)  # a finished run is loaded, not trained: refused likewise
    assert_unfitted(method)

    for name in ("last.safetensors", "optimizer.safetensors", "model.safetensors"):
        folder = copy(interrupted, tmp_path / name)
        flip(folder / name, at=0.9)
        before = snapshot(folder)
        method = tiny(checkpoint_dir=str(folder), resume=True)
        with pytest.raises(CheckpointError) as err:
            fit(method, data)
        assert one_line(err).startswith(f"{folder / name}: SHA-256 checksum mismatch")
        assert snapshot(folder) == before  # nothing trained, nothing saved
        assert_unfitted(method)


@pytest.mark.parametrize("damage", ["truncated", "missing", "unreadable"])
def test_truncated_missing_or_unreadable_files(data, interrupted, finished, tmp_path, damage):
    def spoil(path):
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif damage == "missing":
            path.unlink()
        else:  # a folder where the file should be
            path.unlink()
            path.mkdir()

    expected = {"truncated": "SHA-256 checksum mismatch", "missing": "missing from the "
                "checkpoint", "unreadable": "unreadable"}[damage]
    folder = copy(interrupted, tmp_path / "interrupted")
    spoil(folder / "optimizer.safetensors")
    method = tiny(checkpoint_dir=str(folder), resume=True)
    with pytest.raises(CheckpointError) as err:
        fit(method, data)
    assert one_line(err).startswith(f"{folder / 'optimizer.safetensors'}: {expected}")
    assert_unfitted(method)

    folder = copy(finished[0], tmp_path / "finished")
    spoil(folder / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        MSML.from_checkpoint(folder)
    assert one_line(err).startswith(f"{folder / 'model.safetensors'}: {expected}")


def test_encoder_files_and_json_are_checked(finished, tmp_path):
    folder = copy(finished[0], tmp_path / "vocab")
    vocab = folder / "tokenizer" / "tokenizer.json"
    vocab.write_text(vocab.read_text().replace("[UNK]", "[UNK2]"))
    with pytest.raises(CheckpointError) as err:
        MSML.from_checkpoint(folder)
    assert one_line(err).startswith(f"{vocab}: SHA-256 checksum mismatch")

    folder = copy(finished[0], tmp_path / "json")
    (folder / "train_state.json").write_text('{"epoch": 2, "fin')
    with pytest.raises(CheckpointError) as err:
        MSML.from_checkpoint(folder)
    assert one_line(err).startswith(f"{folder / 'train_state.json'}: not valid JSON")

    folder = copy(finished[0], tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "version": 1}))
    with pytest.raises(CheckpointError, match="format version 1"):
        MSML.from_checkpoint(folder)


# ---------------------------------------------------------------------------- NaN losses
def test_nan_loss_stops_training(data, interrupted, tmp_path, monkeypatch):
    original = MSMLNet.training_loss
    calls = []

    def training_loss(self, *args):
        loss = original(self, *args)
        calls.append(1)
        return loss * float("nan") if len(calls) == 6 else loss  # epoch 2, batch 2 of 4

    monkeypatch.setattr(MSMLNet, "training_loss", training_loss)
    folder = tmp_path / "checkpoint"
    method = tiny(checkpoint_dir=str(folder))
    with pytest.raises(TrainingError) as err:
        fit(method, data)
    message = one_line(err)
    assert message.startswith("MSML: non-finite training loss nan at epoch 2, step 6, batch 2 "
                              "of 4; training stopped")
    assert "lr_encoder=0.003, lr_head=0.01" in message and "precision" not in message
    assert_unfitted(method)
    state = json.loads((folder / "train_state.json").read_text())
    assert state["epoch"] == 1 and not state.get("finished")  # the last good epoch only

    calls.clear()
    with pytest.raises(TrainingError, match=r"or precision='fp32' \(bf16 now\)"):
        fit(tiny(precision="bf16"), data)


def test_non_finite_weights_after_a_finite_loss_stop_training(data, monkeypatch):
    original = Trainer.train_step
    calls = []

    def train_step(self, network, *args, **kwargs):
        loss = original(self, network, *args, **kwargs)
        calls.append(1)
        if len(calls) == 4:  # the epoch's last step leaves an infinite weight
            with torch.no_grad():
                next(p for p in network.parameters() if p.requires_grad).fill_(float("inf"))
        return loss

    monkeypatch.setattr(Trainer, "train_step", train_step)
    method = tiny()
    with pytest.raises(TrainingError, match="non-finite weights .* at epoch 1, step 4"):
        fit(method, data)
    assert_unfitted(method)


def test_nan_run_is_recorded_failed(data, tmp_path):
    from hmtc_bench.runner import run
    from hmtc_bench.tracking import Store
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    params = {**MSML.get_test_params(), "lr_encoder": 1e30, "lr_head": 1e30}
    with pytest.raises(TrainingError, match="non-finite training loss nan at epoch 1"):
        run("msml", data, params=params, store=store, quiet=True)
    records = store.records()
    assert [r.status for r in records] == ["failed"]
    assert records[0].error.startswith("TrainingError: MSML: non-finite training loss")
    assert not records[0].metrics and not records[0].finished


# ---------------------------------------------------------------------------- what still works
def test_normal_resume_still_works(data, interrupted, reference, tmp_path):
    folder = copy(interrupted, tmp_path)
    resumed = fit(tiny(checkpoint_dir=str(folder), resume=True), data)
    assert [r["epoch"] for r in resumed.train_state_["history"]] == [1, 2, 3]
    np.testing.assert_allclose(resumed.predict_proba(data.test.texts), reference, atol=1e-6)
    state = json.loads((folder / "train_state.json").read_text())
    assert state["finished"] and list(state["files"]) == ["model.safetensors"]
    assert not (folder / "last.safetensors").exists()
    again = fit(tiny(checkpoint_dir=str(folder), resume=True), data)  # loaded, not trained
    np.testing.assert_allclose(again.predict_proba(data.test.texts), reference, atol=1e-6)


def test_method_recorded_by_registered_name(finished, tmp_path):
    folder = copy(finished[0], tmp_path / "moved")
    config = json.loads((folder / "config.json").read_text())
    assert config["method_name"] == "msml"
    assert config["method"] == "hmtc_bench.methods.neural.msml:MSML"
    # the module moved: loaded through the registry by name
    (folder / "config.json").write_text(json.dumps({**config, "method": "gone.module:MSML"}))
    loaded = MSML.from_checkpoint(folder)
    assert type(loaded) is MSML
    np.testing.assert_allclose(loaded.predict_proba(_small_data().test.texts), finished[1],
                               atol=1e-6)
    # a name no longer registered: the module path as a fallback
    (folder / "config.json").write_text(json.dumps({**config, "method_name": "gone"}))
    assert type(MSML.from_checkpoint(folder)) is MSML
    (folder / "config.json").write_text(json.dumps({**config, "method_name": "gone",
                                                    "method": "gone.module:MSML"}))
    with pytest.raises(CheckpointError, match="neither registered nor importable"):
        MSML.from_checkpoint(folder)
