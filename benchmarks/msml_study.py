"""The MSML study at equal tuning budgets: ``results/msml_study_data.json`` and the tables
of ``results/msml_study.md`` (between the markers ``<!-- study:start -->`` and
``<!-- study:end -->``; the reading by hand around them is kept).

Reads, from the store the study ran in, every trial of the studies of
``baselines/msml-study.yaml`` (``hmtc-bench tune``) and the runs of the default and the
chosen configurations, and writes: the trials of each study (parameters, dev micro-F1,
state, seconds), the chosen parameters, the default and tuned rows per decoding (mean ± std
over seeds), and msml against flat-bert and against hiagm per claim of the paper (overall
micro- and macro-F1, the deepest level's macro-F1 and the tail labels' macro-F1, the
inconsistency ratio) at equal budget: the mean difference over the paired seeds and the
paired t-test's p, with both at their defaults, both tuned, and each in the configuration
(default or tuned) it scores best with on dev, which is what a user would pick.

    hmtc-bench bench baselines/msml-study.yaml --executor processes --workers 1 \
        --tracking-uri sqlite:///results/study.db
    hmtc-bench tune baselines/msml-study.yaml --trials 6 --tracking-uri sqlite:///results/study.db
    python benchmarks/msml_study.py --tracking-uri sqlite:///results/study.db

With ``--add`` the data file's entries of the (dataset, method) pairs this store does not
hold are kept (the corpora of an earlier study whose store is gone stay in the tables, from
their data, and so do the other methods of a corpus a store adds one method to):
``baselines/msml-study-icd.yaml``, ``msml-study-icd-hiagm.yaml``, ``msml-study-rcv1.yaml``,
``msml-study-reuters.yaml`` and ``msml-study-20ng.yaml`` each ran in a store of their own
(their commands are at the top of each file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean, stdev

from hmtc_bench.evaluation.significance import paired_seed_test
from hmtc_bench.methods import get_method
from hmtc_bench.record import canonical, decode_param
from hmtc_bench.tracking import Store
from hmtc_bench.tuning import STUDY_PREFIX
from sections import write_section  # benchmarks/sections.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- study:start -->", "<!-- study:end -->"
METHODS = ("msml", "flat-bert", "hiagm")
# the fixed budget each study grid pins (64 tokens and 5 epochs, 2 epochs on Reuters-21578;
# msml's defaults are longer since results/msml_ablations.md): not searched, so a run's values
# of these say nothing about whether it is a default or a tuned configuration
BUDGET = ("max_length", "epochs")
RIVALS = ("flat-bert", "hiagm")
CLAIMS = [("micro_f1", "overall micro-F1"), ("macro_f1", "overall macro-F1"),
          ("deepest", "deepest level's macro-F1"), ("macro_f1_tail", "tail labels' macro-F1"),
          ("inconsistency_ratio", "inconsistency ratio (lower is better)")]


def trials_of(store: Store) -> dict:
    """Study name -> its trials (number, state, params, value, fit seconds)."""
    client = store.client
    out = {}
    for experiment in client.search_experiments():
        if not experiment.name.startswith(STUDY_PREFIX):
            continue
        runs = client.search_runs([experiment.experiment_id], max_results=10_000)
        trials = []
        for run in runs:
            tags = run.data.tags
            if tags.get("state") not in ("complete", "pruned", "failed"):
                continue
            trials.append({"number": int(tags["trial"]), "state": tags["state"],
                           "params": {k[len("param."):]: decode_param(v)
                                      for k, v in run.data.params.items()
                                      if k.startswith("param.")},
                           "dev_micro_f1": run.data.metrics.get("value"),
                           "dev_macro_f1": run.data.metrics.get("dev_macro_f1"),
                           "fit_seconds": run.data.metrics.get("fit_seconds")})
        out[experiment.name[len(STUDY_PREFIX):]] = sorted(trials, key=lambda t: t["number"])
    return out


# the deep level a corpus's claim 2 is read on where its deepest level is too small to say
# anything: RCV1-V2's level 4 holds one label (4 / 55 / 43 / 1 labels per level)
DEEP_LEVEL = {"rcv1-v2-dev": 3}


def _deepest(metrics: dict, dataset: str) -> float | None:
    """The macro-F1 of the deepest level (``DEEP_LEVEL``'s where it names one)."""
    levels = [int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("macro_f1_level_")]
    level = DEEP_LEVEL.get(dataset, max(levels) if levels else None)
    return metrics.get(f"macro_f1_level_{level}") if levels else None


def runs_of(store: Store) -> list[dict]:
    """The finished runs of msml and flat-bert: method, configuration (default or tuned),
    dataset, seed, policy and the claim metrics."""
    out = []
    for record in store.records():
        if not record.finished or record.method not in METHODS:
            continue
        defaults = canonical({k: v for k, v in get_method(record.method)().get_params().items()
                              if k != "random_state" and k not in BUDGET})
        mine = {k: v for k, v in record.identity_params().items() if k in defaults}
        config = "default" if mine == {k: defaults[k] for k in mine} else "tuned"
        metrics = {k: record.metrics.get(k) for k, _ in CLAIMS if k != "deepest"}
        metrics["deepest"] = _deepest(record.metrics, record.dataset)
        metrics["dev_micro_f1"] = record.metrics.get("dev_micro_f1")
        out.append({"method": record.method, "config": config, "dataset": record.dataset,
                    "seed": record.seed, "decode": record.decode, "metrics": metrics,
                    "fit_seconds": record.fit_seconds,
                    "params": {k: v for k, v in mine.items() if v != defaults.get(k)}})
    return out


def _stats(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{mean(values):.4f} ± {stdev(values) if len(values) > 1 else 0.0:.4f}"


def selected(runs: list[dict], method: str) -> str | None:
    """The configuration (default or tuned) of ``method`` with the higher mean dev micro-F1
    at threshold 0.5: what a user with this budget would pick, since the default is one
    more configuration every method gets for free."""
    dev = {c: mean(v.values()) for c in ("default", "tuned") if (v := _dev(runs, method, c))}
    return max(dev, key=dev.get) if dev else None


def _dev(runs: list[dict], method: str, config: str) -> dict:
    """Seed -> dev micro-F1 at threshold 0.5 of ``method`` in ``config``."""
    return {r["seed"]: r["metrics"]["dev_micro_f1"] for r in runs
            if r["method"] == method and r["config"] == config and r["decode"] == "threshold"
            and r["metrics"]["dev_micro_f1"] is not None}


def _claim_rows(runs: list[dict], rival: str, configs: dict, label: str,
                decode: str) -> list[str]:
    """msml against ``rival``, each in its configuration ``configs[method]``, in one decoding,
    per claim: the mean paired difference over the seeds both have and the paired t-test's
    p."""
    pick = {m: {r["seed"]: r["metrics"] for r in runs if r["method"] == m
                and r["config"] == configs[m] and r["decode"] == decode}
            for m in ("msml", rival)}
    seeds = sorted(set(pick["msml"]) & set(pick[rival]))
    rows = []
    for key, claim in CLAIMS if len(seeds) >= 2 else []:
        a = [pick["msml"][s][key] for s in seeds]
        b = [pick[rival][s][key] for s in seeds]
        if None in a or None in b:
            continue
        test = paired_seed_test(a, b)
        rows.append(f"| {rival} | {label} | {decode} | {claim} | "
                    f"{test['mean_difference']:+.4f} | {test['p_value']:.3f} | {test['n']} |")
    return rows


def _dev_difference(runs: list[dict], method: str) -> str:
    """``method``'s tuned minus default dev micro-F1 at threshold 0.5 over the seeds both
    have, with the paired t-test's p ("" with fewer than 2 such seeds)."""
    dev = {c: _dev(runs, method, c) for c in ("tuned", "default")}
    seeds = sorted(set(dev["tuned"]) & set(dev["default"]))
    if len(seeds) < 2:
        return ""
    test = paired_seed_test([dev["tuned"][s] for s in seeds], [dev["default"][s] for s in seeds])
    return f"{test['mean_difference']:+.4f} (p = {test['p_value']:.3f}, n = {test['n']})"


def _comparisons(runs: list[dict], rival: str) -> list[tuple[dict, str]]:
    """The configurations msml and ``rival`` are compared in: both default, both tuned, and
    each the one selected on dev."""
    out = [({"msml": c, rival: c}, c) for c in ("default", "tuned")]
    mine, theirs = selected(runs, "msml"), selected(runs, rival)
    if mine and theirs:
        out.append(({"msml": mine, rival: theirs},
                    f"selected on dev (msml {mine}, {rival} {theirs})"))
    return out


def tables(data: dict) -> str:
    out = [START, ""]
    for name, trials in sorted(data["trials"].items()):
        out += [f"### Trials of `{name}`", "",
                "| trial | state | dev micro-F1 | dev macro-F1 | fit s | parameters |",
                "|---|---|---|---|---|---|"]
        for t in trials:
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in sorted(t["params"].items()))
            dev = "—" if t["dev_micro_f1"] is None else f"{t['dev_micro_f1']:.4f}"
            macro = "—" if t["dev_macro_f1"] is None else f"{t['dev_macro_f1']:.4f}"
            out.append(f"| {t['number']} | {t['state']} | {dev} | {macro} | "
                       f"{t['fit_seconds'] or 0:.0f} | {params} |")
        out.append("")
    runs = data["runs"]
    for dataset in sorted({r["dataset"] for r in runs}):
        here = [r for r in runs if r["dataset"] == dataset]
        out += [f"### {dataset}: default and tuned configurations (test; mean ± std over "
                "seeds)", ""]
        if dataset in DEEP_LEVEL:
            out += [f"(Deepest here means level {DEEP_LEVEL[dataset]}: the last level holds "
                    "too few labels to read.)", ""]
        out += ["| method | configuration | decode | n | micro-F1 | macro-F1 | deepest macro-F1 "
                "| tail macro-F1 | inconsistency | dev micro-F1 | fit s |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        groups = sorted({(r["method"], r["config"], r["decode"]) for r in here})
        for method, config, decode in groups:
            rows = [r for r in here if (r["method"], r["config"], r["decode"])
                    == (method, config, decode)]
            params = rows[0]["params"]
            shown = config if config == "default" else "tuned: " + ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in sorted(params.items()))
            cells = [_stats(r["metrics"][k] for r in rows)
                     for k in ("micro_f1", "macro_f1", "deepest", "macro_f1_tail",
                               "inconsistency_ratio", "dev_micro_f1")]
            fit = mean(r["fit_seconds"] or 0 for r in rows)
            out.append(f"| {method} | {shown} | {decode} | {len(rows)} | "
                       + " | ".join(cells) + f" | {fit:.0f} |")
        out += ["", "Dev micro-F1 at 0.5, the tuned configuration minus the default (paired over "
                "seeds; what the choice between them rests on):", ""]
        out += [f"- {method}: {line}" for method in METHODS
                if (line := _dev_difference(here, method))]
        out += ["", f"### {dataset}: msml against each rival, per claim (paired over seeds)",
                "", "| rival | configuration | decode | claim | msml − rival | p (paired t) | n |",
                "|---|---|---|---|---|---|---|"]
        for rival in RIVALS:
            for configs, label in _comparisons(here, rival):
                for decode in sorted({r["decode"] for r in here}):
                    out += _claim_rows(here, rival, configs, label, decode)
        out.append("")
    out.append(END)
    return "\n".join(out)


def _study_of(name: str) -> tuple[str, str]:
    """(dataset, method) of a study named ``<grid>/<method>[<fixed params>]/<dataset>``."""
    middle, dataset = name.split("/", 1)[1].rsplit("/", 1)
    return dataset, middle.split("{", 1)[0]


def merged(before: dict, new: dict) -> dict:
    """``new`` with ``before``'s trials and runs of the (dataset, method) pairs ``new`` does
    not hold: a store that reran a corpus replaces it, one that added a method to a corpus
    keeps the other methods' entries."""
    held = {(r["dataset"], r["method"]) for r in new["runs"]} | set(map(_study_of, new["trials"]))
    trials = {n: t for n, t in before["trials"].items() if _study_of(n) not in held}
    runs = [r for r in before["runs"] if (r["dataset"], r["method"]) not in held]
    return {"trials": {**trials, **new["trials"]}, "runs": runs + new["runs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///results/study.db")
    parser.add_argument("--data", default=str(ROOT / "results" / "msml_study_data.json"))
    parser.add_argument("--out", default=str(ROOT / "results" / "msml_study.md"))
    parser.add_argument("--add", action="store_true",
                        help="keep the data file's (dataset, method) pairs that this store "
                             "does not hold")
    args = parser.parse_args()
    store = Store(args.tracking_uri)
    data = {"trials": trials_of(store), "runs": runs_of(store)}
    if args.add:
        data = merged(json.loads(Path(args.data).read_text(encoding="utf-8")), data)
    Path(args.data).write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n",
                               encoding="utf-8")
    text = tables(data)
    path = Path(args.out)
    write_section(path, text, START, END, title='The MSML study at equal tuning budgets')
    print(f"wrote {path} and {args.data}")


if __name__ == "__main__":
    main()
