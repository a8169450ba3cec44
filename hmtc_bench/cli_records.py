"""The commands that move run records in and out of the store: ``hmtc-bench export`` and
``hmtc-bench import``, with the runs' test predictions when asked (``export
--predictions``: ``predictions/<run_id>.npz`` beside the record files, which ``import`` and
``compare --records`` read back). Registered on the app of ``hmtc_bench.cli``, which
imports this module; heavy modules are imported inside the commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hmtc_bench.cli import TrackingUri, _fail, _is_dataset, _read_records, _store, app
from hmtc_bench.errors import HMTCError


@app.command()
def export(
    dest: Annotated[str, typer.Argument(help="A .jsonl file, or a folder: one <dataset>.jsonl "
                                             "per dataset.")],
    dataset: Annotated[Optional[str], typer.Option(
        help="Only this dataset: its name, its folder or its data hash.")] = None,
    include_failed: Annotated[bool, typer.Option(
        "--include-failed", help="Export failed and unfinished runs too.")] = False,
    min_seeds: Annotated[int, typer.Option(
        help="Only configurations (leaderboard rows) with finished runs on at least this "
             "many seeds.")] = 1,
    predictions: Annotated[bool, typer.Option(
        "--predictions", help="Also write each run's test predictions (for `compare "
        "--records` and `import`): predictions/<run_id>.npz beside the record files; "
        "files there that no record of the folder names are removed.")]
        = False,
    tracking_uri: TrackingUri = None,
):
    """Export stored runs as JSON-lines run records (read back with --records)."""
    from collections import defaultdict
    from pathlib import Path

    from hmtc_bench.record import dump_records
    if min_seeds < 1:
        _fail(f"--min-seeds {min_seeds}: must be at least 1")
    try:
        records = [r for r in _read_records(None, tracking_uri)
                   if _is_dataset(r, dataset) and (include_failed or r.finished)]
    except HMTCError as err:
        _fail(str(err))
    if min_seeds > 1:
        seeds = defaultdict(set)
        for r in records:
            if r.finished:
                seeds[r.config_key].add((r.seed, r.split_seed))
        records = [r for r in records if len(seeds[r.config_key]) >= min_seeds]
    if not records:
        _fail("no runs to export" + (f" for dataset {dataset!r}" if dataset else "")
              + (f" with {min_seeds} seeds or more" if min_seeds > 1 else ""))
    records.sort(key=lambda r: (r.dataset, r.started_at, r.run_id or ""), reverse=True)
    if dest.endswith(".jsonl"):
        files = {Path(dest): records}
    else:
        files = defaultdict(list)
        for record in records:
            files[Path(dest) / f"{record.dataset}.jsonl"].append(record)
    for path, chunk in sorted(files.items()):
        dump_records(chunk, path)
        typer.echo(f"wrote {path} ({len(chunk)} runs)")
    if predictions:
        _export_predictions(records, dest, tracking_uri)


def _export_predictions(records, dest: str, tracking_uri) -> None:
    """Each finished run's stored test predictions to ``predictions_file(dest, run_id)``
    (written whole or not at all: a temporary file renamed)."""
    import os

    from hmtc_bench.record import prediction_payload, predictions_file, save_predictions
    store = _store(tracking_uri)
    written, without = 0, 0
    for record in records:
        pair = store.test_predictions(record.run_id) if record.finished else None
        if pair is None:
            without += record.finished
            continue
        path = predictions_file(dest, record.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        save_predictions(prediction_payload(*pair), part)
        os.replace(part, path)
        written += 1
    folder = predictions_file(dest, "x").parent
    typer.echo(f"wrote {written} runs' test predictions to {folder}"
               + (f"; {without} finished runs have none (finished before runs kept them)"
                  if without else ""))
    removed = _prune_predictions(folder)
    if removed:
        typer.echo(f"removed {removed} prediction files of {folder} that no record beside it "
                   "names (runs exported before under other ids, e.g. before an import)")


def _prune_predictions(folder) -> int:
    """Remove the ``*.npz`` files of ``folder`` (a records folder's ``predictions/``) whose
    run id no ``*.jsonl`` record file of the records folder names; none when one of them
    cannot be read."""
    from hmtc_bench.record import load_records_file
    try:
        named = {r.run_id for r in load_records_file(folder.parent)}
    except HMTCError:
        return 0
    stale = [path for path in folder.glob("*.npz") if path.stem not in named]
    for path in stale:
        path.unlink()
    return len(stale)


@app.command("import")
def import_records(
    paths: Annotated[list[str], typer.Argument(help="JSON-lines record files or folders.")],
    dataset: Annotated[Optional[str], typer.Option(
        help="Only this dataset: its name, its folder or its data hash.")] = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", help="Only this method; repeatable.")] = None,
    decode: Annotated[Optional[list[str]], typer.Option(
        "--decode", help="Only this decoding policy; repeatable.")] = None,
    tracking_uri: TrackingUri = None,
):
    """Log exported or locally kept run records into the store (cells it has finished
    already are skipped), with their test predictions where `export --predictions` wrote
    them."""
    from hmtc_bench.evaluation.decoding import parse_policy
    from hmtc_bench.record import (load_predictions, load_records_file, prediction_payload,
                                   predictions_file)
    try:
        for policy in decode or []:
            parse_policy(policy)   # a misspelt policy names itself instead of importing none
        store = _store(tracking_uri).check()
        records = [(path, r) for path in paths for r in load_records_file(path)
                   if _is_dataset(r, dataset) and (not method or r.method in method)
                   and (not decode or r.decode in decode)]
        done = store.finished_cells()
        logged = 0
        for path, record in records:
            if record.finished and record.cell_key in done:
                continue
            kept = predictions_file(path, record.run_id) if record.run_id else None
            if kept is not None and kept.exists():
                record.test_predictions = prediction_payload(*load_predictions(kept))
            record.run_id = record.experiment_id = None
            store.log(record)
            logged += 1
            if record.finished:
                done.add(record.cell_key)
    except HMTCError as err:
        _fail(str(err))
    typer.echo(f"logged {logged} runs, skipped {len(records) - logged} already in {store.uri}")
