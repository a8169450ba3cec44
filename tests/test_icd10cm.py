import numpy as np

from hmtc_bench.data import load_dataset


def test_embedded_default_is_real_and_well_split():
    data = load_dataset("icd10cm")
    card = data.card()
    assert sum(card["documents"].values()) >= 10_000
    assert card["depth"] == 3 and card["labels_per_level"][1] == 22
    assert "public domain" in card["licence"] and "stratified" in card["split"]
    train_support = np.asarray(data.train.Y.sum(axis=0)).ravel()
    for split in (data.dev, data.test):
        used = np.asarray(split.Y.sum(axis=0)).ravel() > 0
        assert (train_support[used] > 0).all(), "a dev/test label has no training example"
    assert "Cholera" in data.train.texts + data.dev.texts + data.test.texts
    again = load_dataset("icd10cm")  # from the cache
    assert again.content_hash == data.content_hash
