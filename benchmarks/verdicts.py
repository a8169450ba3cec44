"""What the verdicts rest on: decoding policies, resampled splits and significance, from the
records of ``baselines/verdicts.yaml`` and of its neural half, ``verdicts-neural.yaml``,
``verdicts-neural-large.yaml`` and ``verdicts-neural-hmcn.yaml``.

    hmtc-bench bench baselines/verdicts.yaml --tracking-uri sqlite:///results/verdicts.db
    hmtc-bench bench baselines/verdicts-neural.yaml --tracking-uri sqlite:///results/verdicts.db
    hmtc-bench bench baselines/verdicts-neural-large.yaml --executor processes --workers 2 \
        --tracking-uri sqlite:///results/verdicts.db           # and verdicts-neural-hmcn.yaml
    hmtc-bench export results/runs-verdicts --predictions --tracking-uri sqlite:///results/verdicts.db
    python benchmarks/verdicts.py [--records DIR] [--out results/verdicts_tables.md]

Per dataset: micro- and macro-F1 of every method under every policy (mean ± std over the
seeds, with resampled splits where the corpus's split is drawn), the method ranking under
``threshold`` beside the one under ``tuned``, and for each policy the paired t-test over
seeds of the best method against each other one; msml against each other neural method
(micro- and macro-F1, at 0.5 and tuned). Across datasets: average ranks, the
Friedman test and the Nemenyi critical difference, per policy. Where the records were
exported with ``--predictions`` (``predictions/<run_id>.npz`` beside them), the best method
against each other one also gets the paired bootstrap over the test documents (1,000
resamples, micro-F1), per seed: the only test a fixed split with deterministic fits allows.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("micro_f1", "macro_f1")
RIVALS = ("flat-bert", "hiagm", "hmcn")       # round 1's other neural methods, beside msml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default=str(ROOT / "results" / "runs-verdicts"))
    parser.add_argument("--out", default=str(ROOT / "results" / "verdicts_tables.md"))
    args = parser.parse_args()
    from hmtc_bench.record import load_records_file
    records = [r for r in load_records_file(args.records) if r.finished]
    source = Path(args.records).resolve()
    shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    Path(args.out).write_text(render(records, str(shown), kept_predictions(args.records)),
                              encoding="utf-8")
    print(f"wrote {args.out} ({len(records)} records)")


def kept_predictions(records_path):
    """run id -> (test labels, predictions) from the files ``export --predictions`` wrote
    beside the records (None for a run without one)."""
    from hmtc_bench.record import load_predictions, predictions_file

    def read(run_id):
        path = predictions_file(records_path, run_id) if run_id else None
        return load_predictions(path) if path is not None and path.exists() else None
    return read


def _document_test(best_runs, other_runs, seeds, predictions, metric="micro_f1") -> str:
    """The paired bootstrap over documents of ``metric``, best minus other, on each seed both
    have predictions for: "significant on k of n seeds (largest p = ...)", or "" when none."""
    from hmtc_bench.evaluation.significance import paired_bootstrap
    results = []
    for seed in seeds:
        a, b = predictions(best_runs[seed]), predictions(other_runs[seed])
        if a is None or b is None or (a[0] != b[0]).nnz:
            continue
        results.append(paired_bootstrap(a[0], a[1], b[1], metric, 1000, 0.95, 0))
    if not results:
        return ""
    hits = sum(r.significant for r in results)
    return (f"significant on {hits} of {len(results)} seeds "
            f"(largest p = {max(r.p_value for r in results):.3g})")


def _table(records):
    """{dataset: {policy: {method: {(seed, split): metrics}}}}"""
    table: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for r in records:
        table[r.dataset][r.decode][r.method][(r.seed, r.split_seed)] = r.metrics
    return table


def _mean_std(values):
    from statistics import mean, stdev
    return mean(values), (stdev(values) if len(values) > 1 else 0.0)


def render(records, source: str, predictions=None) -> str:
    """The tables; ``predictions`` (run id -> (labels, predictions) or None) adds the
    bootstrap over documents where both runs have them."""
    from hmtc_bench.evaluation.significance import paired_seed_test
    table = _table(records)
    run_ids: dict = defaultdict(dict)
    for r in records:
        run_ids[(r.dataset, r.decode, r.method)][(r.seed, r.split_seed)] = r.run_id
    policies = sorted({r.decode for r in records})
    out = ["# Verdicts: the tables (generated; the reading is in verdicts.md)", "",
           f"From {len(records)} finished records ({source}); commands in "
           "`benchmarks/verdicts.py`. Splits: resampled with split seed = seed where the corpus's "
           "split is drawn, the corpus's own otherwise (the dataset column says which). "
           "Significance: two-sided paired t-test over the seeds (and split seeds), "
           "p < 0.05; where both runs kept their test predictions, also the paired "
           "bootstrap over the test documents per seed (1,000 resamples, micro-F1, p < 0.05), "
           "given as the number of seeds on which it is significant and its largest p.", ""]
    ranks_by_policy: dict = {}
    for dataset in sorted(table):
        by_policy = table[dataset]
        resampled = any(r.split_seed is not None for r in records if r.dataset == dataset)
        out += [f"## {dataset} ({'resampled splits' if resampled else 'fixed split'})", ""]
        methods = sorted({m for p in by_policy.values() for m in p})
        for metric in METRICS:
            out += [f"### {metric}", "",
                    "| method | " + " | ".join(policies) + " |",
                    "|---|" + "---|" * len(policies)]
            for method in methods:
                cells = []
                for policy in policies:
                    runs = by_policy.get(policy, {}).get(method, {})
                    values = [m[metric] for m in runs.values()]
                    cells.append(f"{_mean_std(values)[0]:.4f} ± {_mean_std(values)[1]:.4f} "
                                 f"({len(values)})" if values else "")
                out.append(f"| {method} | " + " | ".join(cells) + " |")
            out.append("")
        for policy in policies:
            runs = by_policy.get(policy, {})
            means = {m: _mean_std([x["micro_f1"] for x in v.values()])[0]
                     for m, v in runs.items() if v}
            ranks_by_policy.setdefault(policy, {})[dataset] = means
        for policy in [p for p in ("threshold", "tuned") if p in by_policy]:
            runs = by_policy[policy]
            means = ranks_by_policy[policy][dataset]
            order = sorted(means, key=lambda m: -means[m])
            best = order[0]
            parts = []
            for method in order[1:]:
                seeds = sorted(set(runs[best]) & set(runs[method]), key=str)
                a = [runs[best][s]["micro_f1"] for s in seeds]
                b = [runs[method][s]["micro_f1"] for s in seeds]
                diffs = [x - y for x, y in zip(a, b)]
                if len(seeds) >= 1 and max(abs(d) for d in diffs) < 1e-12:
                    verdict = "identical on every seed"
                elif len(seeds) < 3 or max(diffs) - min(diffs) < 1e-12:
                    verdict = ("untested: the same difference on every seed (a fixed split "
                               "and deterministic fits)" if len(seeds) >= 3 else "untested")
                else:
                    p = paired_seed_test(a, b)["p_value"]
                    verdict = f"p = {p:.3g}, {'significant' if p < 0.05 else 'not significant'}"
                documents = _document_test(run_ids[(dataset, policy, best)],
                                           run_ids[(dataset, policy, method)], seeds,
                                           predictions) if predictions is not None else ""
                if documents:
                    verdict += f"; over documents {documents}"
                parts.append(f"{method} {means[best] - means[method]:+.4f} ({verdict})")
            out += [f"- **{policy}**, micro-F1 ranking: {' > '.join(order)}; {best} against "
                    f"the others: " + "; ".join(parts), ""]
        if "threshold" in by_policy and "tuned" in by_policy:
            a = ranks_by_policy["threshold"][dataset]
            b = ranks_by_policy["tuned"][dataset]
            order_a = sorted(a, key=lambda m: -a[m])
            order_b = sorted(b, key=lambda m: -b[m])
            moved = "the same order" if order_a == order_b else "the order moves"
            out += [f"- threshold vs tuned: {moved}; gain from tuning: " + ", ".join(
                f"{m} {b[m] - a[m]:+.4f}" for m in order_a if m in b), ""]
    out += _msml_lines(table, run_ids, predictions)
    out += ["## Across datasets (average rank by micro-F1, 1 = best)", ""]
    for policy, per_dataset in sorted(ranks_by_policy.items()):
        out += _rank_lines(policy, per_dataset)
    return "\n".join(out) + "\n"


def _msml_lines(table, run_ids, predictions) -> list[str]:
    """Round 1's comparisons: msml minus each other neural method per dataset, at 0.5 and
    tuned, micro- and macro-F1: the mean difference over the paired seeds, the paired t-test
    and (where the runs kept predictions) the bootstrap over documents."""
    from hmtc_bench.evaluation.significance import paired_seed_test
    out = ["## msml against the other neural methods (round 1's comparisons)", "",
           "msml minus each rival on the same splits, mean over the paired seeds; t: paired "
           "t-test p over the seeds; documents: the bootstrap over test documents per seed.", "",
           "| dataset | rival | policy | metric | msml − rival | t p | documents |",
           "|---|---|---|---|---|---|---|"]
    for dataset in sorted(table):
        for rival in RIVALS:
            for policy in ("threshold", "tuned"):
                runs = table[dataset].get(policy, {})
                if "msml" not in runs or rival not in runs:
                    continue
                seeds = sorted(set(runs["msml"]) & set(runs[rival]), key=str)
                for metric in METRICS:
                    a = [runs["msml"][s][metric] for s in seeds]
                    b = [runs[rival][s][metric] for s in seeds]
                    p = paired_seed_test(a, b)["p_value"]
                    documents = _document_test(run_ids[(dataset, policy, "msml")],
                                               run_ids[(dataset, policy, rival)], seeds,
                                               predictions, metric) if predictions else ""
                    out.append(f"| {dataset} | {rival} | {policy} | {metric} | "
                               f"{sum(a) / len(a) - sum(b) / len(b):+.4f} | {p:.3g} | "
                               f"{documents} |")
    return out + [""]


def _rank_lines(policy: str, per_dataset: dict) -> list[str]:
    """Average ranks, Friedman p and Nemenyi CD of the methods every dataset has; where some
    methods ran on fewer datasets (the neural ones), once more over the datasets that have
    them all."""
    from hmtc_bench.evaluation.significance import friedman
    everywhere = set.intersection(*(set(v) for v in per_dataset.values()))
    every_method = set.union(*(set(v) for v in per_dataset.values()))
    scopes = [(sorted(per_dataset), sorted(everywhere), "")]
    if everywhere != every_method:
        having_all = sorted(d for d, v in per_dataset.items() if set(v) == every_method)
        scopes.append((having_all, sorted(every_method),
                       f", only the datasets with all methods: {', '.join(having_all)}"))
    lines = []
    for datasets, methods, scope in scopes:
        if len(methods) < 2 or len(datasets) < 2:
            continue
        result = friedman([[per_dataset[d][m] for m in methods] for d in datasets])
        ranks = ", ".join(f"{m} {r:.2f}" for m, r in sorted(zip(methods, result["ranks"]),
                                                              key=lambda x: x[1]))
        p = result["p_value"]
        head = f"- **{policy}** ({len(datasets)} datasets, {len(methods)} methods{scope}): "
        lines.append(f"{head}{ranks}; Friedman p = {p:.3g}; Nemenyi CD = {result['cd']:.2f}"
                     if p is not None else f"{head}{ranks}")
    return lines


if __name__ == "__main__":
    main()
