import json
import time

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def invoke(*args):
    return runner.invoke(app, list(args))


def test_list_is_fast_and_complete():
    start = time.perf_counter()
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert {"name": "flat-svm", "family": "flat", "available": True}.items() <= \
        next(m for m in listing["methods"] if m["name"] == "flat-svm").items()
    assert {"icd10cm", "synthetic"} <= {d["name"] for d in listing["datasets"]}
    assert time.perf_counter() - start < 5


def test_run_json_two_seeds_then_leaderboard(store):
    result = invoke("run", "--method", "flat-svm", "--dataset", "synthetic", "--seed", "1",
                    "--seed", "2", "--decode", "top-down", "--param", "C=0.5", "--json",
                    "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["seed"] for r in records] == [1, 2]
    record = records[0]
    assert record["status"] == "finished" and record["decode"] == "top-down"
    assert record["params"]["C"] == 0.5 and record["params"]["random_state"] == 1
    for key in ("micro_f1", "macro_f1", "macro_f1_present", "micro_f1_level_3",
                "macro_f1_level_1", "hier_precision", "hier_recall", "hier_f1",
                "inconsistency_ratio", "inconsistent_doc_share", "macro_f1_tail"):
        assert 0 <= record["metrics"][key] <= 1
    assert record["metrics"]["inconsistency_ratio"] == 0  # top-down is consistent
    assert record["metrics"]["micro_f1"] > 0.8
    for key in ("fit_seconds", "predict_seconds", "peak_memory_mb", "dataset_hash",
                "hierarchy_hash", "git_commit", "versions", "run_id"):
        assert record[key]
    board = invoke("leaderboard", "--dataset", "synthetic", "--tracking-uri", store)
    assert board.exit_code == 0, board.output
    row = next(line for line in board.output.splitlines() if "flat-svm" in line)
    assert "| top-down | 2 |" in row
    assert f"{record['metrics']['micro_f1']:.4f}" in row
    csv = invoke("leaderboard", "--format", "csv", "--tracking-uri", store)
    assert csv.output.startswith("dataset,method,decode,n,micro_f1")
    html = invoke("leaderboard", "--format", "html", "--tracking-uri", store)
    assert "<table>" in html.output
    chosen = invoke("leaderboard", "--method", "flat-svm", "--decode", "top-down", "--columns",
                    "micro_f1_level_3,predict_seconds", "--format", "csv", "--tracking-uri", store)
    assert chosen.exit_code == 0, chosen.output
    import csv
    header, *rows = list(csv.reader(chosen.output.splitlines()))
    assert header[:8] == ["dataset", "method", "decode", "n", "micro_f1_level_3",
                          "micro_f1_level_3_std", "predict_seconds", "predict_seconds_std"]
    assert len(rows) == 1 and rows[0][3] == "2"                   # numbers, not text
    assert float(rows[0][4]) == pytest.approx(
        (records[0]["metrics"]["micro_f1_level_3"] + records[1]["metrics"]["micro_f1_level_3"])
        / 2)
    for args, message in ((["--columns", "micro_f1,nonsense"], "unknown column(s) nonsense"),
                          (["--method", "local-node"], "for method(s) local-node")):
        failed = invoke("leaderboard", *args, "--tracking-uri", store)
        assert failed.exit_code != 0 and message in failed.output


def test_run_is_in_the_mlflow_store(store):
    from hmtc_bench.tracking import Store
    records = [r for r in Store(store).records() if r.method == "flat-svm"]
    assert records and records[0].metrics["hier_f1"] > 0
    assert records[0].params["C"] == 0.5  # read back with its type
    assert records[0].training is None  # no epochs to report
    import mlflow
    artifacts = {a.path for a in mlflow.tracking.MlflowClient(store).list_artifacts(
        records[0].run_id)}
    assert artifacts == {"record.json", "per_level_f1.png", "test_predictions.npz"}


def test_tracking_uri_from_environment(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = invoke("run", "--method", "flat-svm", "--dataset", "synthetic", "--json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize("args, message", [
    (["run", "--method", "flat-svn", "--dataset", "synthetic"], "did you mean flat-svm"),
    (["run", "--method", "flat-svm", "--dataset", "synthetc"], "did you mean synthetic"),
    (["run", "--method", "flat-svm", "--dataset", "./no/such/dir"], "no such file or folder"),
    (["run", "--method", "flat-svm", "--param", "gamma=1"], "has no parameter 'gamma'"),
    (["run", "--method", "flat-svm", "--param", "C"], "expected KEY=VALUE"),
    (["run", "--method", "flat-svm", "--decode", "greedy"], "unknown decoding policy"),
    (["leaderboard", "--format", "pdf"], "unknown format"),
])
def test_bad_input_one_line_nonzero(args, message, store):
    result = invoke(*args, *(["--tracking-uri", store] if args[0] != "data" else []))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_data_info_path_and_bad_taxonomy(tmp_path):
    write(tmp_path / "ok" / "x.taxonomy", "Root\tA\tB\n")
    write(tmp_path / "ok" / "x.json", "".join(
        json.dumps({"token": f"w{i}", "label": ["A" if i % 2 else "B"]}) + "\n" for i in range(30)))
    result = invoke("data", "info", str(tmp_path / "ok"), "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["labels_per_level"] == {"1": 2} and card["format"] == "hiagm"
    write(tmp_path / "bad" / "x.taxonomy", "Root\tA\nA\tB\nC\tD\n")
    write(tmp_path / "bad" / "x.json", '{"token": "a", "label": ["A"]}\n')
    result = invoke("data", "info", str(tmp_path / "bad"))
    assert result.exit_code == 1
    assert "x.taxonomy, line 3: unknown parent 'C'" in result.output


def test_nothing_half_written_on_bad_data(tmp_path, store):
    write(tmp_path / "d" / "x.taxonomy", "Root\tA\n")
    write(tmp_path / "d" / "x.json",
          '{"token": "a", "label": ["A"]}\n{"token": "b", "label": ["Q"]}\n')
    before = invoke("leaderboard", "--format", "csv", "--tracking-uri", store).output
    result = invoke("run", "--method", "flat-svm", "--dataset", str(tmp_path / "d"),
                    "--tracking-uri", store)
    assert result.exit_code == 1 and "line 2: label 'Q'" in result.output
    assert invoke("leaderboard", "--format", "csv", "--tracking-uri", store).output == before


def test_ui_serves_on_localhost_and_stops_cleanly(tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"sqlite:///{tmp_path / 'ui.db'}"
    process = subprocess.Popen([sys.executable, "-m", "hmtc_bench.cli", "ui", "--port", str(port),
                                "--tracking-uri", uri], stderr=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.time() + 90
        status = None
        while time.time() < deadline and status != 200:
            time.sleep(1)
            try:
                status = opener.open(f"http://127.0.0.1:{port}/", timeout=5).status
            except OSError:
                pass
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the MLflow server was left running"
