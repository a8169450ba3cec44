"""``hmtc-bench compare``: the paired bootstrap over test documents, from the test
predictions every finished run stores (``test_predictions.npz``)."""

import json

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench import progress
from hmtc_bench.cli import app
from hmtc_bench.data import load_dataset
from hmtc_bench.evaluation import decode
from hmtc_bench.evaluation.significance import paired_bootstrap
from hmtc_bench.grid import load_grid, run_grid
from hmtc_bench.methods import make_method
from hmtc_bench.tracking import Store

GRID = """\
datasets: [synthetic]
decode: [threshold]
methods:
  - method: flat-svm
    params: {max_features: 2000}
  - method: local-node
    params: {max_features: 2000}
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{folder / 'm.db'}"
    counts = run_grid(load_grid(write(folder / "g.yaml", GRID)), Store(uri), quiet=True)
    assert counts["finished"] == 2
    return uri


def _run(uri, method):
    return next(r for r in Store(uri).records() if r.method == method and r.finished)


def test_every_run_stores_its_test_predictions(store):
    """The stored matrices are the test labels and what the method's decoding predicts,
    refitted here independently."""
    data = load_dataset("synthetic")
    for name in ("flat-svm", "local-node"):
        truth, predicted = Store(store).test_predictions(_run(store, name).run_id)
        assert (truth != data.test.Y).nnz == 0
        with progress.quiet():
            method = make_method(name, {"max_features": 2000, "random_state": 0}).fit(
                data.train.texts, data.train.Y, data.hierarchy,
                dev=(data.dev.texts, data.dev.Y))
        expected = decode(method.predict_proba(data.test.texts), data.hierarchy)
        assert predicted.shape == expected.shape and (predicted != expected).nnz == 0


def test_compare_is_the_paired_bootstrap_of_the_two_runs(store):
    a, b = _run(store, "local-node"), _run(store, "flat-svm")
    result = invoke("compare", a.run_id, b.run_id, "--json", "--resamples", "300",
                    "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["a"]["method"] == "local-node" and got["documents"] > 0
    truth, pred_a = Store(store).test_predictions(a.run_id)
    _, pred_b = Store(store).test_predictions(b.run_id)
    for metric in ("micro_f1", "macro_f1"):
        # the observed difference is the runs' own metrics' difference
        assert got[metric]["difference"] == pytest.approx(a.metrics[metric] - b.metrics[metric],
                                                          abs=1e-9)
        expected = paired_bootstrap(truth, pred_a, pred_b, metric, 300, 0.95, 0)
        assert got[metric]["low"] == pytest.approx(expected.low)
        assert got[metric]["high"] == pytest.approx(expected.high)
        assert got[metric]["low"] <= got[metric]["difference"] <= got[metric]["high"]
    text = invoke("compare", a.run_id, b.run_id, "--resamples", "200", "--tracking-uri", store)
    assert text.exit_code == 0 and "micro_f1: A - B = " in text.output, text.output


def test_exported_predictions_compare_and_import_as_from_the_store(store, tmp_path):
    """export --predictions keeps each run's predictions beside its records: compare
    --records gives what compare on the store gives, and import carries them into a new
    store (where compare works on the new run ids)."""
    a, b = _run(store, "local-node"), _run(store, "flat-svm")
    out = tmp_path / "runs"
    result = invoke("export", out, "--predictions", "--tracking-uri", store)
    assert result.exit_code == 0 and "wrote 2 runs' test predictions" in result.output, \
        result.output
    assert sorted(p.name for p in (out / "predictions").iterdir()) == sorted(
        f"{r.run_id}.npz" for r in (a, b))
    args = (a.run_id, b.run_id, "--json", "--resamples", "200")
    from_store = invoke("compare", *args, "--tracking-uri", store)
    from_records = invoke("compare", *args, "--records", out)
    assert from_records.exit_code == 0, from_records.output
    assert json.loads(from_records.stdout) == json.loads(from_store.stdout)
    # one file of the folder reads the same predictions
    from_file = invoke("compare", *args, "--records", out / "synthetic.jsonl")
    assert json.loads(from_file.stdout) == json.loads(from_store.stdout)

    moved = f"sqlite:///{tmp_path / 'moved.db'}"
    result = invoke("import", out, "--tracking-uri", moved)
    assert result.exit_code == 0 and "logged 2 runs" in result.output, result.output
    new = {r.method: r for r in Store(moved).records()}
    for old in (a, b):
        truth, predicted = Store(moved).test_predictions(new[old.method].run_id)
        truth_0, predicted_0 = Store(store).test_predictions(old.run_id)
        assert (truth != truth_0).nnz == 0 and (predicted != predicted_0).nnz == 0
    again = invoke("compare", new["local-node"].run_id, new["flat-svm"].run_id, "--json",
                   "--resamples", "200", "--tracking-uri", moved)
    assert json.loads(again.stdout)["micro_f1"] == json.loads(from_store.stdout)["micro_f1"]

    # without the predictions, or with a run the records do not hold: one line
    (out / "predictions" / f"{b.run_id}.npz").unlink()
    for run, message in [(b.run_id, "export with --predictions"),
                         ("0123456789abcdef", "not in the records")]:
        result = invoke("compare", a.run_id, run, "--records", out)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1

    # exported again from the store they were imported into: new run ids, and the files of
    # the old ids, which no record names any more, are removed (the others stay)
    (out / "predictions" / "keep.txt").write_text("not a prediction file")
    result = invoke("export", out, "--predictions", "--tracking-uri", moved)
    assert result.exit_code == 0 and "removed 1 prediction files" in result.output, \
        result.output
    assert sorted(p.name for p in (out / "predictions").iterdir()) == sorted(
        [f"{r.run_id}.npz" for r in new.values()] + ["keep.txt"])


def test_compare_refuses_in_one_line(store):
    a = _run(store, "flat-svm")
    # a run without stored predictions: one logged from an exported record
    record = _run(store, "local-node")
    record.run_id, record.test_predictions = None, None
    record.seed = 7
    Store(store).log(record)
    old = next(r for r in Store(store).records() if r.seed == 7)
    for args, message in [
            ((a.run_id, a.run_id), "the same run"),
            ((a.run_id, "0123456789abcdef"), "not in the store"),
            ((a.run_id, old.run_id), "no stored test predictions"),
            ((a.run_id, old.run_id, "--resamples", "10"), "--resamples 10"),
            ((a.run_id, old.run_id, "--level", "1.5"), "--level 1.5")]:
        result = invoke("compare", *args, "--tracking-uri", store)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    # a run on other data (its data hash differs): not the same test documents
    moved = _run(store, "flat-svm")
    moved.run_id, moved.seed, moved.dataset_hash = None, 8, "0123456789abcdef"
    Store(store).log(moved)
    moved = next(r for r in Store(store).records() if r.seed == 8)
    result = invoke("compare", a.run_id, moved.run_id, "--tracking-uri", store)
    assert result.exit_code == 1 and "same test documents" in result.output, result.output


def test_import_takes_only_the_methods_datasets_and_policies_asked_for(store, tmp_path):
    """import --method / --decode / --dataset log only the matching records (with their
    predictions); a misspelt policy is one line, before the store is touched."""
    out = tmp_path / "runs"
    assert invoke("export", out, "--predictions", "--tracking-uri", store).exit_code == 0
    from hmtc_bench.record import load_records_file
    every = load_records_file(out)
    wanted = [r for r in every if r.method == "flat-svm" and r.decode == "threshold"]
    assert wanted and len(wanted) < len(every)
    into = f"sqlite:///{tmp_path / 'some.db'}"
    result = invoke("import", out, "--method", "flat-svm", "--decode", "threshold",
                    "--dataset", "synthetic", "--tracking-uri", into)
    assert result.exit_code == 0 and f"logged {len(wanted)} runs" in result.output, \
        result.output
    imported = {r.cell_key: r for r in Store(into).records()}
    assert sorted(imported) == sorted(r.cell_key for r in wanted)
    kept = {r.cell_key: (out / "predictions" / f"{r.run_id}.npz").exists() for r in wanted}
    assert any(kept.values())      # the predictions travel with the records that have them
    for key, record in imported.items():
        assert (Store(into).test_predictions(record.run_id) is not None) == kept[key]
    for args in (["--decode", "top-down"], ["--dataset", "wos-sample"],
                 ["--method", "msml"]):
        result = invoke("import", out, *args, "--tracking-uri", into)
        assert result.exit_code == 0 and result.output.startswith("logged 0 runs, skipped 0")
    result = invoke("import", out, "--decode", "top-dwn", "--tracking-uri",
                    f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 1 and "unknown decoding policy 'top-dwn'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()
