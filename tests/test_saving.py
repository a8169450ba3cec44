"""Model folders: refused when not whole or not ours, never half-written."""

import json

import numpy as np
import pytest

from hmtc_bench import progress
from hmtc_bench.methods import make_method
from hmtc_bench.methods.saving import ModelError, load_model, read_manifest
from hmtc_bench.testing import _small_data


@pytest.fixture(scope="module")
def data():
    return _small_data()


@pytest.fixture(scope="module")
def fitted(data):
    with progress.quiet():
        return make_method("local-node", {"max_features": 2000}).fit(
            data.train.texts, data.train.Y, data.hierarchy)


@pytest.fixture
def folder(fitted, tmp_path):
    return fitted.save(tmp_path / "model", info={"dataset": "synthetic"})


def test_manifest_names_method_hierarchy_versions_and_files(folder, fitted):
    manifest = read_manifest(folder)
    assert manifest["method"] == "local-node"
    assert manifest["hierarchy_hash"] == fitted.hierarchy_.content_hash
    assert {"numpy", "scikit-learn", "python"} <= set(manifest["versions"])
    assert manifest["info"] == {"dataset": "synthetic"}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"model.json"}
    assert "hierarchy.json" in manifest["files"]


def test_load_refuses_another_format_version(folder):
    manifest = json.loads((folder / "model.json").read_text())
    manifest["version"] = 99
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"model\.json: model format version 99"):
        load_model(folder)


def test_load_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(ModelError, match="no model.json"):
        load_model(tmp_path / "other")
    (tmp_path / "other" / "model.json").write_text('{"format": "sklearn"}')
    with pytest.raises(ModelError, match="not an hmtc-bench model"):
        load_model(tmp_path / "other")
    with pytest.raises(ModelError, match="no such model folder"):
        load_model(tmp_path / "missing")


@pytest.mark.parametrize("name", ["bank/coef.npy", "hierarchy.json", "tfidf/words.terms.json"])
def test_load_refuses_an_altered_file(folder, name):
    path = folder / name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{name}: SHA-256 checksum mismatch"):
        load_model(folder)


def test_load_refuses_a_missing_file(folder):
    (folder / "bank" / "intercept.npy").unlink()
    with pytest.raises(ModelError, match=r"intercept\.npy: missing"):
        load_model(folder)


def test_save_refuses_an_existing_folder_and_overwrites_only_when_told(fitted, folder, data):
    with pytest.raises(ModelError, match="already exists"):
        fitted.save(folder)
    fitted.save(folder, overwrite=True)
    np.testing.assert_array_equal(load_model(folder).predict_proba(data.test.texts),
                                  fitted.predict_proba(data.test.texts))


def test_a_failed_save_leaves_nothing(fitted, tmp_path):
    fitted.odd_ = object()          # a learned attribute that is neither array nor JSON
    try:
        with pytest.raises(TypeError, match="odd_"):
            fitted.save(tmp_path / "model")
    finally:
        del fitted.odd_
    assert list(tmp_path.iterdir()) == []


def test_load_of_another_class_is_refused(folder):
    from hmtc_bench.methods.classical.flat import FlatSVM
    with pytest.raises(ModelError, match="holds a local-node, not a FlatSVM"):
        FlatSVM.load(folder)


def test_an_unfitted_method_is_not_saved(tmp_path):
    from hmtc_bench.methods.base import NotFittedError
    with pytest.raises(NotFittedError):
        make_method("flat-svm").save(tmp_path / "model")
