"""``hmtc-bench compare RUN_A RUN_B``: is one run better than the other on the same test
documents? A paired bootstrap over the documents (``evaluation.significance``) of the
difference in micro- and macro-F1, from the runs' stored test predictions (the artifact
``test_predictions.npz`` every run finished since it existed carries), or, with
``--records``, from exported records and the predictions ``export --predictions`` wrote
beside them. Registered on the app of ``hmtc_bench.cli``; heavy modules are imported inside
the command."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from hmtc_bench.cli import TrackingUri, _fail, _store, app
from hmtc_bench.errors import HMTCError


def comparable(a, b) -> str | None:
    """Why two run records cannot be compared over documents (None: they can)."""
    for name, value in (("dataset_hash", "data"), ("split_seed", "split seed"),
                        ("hierarchy_hash", "hierarchy")):
        if getattr(a, name) != getattr(b, name):
            return (f"the runs differ in their {value} ({getattr(a, name)} vs "
                    f"{getattr(b, name)}): a paired test needs the same test documents")
    return None


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The first run's id.")],
    run_b: Annotated[str, typer.Argument(help="The second run's id.")],
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of the documents.")]
        = 1000,
    level: Annotated[float, typer.Option(help="Confidence level of the interval.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    records: Annotated[Optional[list[str]], typer.Option(
        help="Read the two runs from exported record files or folders (with the predictions "
             "`export --predictions` wrote) instead of the store.")] = None,
    tracking_uri: TrackingUri = None,
):
    """Paired bootstrap over the test documents of two runs: the difference A - B in micro-
    and macro-F1, its confidence interval and two-sided p."""
    if resamples < 100:
        _fail(f"--resamples {resamples}: must be at least 100")
    if not 0.5 <= level < 1.0:
        _fail(f"--level {level}: must be in [0.5, 1)")
    if run_a == run_b:
        _fail("RUN_A and RUN_B are the same run")
    try:
        from hmtc_bench.evaluation.significance import METRICS, paired_bootstrap
        runs, pairs = (_from_records(records, (run_a, run_b)) if records else
                       _from_store(_store(tracking_uri), (run_a, run_b)))
        (truth, pred_a), (truth_b, pred_b) = pairs
        if truth.shape != truth_b.shape or (truth != truth_b).nnz:
            raise HMTCError("the runs' test labels differ: not the same test documents")
        results = {metric: paired_bootstrap(truth, pred_a, pred_b, metric, resamples, level,
                                            seed) for metric in METRICS}
    except HMTCError as err:
        _fail(str(err))
    if json_output:
        typer.echo(json.dumps({
            "a": {"run_id": run_a, "method": runs[0].method, "decode": runs[0].decode},
            "b": {"run_id": run_b, "method": runs[1].method, "decode": runs[1].decode},
            "documents": int(truth.shape[0]),
            **{m: {"difference": r.difference, "low": r.low, "high": r.high,
                   "p_value": r.p_value, "level": r.level, "resamples": r.n_resamples,
                   "significant": r.significant} for m, r in results.items()}}, indent=1))
        return
    a, b = runs
    typer.echo(f"A: {a.method} ({a.decode}, seed {a.seed}), B: {b.method} ({b.decode}, seed "
               f"{b.seed}) on {a.dataset}: {truth.shape[0]} test documents, {resamples} "
               f"paired resamples")
    for metric, r in results.items():
        typer.echo(f"  {metric}: A - B = {r.difference:+.4f}, {r.level:.0%} interval "
                   f"[{r.low:+.4f}, {r.high:+.4f}], p = {r.p_value:.3f}"
                   f"{' (significant)' if r.significant else ''}")


def _checked(runs: list) -> None:
    for record in runs:
        if not record.finished:
            raise HMTCError(f"run {record.run_id}: {record.status}, not finished")
    why = comparable(*runs)
    if why:
        raise HMTCError(why)


def _no_predictions(record) -> HMTCError:
    return HMTCError(f"run {record.run_id} ({record.method} on {record.dataset}): no stored "
                     "test predictions (finished before runs kept them); rerun it")


def _from_store(store, run_ids) -> tuple[list, list]:
    """The two runs' records and (labels, predictions), read by id (not the whole store)."""
    from hmtc_bench.tracking.mapping import record_of
    store.check(write=False)
    runs = []
    for run_id in run_ids:
        try:
            runs.append(record_of(store.client.get_run(run_id)))
        except Exception:
            raise HMTCError(f"run {run_id}: not in the store {store.uri}") from None
    _checked(runs)
    pairs = []
    for record in runs:
        pair = store.test_predictions(record.run_id)
        if pair is None:
            raise _no_predictions(record)
        pairs.append(pair)
    return runs, pairs


def _from_records(paths: list[str], run_ids) -> tuple[list, list]:
    """The two runs from exported record files, their predictions from beside them."""
    from hmtc_bench.record import load_predictions, load_records_file, predictions_file
    found = {}
    for path in paths:
        for record in load_records_file(path):
            if record.run_id in run_ids:
                found.setdefault(record.run_id, (path, record))
    for run_id in run_ids:
        if run_id not in found:
            raise HMTCError(f"run {run_id}: not in the records {', '.join(paths)}")
    runs = [found[run_id][1] for run_id in run_ids]
    _checked(runs)
    pairs = []
    for path, record in (found[run_id] for run_id in run_ids):
        kept = predictions_file(path, record.run_id)
        if not kept.exists():
            raise HMTCError(f"run {record.run_id} ({record.method} on {record.dataset}): no "
                            f"test predictions at {kept} (export with --predictions)")
        pairs.append(load_predictions(kept))
    return runs, pairs
