"""Decoding fitted on dev in runs: recorded, and never fitted on test labels."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from hmtc_bench.data.synthetic import generate
from hmtc_bench.runner import run_decodings

POLICIES = ["threshold", "tuned", "tuned-global", "level-top-k", "clamp", "mandatory-leaf"]


@pytest.fixture(scope="module")
def data():
    return generate(n_train=300, n_dev=120, n_test=80, seed=2, depth=3, branching=3)


def _run(data):
    return {r.decode: r for r in run_decodings("flat-logreg", data, 0, {"max_features": 3000},
                                               POLICIES, track=False, quiet=True)}


def test_fitted_policies_are_recorded_and_ignore_test_labels(data):
    records = _run(data)
    tuned = records["tuned"].decode_params
    assert len(tuned["thresholds"]) == len(data.hierarchy) and tuned["n_dev"] == len(data.dev)
    assert records["tuned-global"].decode_params["threshold"] > 0
    assert records["threshold"].decode_params is None
    # the same run with other test labels: the fitted decoders must not move
    rng = np.random.default_rng(0)
    scrambled = sp.csr_matrix(rng.random(data.test.Y.shape) < 0.3, dtype=np.int8)
    other = dataclasses.replace(data, test=dataclasses.replace(data.test, Y=scrambled))
    again = _run(other)
    for policy in ("tuned", "tuned-global"):
        assert again[policy].decode_params == records[policy].decode_params, policy
    assert again["tuned"].metrics["micro_f1"] != records["tuned"].metrics["micro_f1"]


def test_every_record_has_the_threshold_free_and_lca_metrics(data):
    record = _run(data)["mandatory-leaf"]
    for key in ("micro_ap", "macro_ap", "micro_ap_level_3", "lca_f1", "exact_match"):
        assert 0 <= record.metrics[key] <= 1, key
    assert record.metrics["inconsistency_ratio"] == 0


def test_a_policy_the_hierarchy_cannot_take_is_refused_before_the_fit(data, monkeypatch):
    from hmtc_bench.errors import ParameterError
    from hmtc_bench.hierarchy import LabelHierarchy
    edges = [*data.hierarchy.to_edges(), (data.hierarchy.labels[0], data.hierarchy.leaves[-1])]
    dag = dataclasses.replace(data, hierarchy=LabelHierarchy.from_edges(edges))
    monkeypatch.setattr("hmtc_bench.runner._fit_and_evaluate",
                        lambda *a, **k: pytest.fail("fitted before the policy was checked"))
    with pytest.raises(ParameterError, match="needs a tree"):
        run_decodings("flat-svm", dag, 0, {}, ["mandatory-leaf"], track=False, quiet=True)


# ---------------------------------------------------------------------- resampled splits
def _folder(tmp_path):
    """A one-file corpus (its split is drawn with a seed): RCV1-V2's HiAGM format."""
    import json
    corpus = generate(n_train=200, n_dev=20, n_test=60, seed=4, depth=2, branching=3)
    h = corpus.hierarchy
    folder = tmp_path / "toy"
    folder.mkdir()
    lines = ["Root\t" + "\t".join(h.children(h.root))]
    lines += [f"{p}\t" + "\t".join(h.children(p)) for p in h.labels if h.children(p)]
    (folder / "toy.taxonomy").write_text("\n".join(lines) + "\n")
    with open(folder / "toy_train.json", "w") as out:
        for split in corpus.splits().values():
            for text, labels in zip(split.texts, h.decode(split.Y)):
                out.write(json.dumps({"doc_label": labels, "doc_token": text.split(),
                                      "doc_keyword": [], "doc_topic": []}) + "\n")
    return folder


def test_resampled_splits_pool_into_one_row_with_a_real_spread(tmp_path):
    from hmtc_bench.data import load_dataset
    from hmtc_bench.leaderboard import leaderboard
    folder = _folder(tmp_path)
    data = load_dataset(str(folder))
    assert data.split_seed is not None
    records = []
    for seed in (0, 1, 2):
        split = load_dataset(str(folder), seed=seed)
        assert split.corpus_hash == data.corpus_hash
        records += run_decodings("flat-svm", split, seed, {}, ["threshold"], track=False,
                                 quiet=True, split_seed=seed)
    assert len({r.dataset_hash for r in records}) == 3        # three different splits
    assert len({r.config_key for r in records}) == 1 and len({r.cell_key for r in records}) == 3
    (row,) = leaderboard(records)
    assert row["n"] == 3 and row["micro_f1"][1] > 0           # a spread over splits
    fixed = run_decodings("flat-svm", data, 0, {}, ["threshold"], track=False, quiet=True)
    assert fixed[0].config_key != records[0].config_key       # another protocol, another row


def test_a_split_seed_on_a_fixed_split_is_refused(data):
    from hmtc_bench.errors import ParameterError
    fixed = dataclasses.replace(data, info={k: v for k, v in data.info.items()
                                            if k != "split_seed"})
    with pytest.raises(ParameterError, match="its split is fixed"):
        run_decodings("flat-svm", fixed, 0, {}, ["threshold"], track=False, quiet=True,
                      split_seed=1)


def test_a_grid_with_resampled_splits_resumes_and_the_store_keeps_the_split_seed(tmp_path):
    from hmtc_bench.grid import load_grid, run_grid
    from hmtc_bench.tracking import Store
    folder = _folder(tmp_path)
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(f"name: resampled\ndatasets: [{folder}]\nseeds: [0, 1]\n"
                         "split_seed: same\ndecode: [threshold, tuned]\nmethods: [flat-svm]\n")
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    grid = load_grid(grid_file)
    assert grid.split_seed == "same"
    assert run_grid(grid, store, quiet=True)["finished"] == 4
    assert run_grid(grid, store, quiet=True) == {"finished": 0, "skipped": 4, "failed": 0,
                                                 "unavailable": 0}
    records = store.records()
    assert sorted(r.split_seed for r in records) == [0, 0, 1, 1]
    assert len({r.corpus_hash for r in records}) == 1
    tuned = next(r for r in records if r.decode == "tuned")
    assert tuned.decode_params["n_dev"] > 0


def test_grid_refuses_a_bad_split_seed(tmp_path):
    from hmtc_bench.data import DataError
    from hmtc_bench.grid import load_grid
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("datasets: [synthetic]\nsplit_seed: sometimes\nmethods: [flat-svm]\n")
    with pytest.raises(DataError, match="split_seed"):
        load_grid(grid_file)


def test_a_registered_datasets_split_is_never_resampled(tmp_path):
    from typer.testing import CliRunner

    from hmtc_bench.cli import app
    from hmtc_bench.data import load_dataset
    assert load_dataset("synthetic").split_seed is None
    result = CliRunner().invoke(app, ["run", "--method", "flat-svm", "--dataset", "synthetic",
                                      "--split-seed", "same", "--seed", "1",
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 1 and "its split is fixed" in result.output, result.output
