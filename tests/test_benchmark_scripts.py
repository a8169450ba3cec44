"""The study scripts of benchmarks/: msml_study.py --add (a corpus studied in a store of its
own joins the tables without dropping the corpora whose store is gone) and verdicts.py's
bootstrap over documents from exported predictions."""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.evaluation.significance import paired_bootstrap
from hmtc_bench.grid import load_grid, run_grid
from hmtc_bench.record import load_records_file
from hmtc_bench.tracking import Store

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from msml_study import merged, selected, tables  # noqa: E402
from verdicts import _msml_lines, _rank_lines, kept_predictions, render  # noqa: E402


def _run(dataset: str, method: str, seed: int, micro: float, config: str = "default",
         dev: float | None = None) -> dict:
    return {"method": method, "config": config, "dataset": dataset, "seed": seed,
            "decode": "threshold", "fit_seconds": 1.0, "params": {},
            "metrics": {"micro_f1": micro, "macro_f1": micro, "deepest": micro,
                        "macro_f1_tail": micro, "inconsistency_ratio": 0.0,
                        "dev_micro_f1": micro if dev is None else dev}}


def _trial(value: float) -> list[dict]:
    return [{"number": 0, "state": "complete", "params": {"lr": 1e-3}, "dev_micro_f1": value,
             "dev_macro_f1": value, "fit_seconds": 1.0}]


def test_the_store_s_datasets_replace_theirs_and_the_rest_are_kept():
    before = {"trials": {"msml-study/msml/wos-sample": _trial(0.7),
                         "msml-study/msml/icd10cm": _trial(0.1)},
              "runs": [_run("wos-sample", "msml", 0, 0.7), _run("icd10cm", "msml", 0, 0.1)]}
    new = {"trials": {'msml-study/msml{"epochs": 5, "max_length": 64}/icd10cm': _trial(0.8)},
           "runs": [_run("icd10cm", "msml", s, 0.8) for s in range(3)]}
    out = merged(before, new)
    assert sorted(out["trials"]) == ['msml-study/msml/wos-sample',
                                     'msml-study/msml{"epochs": 5, "max_length": 64}/icd10cm']
    assert sorted((r["dataset"], r["metrics"]["micro_f1"]) for r in out["runs"]) == [
        ("icd10cm", 0.8)] * 3 + [("wos-sample", 0.7)]
    text = tables(out)
    assert "### icd10cm: default" in text and "### wos-sample: default" in text
    assert "0.1000" not in text    # the stale icd10cm entries are gone


def test_a_store_that_adds_a_method_to_a_corpus_keeps_the_other_methods():
    before = {"trials": {'msml-study/msml{"epochs": 5}/icd10cm': _trial(0.8),
                         "msml-study/hiagm/icd10cm": _trial(0.1)},
              "runs": [_run("icd10cm", "msml", 0, 0.8), _run("icd10cm", "hiagm", 0, 0.1)]}
    new = {"trials": {"msml-study/hiagm/icd10cm": _trial(0.7)},
           "runs": [_run("icd10cm", "hiagm", s, 0.7) for s in range(3)]}
    out = merged(before, new)
    assert out["trials"] == {'msml-study/msml{"epochs": 5}/icd10cm': _trial(0.8),
                             "msml-study/hiagm/icd10cm": _trial(0.7)}
    assert sorted((r["method"], r["metrics"]["micro_f1"]) for r in out["runs"]) == [
        ("hiagm", 0.7)] * 3 + [("msml", 0.8)]


def test_a_store_with_nothing_new_keeps_everything():
    before = {"trials": {"msml-study/msml/wos-sample": _trial(0.7)},
              "runs": [_run("wos-sample", "msml", 0, 0.7)]}
    assert merged(before, {"trials": {}, "runs": []}) == before


def test_each_method_is_compared_in_the_configuration_it_scores_best_on_dev():
    # msml's tuned configuration is better on dev, flat-bert's default: the "selected" rows
    # pair msml tuned (test 0.8) with flat-bert default (test 0.7), seed by seed
    runs = [_run("icd10cm", "msml", s, 0.6 + s / 100, "default", dev=0.5) for s in range(3)]
    runs += [_run("icd10cm", "msml", s, 0.8 + s / 100, "tuned", dev=0.9) for s in range(3)]
    runs += [_run("icd10cm", "flat-bert", s, 0.7 + s / 50, "default", dev=0.8) for s in range(3)]
    runs += [_run("icd10cm", "flat-bert", s, 0.9, "tuned", dev=0.6) for s in range(3)]
    assert (selected(runs, "msml"), selected(runs, "flat-bert")) == ("tuned", "default")
    assert selected(runs, "hiagm") is None
    text = tables({"trials": {}, "runs": runs})
    row = next(line for line in text.splitlines() if "selected on dev" in line
               and "overall micro-F1" in line)
    assert row.startswith("| flat-bert | selected on dev (msml tuned, flat-bert default) |")
    assert "| +0.0900 |" in row      # mean of 0.8 + s/100 - (0.7 + s/50) over s = 0, 1, 2
    assert "hiagm" not in text
    # what the choice rests on: tuned minus default dev micro-F1, paired over the seeds
    assert "- msml: +0.4000 (p = 0.000, n = 3)" in text
    assert "- flat-bert: -0.2000 (p = 0.000, n = 3)" in text


def test_verdicts_adds_the_bootstrap_over_documents_where_predictions_were_exported(tmp_path):
    grid = write(tmp_path / "g.yaml", """\
datasets: [synthetic]
seeds: [0, 1, 2]
decode: [threshold]
methods:
  - method: flat-svm
    params: {max_features: 2000}
  - method: local-node
    params: {max_features: 2000}
""")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert run_grid(load_grid(grid), Store(uri), quiet=True)["finished"] == 6
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["export", str(out), "--predictions", "--tracking-uri",
                                      uri])
    assert result.exit_code == 0, result.output
    records = load_records_file(out)
    plain = render(records, "runs")
    assert "over documents" not in plain
    text = render(records, "runs", kept_predictions(out))
    line = next(x for x in text.splitlines() if x.startswith("- **threshold**"))
    # the best row against the other, seed by seed, as the bootstrap gives it directly
    means = {m: sum(r.metrics["micro_f1"] for r in records if r.method == m) / 3
             for m in ("flat-svm", "local-node")}
    best, other = sorted(means, key=lambda m: -means[m])
    store = Store(uri)
    hits, ps = 0, []
    for seed in range(3):
        a, b = (next(r for r in store.records() if r.method == m and r.seed == seed)
                for m in (best, other))
        truth, pred_a = store.test_predictions(a.run_id)
        _, pred_b = store.test_predictions(b.run_id)
        result = paired_bootstrap(truth, pred_a, pred_b, "micro_f1", 1000, 0.95, 0)
        hits += result.significant
        ps.append(result.p_value)
    assert (f"over documents significant on {hits} of 3 seeds (largest p = {max(ps):.3g})"
            in line), line
    assert text.replace(line, "") == plain.replace(
        next(x for x in plain.splitlines() if x.startswith("- **threshold**")), "")


def test_ranks_across_datasets_also_cover_methods_run_on_only_some_of_them():
    # msml ran on a and b only: the first line ranks the two methods every dataset has, the
    # second all three methods over a and b
    per_dataset = {"a": {"svm": 0.5, "lr": 0.4, "msml": 0.6},
                   "b": {"svm": 0.7, "lr": 0.3, "msml": 0.8},
                   "c": {"svm": 0.6, "lr": 0.2}}
    first, second = _rank_lines("tuned", per_dataset)
    assert first == "- **tuned** (3 datasets, 2 methods): svm 1.00, lr 2.00"   # no test of 2
    assert second.startswith("- **tuned** (2 datasets, 3 methods, only the datasets with all "
                             "methods: a, b): msml 1.00, svm 2.00, lr 3.00;")
    assert len(_rank_lines("tuned", {"a": per_dataset["c"], "c": per_dataset["c"]})) == 1


def test_msml_is_compared_with_each_rival_it_shares_a_dataset_with():
    from hmtc_bench.evaluation.significance import paired_seed_test
    msml = [0.80, 0.82, 0.81]
    rival = [0.78, 0.79, 0.80]
    seeds = [(s, s) for s in range(3)]
    table = {"rcv1": {"threshold": {
        "msml": {k: {"micro_f1": m, "macro_f1": m / 2} for k, m in zip(seeds, msml)},
        "flat-bert": {k: {"micro_f1": r, "macro_f1": r / 2} for k, r in zip(seeds, rival)}}},
        "wos": {"threshold": {"msml": {seeds[0]: {"micro_f1": 0.5, "macro_f1": 0.4}}}}}
    rows = [line for line in _msml_lines(table, {}, None) if line.startswith("| rcv1")]
    assert len(rows) == 2            # micro and macro against flat-bert; no hiagm, no wos
    p = paired_seed_test(msml, rival)["p_value"]
    assert rows[0] == f"| rcv1 | flat-bert | threshold | micro_f1 | +0.0200 | {p:.3g} |  |"
    assert rows[1].startswith("| rcv1 | flat-bert | threshold | macro_f1 | +0.0100 |")
