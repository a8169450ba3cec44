"""What the leaderboard shows: datasets found by name, folder or hash; numeric CSV; no spread
for a single run; artifacts beside the store."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.leaderboard import leaderboard, render
from hmtc_bench.record import RunRecord, dump_records
from hmtc_bench.tracking import Store


def run(seed, micro, dataset="corpus", data_hash="0123456789abcdef"):
    return RunRecord("flat-svm", dataset, seed, "threshold", 0.5, {"C": 1.0}, data_hash, "g",
                     status="finished", fit_seconds=2.0,
                     metrics={"micro_f1": micro, "macro_f1": micro / 2, "hier_f1": micro,
                              "macro_f1_tail": 0.0, "inconsistency_ratio": 0.0})


def test_dataset_by_name_folder_or_hash(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    records = dump_records([run(0, 0.5), run(0, 0.7, "other", "ffff")], tmp_path / "r.jsonl")
    for value in ("corpus", str(folder), "0123456789"):
        result = CliRunner().invoke(app, ["leaderboard", "--records", str(records),
                                          "--dataset", value])
        assert result.exit_code == 0, result.output
        assert "| corpus |" in result.output and "| other |" not in result.output
    missing = CliRunner().invoke(app, ["leaderboard", "--records", str(records),
                                       "--dataset", "nothing"])
    assert missing.exit_code == 1
    assert "it has finished runs of corpus, other" in missing.output


def test_csv_numbers_and_no_spread_for_one_run():
    rows = leaderboard([run(0, 0.5), run(1, 0.7), run(0, 0.9, "single", "5555aaaa")])
    header, *body = list(csv.reader(render(rows, "csv").splitlines()))
    assert header[3:7] == ["n", "micro_f1", "micro_f1_std", "macro_f1"]
    pooled = next(r for r in body if r[0] == "corpus")
    assert int(pooled[3]) == 2 and float(pooled[4]) == 0.6 and float(pooled[5]) > 0.14
    text = render(rows)
    assert "| single | flat-svm | threshold | 1 | 0.9000 | 0.4500 |" in text
    assert "0.6000 ± 0.1414" in text


def test_artifacts_go_beside_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    store = Store(f"sqlite:///{tmp_path / 'store' / 'runs.db'}")
    record = run(0, 0.5)
    record.metrics.update(micro_f1_level_1=0.5, macro_f1_level_1=0.4)
    store.log(record)
    assert list((tmp_path / "store" / "mlartifacts").rglob("record.json"))
    assert not (tmp_path / "elsewhere" / "mlartifacts").exists()


def test_significance_marks_best_tied_worse_and_untested():
    from hmtc_bench.leaderboard import leaderboard, mark_significance, render
    from hmtc_bench.record import RunRecord

    def rec(method, seed, micro, split=True):
        return RunRecord(method, "toy", seed, "threshold", 0.5, {"C": 1.0}, f"h{seed}", "hh",
                         status="finished", metrics={"micro_f1": micro, "macro_f1": micro},
                         split_seed=seed if split else None, corpus_hash="corpus")
    records = ([rec("a", s, v) for s, v in enumerate([0.80, 0.82, 0.81, 0.83])]
               + [rec("b", s, v) for s, v in enumerate([0.79, 0.83, 0.80, 0.82])]   # tied
               + [rec("c", s, v) for s, v in enumerate([0.70, 0.71, 0.69, 0.72])]   # worse
               + [rec("d", s, v) for s, v in enumerate([0.60, 0.62])])              # 2 seeds
    rows = mark_significance(leaderboard(records, ("micro_f1", "macro_f1")))
    marks = {r["method"]: r["marks"]["micro_f1"] for r in rows}
    assert marks == {"a": "best", "b": "tied", "c": "worse", "d": "untested"}
    text = render(rows)
    assert "toy (resampled splits)" in text and "**0.8150 ± 0.0129**" in text
    assert "paired t-test" in text.splitlines()[-1]
    assert "<b>0.8150 ± 0.0129</b>" in render(rows, "html")


def test_tuned_floats_shown_short_unless_that_hides_a_difference():
    from hmtc_bench.leaderboard import _method_cell

    def row(lr, dropout):
        return {"dataset": "d", "method": "m", "threshold": 0.5, "omitted": {},
                "params": {"lr": lr, "dropout": dropout}}
    rows = [row(0.00017690676737693357, 0.1), row(0.0079491, 0.1),
            row(0.0079491, 0.30000001), row(0.0079491, 0.30000002)]
    cells = [_method_cell(r, rows) for r in rows]
    assert cells[0] == "m (dropout=0.1, lr=0.0001769)"
    assert cells[1] == "m (dropout=0.1, lr=0.007949)"
    # 0.30000001 and 0.30000002 agree to 4 digits: dropout in full, so the rows differ
    assert cells[2] == "m (dropout=0.30000001, lr=0.007949)"
    assert len(set(cells)) == 4
