"""From benchmark to use: train, save, log, register, predict and serve models."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import servers
from hmtc_bench import progress
from hmtc_bench.cli import app
from hmtc_bench.data.synthetic import generate
from hmtc_bench.evaluation import decode
from hmtc_bench.methods import get_method, make_method
from hmtc_bench.methods.saving import load_model
from hmtc_bench.predicting import InputError, predict_rows

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def data():
    return generate(n_train=300, n_dev=80, n_test=60, seed=3, depth=3, branching=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('models') / 'mlflow.db'}"


def _neural():
    cls = get_method("msml")
    return cls(**cls.get_test_params())


@pytest.fixture(scope="module", params=["flat-svm", "msml"])
def fitted(request, data, tmp_path_factory):
    """A fitted method, its folder wrapped as an MLflow model, and its test predictions."""
    from hmtc_bench.tracking.models import save_mlflow_model
    with progress.quiet():
        method = (make_method("flat-svm", {"max_features": 3000}) if request.param == "flat-svm"
                  else _neural())
        method.fit(data.train.texts, data.train.Y, data.hierarchy,
                   dev=(data.dev.texts, data.dev.Y))
    root = tmp_path_factory.mktemp(request.param)
    folder = method.save(root / "model", info={"decode": "top-down", "threshold": 0.4})
    wrapped = save_mlflow_model(folder, root / "mlflow-model")
    return {"name": request.param, "method": method, "folder": folder, "mlflow": wrapped,
            "proba": method.predict_proba(data.test.texts), "exact": request.param != "msml"}


def _same(a, b, exact):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if exact:
        assert np.array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def _scores(rows, method):
    """(n, L) scores of the ``top`` lists (top_k = number of labels)."""
    index = method.hierarchy_.index
    out = np.zeros((len(rows), len(index)))
    for i, row in enumerate(rows):
        for label, score in row["top"]:
            out[i, index[label]] = score
    return out


def test_pyfunc_predicts_like_the_fitted_method(fitted, data):
    import mlflow.pyfunc
    import pandas as pd
    model = mlflow.pyfunc.load_model(str(fitted["mlflow"]))
    method = fitted["method"]
    L = len(method.hierarchy_)
    frame = model.predict(pd.DataFrame({"text": data.test.texts}), params={"top_k": L})
    assert list(frame.columns) == ["labels", "paths", "levels", "scores", "top"]
    _same(_scores(frame.to_dict("records"), method), fitted["proba"], fitted["exact"])
    # the model's own default decoding (top-down at 0.4) when none is given
    expected = method.hierarchy_.decode(decode(fitted["proba"], method.hierarchy_, "top-down", 0.4))
    got = model.predict(pd.DataFrame({"text": data.test.texts}))["labels"].tolist()
    assert [sorted(x) for x in got] == [sorted(x) for x in expected]


def test_reloaded_folder_predicts_like_the_fitted_method(fitted, data):
    for path in (fitted["folder"], fitted["mlflow"]):
        _same(load_model(path).predict_proba(data.test.texts), fitted["proba"], fitted["exact"])


def test_served_endpoint_answers_like_the_fitted_method(fitted, data):
    import urllib.request
    port = servers.free_port()
    server = servers.start([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                            str(fitted["mlflow"]), "--env-manager", "local", "--host",
                            "127.0.0.1", "-p", str(port), "-w", "1"],
                           f"http://127.0.0.1:{port}/ping")
    try:
        L = len(fitted["method"].hierarchy_)
        body = json.dumps({"dataframe_split": {"columns": ["text"],
                                               "data": [[t] for t in data.test.texts]},
                           "params": {"top_k": L, "decode": "threshold", "threshold": 0.5}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         body.encode(), {"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
    finally:
        servers.stop(server)
    rows = answer["predictions"]
    _same(_scores(rows, fitted["method"]), fitted["proba"], fitted["exact"])
    expected = decode(fitted["proba"], fitted["method"].hierarchy_, "threshold", 0.5)
    assert [sorted(r["labels"]) for r in rows] == \
        [sorted(x) for x in fitted["method"].hierarchy_.decode(expected)]


# ---------------------------------------------------------------------- the command line
def _train(folder, decode):
    """``hmtc-bench train`` of flat-svm on the synthetic data into ``folder``/svm."""
    out = folder / "svm"
    result = invoke("train", "--method", "flat-svm", "--dataset", "synthetic", "--out", out,
                    "--param", "max_features=3000", "--decode", decode)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("train"), "top-down")


def test_train_fits_train_plus_dev_and_records_it(trained):
    model = load_model(trained)
    info = model.saved_info_
    assert info["fitted_on"] == "train+dev" and info["dataset"] == "synthetic"
    assert info["decode"] == "top-down" and info["n_dev"] > 0
    assert (trained / "MLmodel").is_file()


def test_train_refuses_an_existing_folder_before_any_work(trained):
    result = invoke("train", "--method", "flat-svm", "--dataset", "synthetic", "--out", trained)
    assert result.exit_code == 1 and "already exists (--force replaces it)" in result.output


def _texts(n=7):
    return list(generate(seed=5).test.texts[:n])


def test_predict_jsonl_csv_and_stdin_agree_with_the_model(trained, tmp_path):
    texts = _texts()
    model = load_model(trained)
    expected = list(predict_rows(model, enumerate(texts, 1), "top-down", 0.5, top_k=3))
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n"
                             for i, t in enumerate(texts)) + "\n")
    result = invoke("predict", "--model", trained, "--input", jsonl, "--output",
                    tmp_path / "out.jsonl", "--top-k", "3")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"doc{i}" for i in range(len(texts))]
    assert [{k: v for k, v in r.items() if k != "id"} for r in rows] == \
        [{k: v for k, v in r.items() if k != "id"} for r in expected]
    csv_file = tmp_path / "in.csv"
    import csv
    with open(csv_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([[i, t] for i, t in enumerate(texts)])
    result = invoke("predict", "--model", trained, "--input", csv_file, "--top-k", "3")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["top"] for line in result.stdout.splitlines()] == \
        [r["top"] for r in expected]
    result = invoke("predict", "--model", trained, "--input", "-", "--top-k", "3",
                    input="\n".join(texts) + "\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["labels"] for line in result.stdout.splitlines()] == \
        [r["labels"] for r in expected]


def test_predict_one_text_prints_paths_with_scores(trained):
    result = invoke("predict", "--model", trained, "--text", _texts(1)[0], "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert " > " in lines[0] and "(0." in lines[0]
    assert len(lines) == 3 and lines[1].startswith("  0.")


@pytest.mark.parametrize("content, message", [   # after 300 good lines (past a batch)
    (b'{"text": "fine"}\n{"text": oops}\n', "in.jsonl, line 302: not JSON"),
    (b'{"text": "fine"}\n{"id": 3}\n', "in.jsonl, line 302: no \"text\" field"),
    (b'{"text": "fine"}\n\n{"text": "  "}\n', "in.jsonl, line 303: empty text"),
    (b'{"text": "fine"}\n{"text": "caf\xe9"}\n', "in.jsonl, line 302: not UTF-8"),
    (b'["a list"]\n', "in.jsonl, line 301: a JSON list"),
])
def test_bad_input_is_one_line_naming_file_and_line_and_leaves_no_output(
        trained, tmp_path, content, message):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join([b'{"text": "x"}\n'] * 300) + content)  # past the first batch
    output = tmp_path / "out.jsonl"
    output.write_text("earlier output\n")
    result = invoke("predict", "--model", trained, "--input", source, "--output", output)
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line, result.output
    assert output.read_text() == "earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_bad_options_are_refused_before_reading(trained, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "x"}\n')
    n_labels = len(load_model(trained).hierarchy_)
    for args, message in [(["--top-k", n_labels + 1], f"the model has {n_labels} labels"),
                          (["--decode", "beam"], "unknown decoding policy"),
                          (["--threshold", "1.5"], "between 0 and 1")]:
        result = invoke("predict", "--model", trained, "--input", source, *args)
        assert result.exit_code == 1 and message in result.output, result.output


def test_predict_refuses_an_altered_model(trained, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    coef = copy / "data" / "model" / "bank" / "coef.npy"
    raw = bytearray(coef.read_bytes())
    raw[-1] ^= 1
    coef.write_bytes(bytes(raw))
    result = invoke("predict", "--model", copy, "--text", "anything")
    assert result.exit_code == 1
    assert "coef.npy: SHA-256 checksum mismatch" in result.output


def test_prediction_streams_in_batches():
    """The first predictions come before the input ends (an endless input here)."""
    import itertools
    with progress.quiet():
        data = generate(n_train=100, n_dev=10, n_test=10, seed=1, depth=2, branching=2)
        model = make_method("flat-svm").fit(data.train.texts, data.train.Y, data.hierarchy)
    endless = ((i, "some text") for i in itertools.count())
    first = list(itertools.islice(predict_rows(model, endless, batch_size=16), 40))
    assert [r["id"] for r in first] == list(range(40))


def test_pyfunc_refuses_an_empty_text(fitted):
    import mlflow.pyfunc
    import pandas as pd
    if fitted["name"] != "flat-svm":
        pytest.skip("once is enough")
    model = mlflow.pyfunc.load_model(str(fitted["mlflow"]))
    with pytest.raises(InputError, match="row 2: empty text"):
        model.predict(pd.DataFrame({"text": ["fine", " "]}))


def test_run_log_model_then_register_and_predict_from_the_registry(store, tmp_path):
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    result = invoke("run", "--method", "flat-svm", "--dataset", "synthetic", "--param",
                    "max_features=3000", "--decode", "top-down", "--log-model",
                    "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    uri = next(line.split(": ", 1)[1] for line in result.stdout.splitlines()
               if line.startswith("model of seed 0"))
    assert uri.startswith("runs:/")
    result = invoke("register", uri, "--name", "synthetic-svm", "--tracking-uri", store)
    assert result.exit_code == 0 and "models:/synthetic-svm/1" in result.output, result.output
    texts = _texts(4)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    outputs = []
    for model_uri in (uri, "models:/synthetic-svm/1"):
        result = invoke("predict", "--model", model_uri, "--input", source, "--top-k", "5",
                        "--tracking-uri", store)
        assert result.exit_code == 0, result.output
        outputs.append([json.loads(line) for line in result.stdout.splitlines()])
    assert outputs[0] == outputs[1]
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        frame = mlflow.pyfunc.load_model("models:/synthetic-svm/1").predict(
            pd.DataFrame({"text": texts}), params={"top_k": 5})
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert frame["top"].tolist() == [r["top"] for r in outputs[0]]
    model = load_model_from_run(uri, store)
    assert model.saved_info_["fitted_on"] == "train" and model.saved_info_["decode"] == "top-down"


def load_model_from_run(uri, store):
    from hmtc_bench.tracking.models import local_model
    with local_model(uri, store) as folder:
        return load_model(folder)


def test_register_refuses_what_is_not_a_model(store):
    result = invoke("register", "runs:/0123456789abcdef/model", "--name", "x",
                    "--tracking-uri", store)
    assert result.exit_code == 1 and "cannot be fetched" in result.output


def test_predict_refuses_a_decoding_the_models_hierarchy_cannot_take(data, tmp_path):
    from hmtc_bench.hierarchy import LabelHierarchy
    h = data.hierarchy
    dag = LabelHierarchy.from_edges([*h.to_edges(), (h.labels[0], h.leaves[-1])])
    with progress.quiet():
        model = make_method("flat-svm", {"max_features": 2000}).fit(
            data.train.texts, data.train.Y, dag)
    folder = model.save(tmp_path / "dag-model")
    for decode_option, message in [("mandatory-leaf", "needs a tree"),
                                   ("tuned", "fitted on a dev split")]:
        result = invoke("predict", "--model", folder, "--text", "some text", "--decode",
                        decode_option)
        assert result.exit_code == 1 and message in result.output, result.output


# ---------------------------------------------------------------------- fitted decodings
def _lines(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("tuned"), "tuned")


def test_train_with_a_tuned_decoding_saves_the_thresholds_it_fitted_on_dev(tuned_model):
    from hmtc_bench.data import load_dataset
    from hmtc_bench.evaluation.decoding import fit_decoder
    model = load_model(tuned_model)
    info = model.saved_info_
    assert info["decode"] == "tuned" and info["n_dev"] == 0
    assert info["fitted_on"] == "train (dev kept for the decoding)"
    saved = np.asarray(info["decode_params"]["thresholds"])
    assert saved.shape == (len(model.hierarchy_),) and len(set(saved.round(6))) > 1
    # the same thresholds again, by hand, from the saved model's own dev scores
    data = load_dataset("synthetic")
    with progress.quiet():
        again = fit_decoder("tuned", data.hierarchy, 0.5,
                            model.predict_proba(data.dev.texts), data.dev.Y)
    np.testing.assert_allclose(saved, again.thresholds, atol=1e-6)


def test_predict_decodes_with_the_saved_thresholds(tuned_model, tmp_path):
    import mlflow.pyfunc
    import pandas as pd
    texts = _texts(12)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    result = invoke("predict", "--model", tuned_model, "--input", source)
    assert result.exit_code == 0, result.output
    model = load_model(tuned_model)
    thresholds = np.asarray(model.saved_info_["decode_params"]["thresholds"])
    with progress.quiet():
        expected = model.predict_proba(texts) >= thresholds[None, :]
    labels = np.asarray(model.hierarchy_.labels)
    assert [sorted(r["labels"]) for r in _lines(result)] == \
        [sorted(labels[row]) for row in expected]
    # threshold 0.5 is another decoding of the same model: not what the saved one gives
    plain = invoke("predict", "--model", tuned_model, "--input", source, "--decode",
                   "threshold")
    assert plain.exit_code == 0 and _lines(plain) != _lines(result)
    # the pyfunc flavour decodes the same way
    frame = mlflow.pyfunc.load_model(str(tuned_model)).predict(pd.DataFrame({"text": texts}))
    assert [sorted(x) for x in frame["labels"]] == [sorted(r["labels"]) for r in _lines(result)]


def test_a_fitted_decoding_the_model_does_not_carry_is_refused(trained, tuned_model):
    result = invoke("predict", "--model", trained, "--text", "some text", "--decode", "tuned")
    assert result.exit_code == 1
    assert "carries no thresholds fitted for it" in result.output, result.output
    assert "hmtc-bench train --decode tuned" in result.output
    # a tuned model's thresholds are for tuned: tuned-global is not fitted there
    result = invoke("predict", "--model", tuned_model, "--text", "x", "--decode",
                    "tuned-global")
    assert result.exit_code == 1 and "carries no thresholds" in result.output, result.output


def test_a_run_logged_with_a_tuned_decoding_predicts_with_its_thresholds(store, tmp_path):
    from hmtc_bench.tracking import Store
    result = invoke("run", "--method", "flat-svm", "--dataset", "synthetic", "--param",
                    "max_features=3000", "--decode", "tuned-global", "--log-model",
                    "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    uri = next(line.split(": ", 1)[1] for line in result.stdout.splitlines()
               if line.startswith("model of seed 0"))
    record = next(r for r in Store(store).records() if r.run_id == uri.split("/")[1])
    cut = record.decode_params["threshold"]
    texts = _texts(10)
    result = invoke("predict", "--model", uri, "--input", "-", "--tracking-uri", store,
                    input="\n".join(texts) + "\n")
    assert result.exit_code == 0, result.output
    model = load_model_from_run(uri, store)
    with progress.quiet():
        expected = model.predict_proba(texts) >= cut
    labels = np.asarray(model.hierarchy_.labels)
    assert [sorted(r["labels"]) for r in _lines(result)] == \
        [sorted(labels[row]) for row in expected]
