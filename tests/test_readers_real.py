"""The readers on the real shared corpora, read as they are (skipped when absent).

rcv1-v2-dev (hiagm) is covered in test_readers.py.
"""

import warnings

import pytest

from conftest import shared
from hmtc_bench.data import UnseenLabelWarning, load_dataset
from hmtc_bench.data.formats import detect_format


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shared files are valid and closed under ancestors
        # labels only in dev or test are counted (one warning, and the card), not an error
        warnings.simplefilter("always", UnseenLabelWarning)
        with warnings.catch_warnings(record=True) as seen:
            data = load_dataset(str(path))
    unseen = [w for w in seen if issubclass(w.category, UnseenLabelWarning)]
    assert len(unseen) == (1 if data.card()["labels_unseen_in_train"] else 0)
    return data


def test_wos_sample():
    folder = shared("wos-sample")
    assert detect_format(folder) == "relaclass"
    data = _load(folder)
    card = data.card()
    assert sum(card["documents"].values()) == 1000
    assert card["documents"] == {"train": 720, "dev": 80, "test": 200}
    assert card["labels_per_level"] == {1: 7, 2: 33}
    assert card["labels_used_per_level"] == {1: 7, 2: 33}
    assert card["labels_per_document"] == 2.0 and card["multi_path_share"] == 0.0
    assert card["structure"] == "tree"
    assert "Computer_Science" in data.hierarchy.labels_at_level(1)
    assert data.hierarchy.parents("Machine_learning") == ["Computer_Science"]
    assert card["mean_words_per_document"] == pytest.approx(196.5, abs=1)
    assert card["format"] == "relaclass" and "HDLTex" in card["licence"]


def test_amazon_sample():
    folder = shared("amazon-sample")
    data = _load(folder)
    card = data.card()
    assert card["documents"] == {"train": 720, "dev": 80, "test": 200}
    assert card["labels_per_level"] == {1: 5, 2: 52, 3: 265}
    assert card["labels_per_document"] == 3.0 and card["multi_path_share"] == 0.0
    assert card["mean_words_per_document"] == pytest.approx(71.4, abs=1)
    assert data.train.ids[0] == "B00020HH9U"  # the asin is the document id
    assert "research use only" in card["licence"]


@pytest.mark.parametrize("which", ["folder", "tarball"])
def test_reuters21578_modapte(which):
    folder = shared("reuters21578")
    path = folder if which == "folder" else folder / "reuters21578.tar.gz"
    assert detect_format(path) == "reuters21578"
    data = _load(path)
    card = data.card()
    assert card["modapte_documents"] == {"train": 9603, "test": 3299}
    assert card["documents_without_topics_left_out"] == {"train": 1828, "test": 280}
    assert card["documents"] == {"train": 6998, "dev": 777, "test": 3019}
    assert card["labels_per_level"] == {1: 6, 2: 118}
    assert card["labels_unseen_in_train"] == 4  # sfr, peseta, cottonseed, f-cattle: test only
    assert card["topics_in_grouping"] == 135
    assert data.hierarchy.labels_at_level(1) == ["Other subject", "Economic Indicator", "Currency",
                                                 "Corporate", "Commodity", "Energy"]
    assert data.hierarchy.parents("earn") == ["Corporate"]
    assert data.hierarchy.parents("money-fx") == ["Other subject"]
    assert card["labels_per_document"] == pytest.approx(2.296, abs=1e-3)
    assert card["multi_path_share"] == pytest.approx(0.1538, abs=1e-3)
    assert "research purposes only" in card["licence"]
    texts = dict(zip(data.train.ids, data.train.texts))
    assert texts["1"].startswith("BAHIA COCOA REVIEW\nShowers continued throughout the week")


def test_reuters21578_r90():
    from hmtc_bench.data.formats.reuters21578 import read as read_reuters21578
    data = read_reuters21578(shared("reuters21578"), topics="r90")
    assert len(data.hierarchy.labels_at_level(2)) == 90
    assert (len(data.train) + len(data.dev), len(data.test)) == (7770, 3019)
