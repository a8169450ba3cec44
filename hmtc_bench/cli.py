"""The command line: a thin typer shell over the Python API (the only module importing typer).

Heavy modules are imported inside the commands so that ``hmtc-bench --help`` and
``hmtc-bench list`` answer fast.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from hmtc_bench.errors import HMTCError  # the user's errors: one line each

app = typer.Typer(help="hmtc-bench: benchmark hierarchical multi-label text classification.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
DEBUG = {"on": False}


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help="Print the traceback of an unexpected error.")] = False):
    DEBUG["on"] = debug

TrackingUri = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                           "else sqlite:///results/mlflow.db)")]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Refuse label sets not closed under ancestors and invalid UTF-8 "
                     "instead of repairing them.")]
Dag = Annotated[bool, typer.Option(
    "--dag", help="Allow labels with several parents in formats that declare a tree "
                  "(HiAGM taxonomies, RCV1-V2).")]
RecordFiles = Annotated[Optional[list[str]], typer.Option(
    "--records", help="Read run records from this JSON-lines file or folder of *.jsonl "
                      "(see `hmtc-bench export`) instead of the store; repeatable.")]


def _fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _store(tracking_uri: str | None):
    from hmtc_bench.tracking import Store
    return Store(tracking_uri)


def _read_records(records: list[str] | None, tracking_uri: str | None):
    """Run records from JSON-lines files or folders (``--records``), else from the store."""
    if records:
        from hmtc_bench.record import load_records_file
        return [r for path in records for r in load_records_file(path)]
    return _store(tracking_uri).records()


def _is_dataset(record, dataset: str | None) -> bool:
    """Whether ``record`` is of the dataset of that name, folder or data hash (prefix)."""
    from pathlib import Path
    if dataset is None or record.dataset == dataset:
        return True
    if len(dataset) >= 6 and record.dataset_hash.startswith(dataset):
        return True
    path = Path(dataset)
    return path.exists() and path.resolve().name == record.dataset


def _no_runs(records, dataset, method=None) -> str:
    """Why nothing is shown, with what the store does have."""
    names = sorted({r.dataset for r in records if r.finished})
    where = f" for dataset {dataset!r}" if dataset else ""
    where += f" for method(s) {', '.join(method)}" if method else ""
    have = (f"; it has finished runs of {', '.join(names)}" if names else
            "; start one with `hmtc-bench run --method NAME`")
    return f"no finished runs in the store{where}{have}"


def _parse_params(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs; each value read as YAML, with ``1e-3`` a number (``load_yaml``),
    text that is no valid YAML kept as a string. The method checks the values."""
    import yaml

    from hmtc_bench.methods.params import load_yaml
    params = {}
    for pair in pairs:
        if "=" not in pair or not pair.split("=", 1)[0].strip():
            _fail(f"--param {pair!r}: expected KEY=VALUE")
        key, raw = pair.split("=", 1)
        try:
            params[key.strip()] = load_yaml(raw) if raw.strip() else raw
        except yaml.YAMLError:
            params[key.strip()] = raw
    return params


@app.command("list")
def list_command(json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List methods (family, availability) and datasets."""
    from hmtc_bench.methods import list_methods
    from hmtc_bench.plugins import list_plugins
    methods = list_methods()
    datasets = list_plugins("hmtc_bench.datasets")  # names only: loaders stay unimported
    if json_output:
        typer.echo(json.dumps({
            "methods": [{"name": m.name, "family": m.family, "available": m.available,
                         "reason": m.reason, "entry_point": m.value} for m in methods],
            "datasets": [{"name": d.name, "entry_point": d.value} for d in datasets.values()]},
            indent=2))
        return
    typer.echo("methods:")
    for m in methods:
        state = "available" if m.available else f"unavailable ({m.reason})"
        typer.echo(f"  {m.name:<16} {m.family:<7} {state}")
    typer.echo("datasets:")
    for d in datasets.values():
        typer.echo(f"  {d.name:<16} {d.value}")
    typer.echo("  (or a dataset folder: hmtc-bench data info PATH)")


@app.command()
def run(
    method: Annotated[str, typer.Option(help="Method name (see `hmtc-bench list`).")],
    dataset: Annotated[str, typer.Option(help="Dataset name or folder.")] = "icd10cm",
    seed: Annotated[Optional[list[int]], typer.Option(
        help="Random seed; repeat for several runs.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        help="Method parameter KEY=VALUE (YAML value); repeatable.")] = None,
    decode: Annotated[str, typer.Option(
        help="Decoding policy: threshold, top-down, clamp, level-top-k[:K], mandatory-leaf, "
             "tuned or tuned-global (the last two fitted on dev).")] = "threshold",
    threshold: Annotated[float, typer.Option(help="Decision threshold.")] = 0.5,
    json_output: Annotated[bool, typer.Option("--json", help="Print the run records as JSON.")]
        = False,
    strict: Strict = False,
    dag: Dag = False,
    log_model: Annotated[bool, typer.Option(
        "--log-model", help="Also log the fitted model as the MLflow model of each run "
                            "(runs:/<run id>/model), to promote it without refitting.")] = False,
    split_seed: Annotated[Optional[str], typer.Option(
        "--split-seed", help="Draw the train/dev/test split with this seed, or 'same': each "
                             "run's seed (corpora whose split is drawn; an official split "
                             "is kept and refused here).")] = None,
    tracking_uri: TrackingUri = None,
):
    """Run a method on a dataset and record every seed's run in MLflow."""
    from hmtc_bench.methods.params import SEED, THRESHOLD
    for option, value, spec in [("--threshold", threshold, THRESHOLD),
                                *(("--seed", s, SEED) for s in seed or [])]:
        try:
            spec.check(value)
        except ValueError as err:
            _fail(f"{option} {value}: {err}")
    from hmtc_bench.evaluation.decoding import parse_policy
    try:
        parse_policy(decode)
    except HMTCError as err:
        _fail(str(err))
    params = _parse_params(param or [])
    seeds = seed or [0]
    from hmtc_bench.grid import check_split_seed, resolve_split_seed
    try:
        split_option = check_split_seed(split_seed)
    except ValueError as err:
        _fail(f"--split-seed {split_seed}: {err}")
    try:
        from hmtc_bench.data import load_dataset
        from hmtc_bench.methods import inspect_method
        from hmtc_bench.runner import run_decodings
        info = inspect_method(method)
        info.build(params)  # unknown method or parameter: fail before loading data
        store = _store(tracking_uri).check()  # and a store that cannot take the runs
        data = load_dataset(dataset, strict=strict, dag=dag)
        records = []
        for s in seeds:
            chosen = resolve_split_seed(split_option, s)
            if chosen is not None and chosen != data.split_seed:
                data = load_dataset(dataset, strict=strict, dag=dag, seed=chosen)
            records += run_decodings(info, data, s, params, [decode], threshold, store,
                                     log_model=log_model, split_seed=chosen)
    except HMTCError as err:
        _fail(str(err))
    if json_output:
        typer.echo(json.dumps([r.to_dict(predictions=False) for r in records], indent=2,
                              default=str))
        return
    _print_records(records)
    if log_model:
        for record in records:
            typer.echo(f"model of seed {record.seed}: runs:/{record.run_id}/model")


def _print_records(records) -> None:
    keys = ["micro_f1", "macro_f1", "macro_f1_present", "hier_f1", "inconsistency_ratio"]
    first = records[0].metrics
    levels = sorted(k for k in first if k.startswith(("micro_f1_level_", "macro_f1_level_")))
    width = max(len(k) for k in keys + levels + ["fit_seconds"])
    for record in records:
        typer.echo(f"{record.method} on {record.dataset}, seed {record.seed}, "
                   f"decode {record.decode} (run {record.run_id or '-'})")
        for key in keys + levels:
            typer.echo(f"  {key:<{width}} {record.metrics[key]:.4f}")
        typer.echo(f"  {'fit_seconds':<{width}} {record.fit_seconds:.1f}")
        typer.echo(f"  {'predict_seconds':<{width}} {record.predict_seconds:.1f}")
        training = record.training
        if training:
            typer.echo(f"  {'training':<{width}} best epoch {training['best_epoch']} of "
                       f"{training['epochs_run']} ({training['stopped']})")


@app.command()
def leaderboard(
    dataset: Annotated[Optional[str], typer.Option(
        help="Only this dataset: its name, its folder or its data hash.")] = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", help="Only this method; repeatable.")] = None,
    decode: Annotated[Optional[str], typer.Option(help="Only this decoding policy.")] = None,
    columns: Annotated[Optional[str], typer.Option(
        help="Comma-separated metrics (a run's metric names, or fit_seconds, predict_seconds, "
             "peak_memory_mb); default micro_f1,macro_f1,hier_f1,macro_f1_tail,"
             "inconsistency_ratio. The deepest level's macro-F1 and fit seconds are added.")]
        = None,
    format: Annotated[str, typer.Option("--format", help="markdown, csv or html.")]
        = "markdown",
    significance: Annotated[bool, typer.Option(
        "--significance", help="Bold, per dataset, the best micro- and macro-F1 and every "
                               "row not significantly worse (paired t-test over seeds).")]
        = False,
    tracking_uri: TrackingUri = None,
    records_from: RecordFiles = None,
):
    """Mean ± std over seeds (with n) per configuration, from stored runs or record files."""
    from hmtc_bench.leaderboard import COLUMNS, FORMATS, leaderboard as board, mark_significance
    from hmtc_bench.leaderboard import render
    if format not in FORMATS:
        _fail(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    try:
        everything = _read_records(records_from, tracking_uri)
        records = [r for r in everything if _is_dataset(r, dataset)
                   and (not method or r.method in method) and (not decode or r.decode == decode)]
    except HMTCError as err:
        _fail(str(err))
    wanted = COLUMNS if columns is None else tuple(c.strip() for c in columns.split(",")
                                                  if c.strip())
    records = [r for r in records if r.finished]
    known = {k for r in records for k in r.metrics} | {
        "fit_seconds", "predict_seconds", "peak_memory_mb"}
    unknown = [c for c in wanted if c not in known]
    if records and unknown:
        _fail(f"unknown column(s) {', '.join(unknown)}; the runs have: "
              f"{', '.join(sorted(known))}")
    rows = board(records, wanted)
    if not rows:
        _fail(_no_runs(everything, dataset, method))
    if significance:
        mark_significance(rows)
    typer.echo(render(rows, format), nl=False)


@app.command()
def bench(
    grid_file: Annotated[str, typer.Argument(help="Grid file, e.g. baselines/quick.yaml.")],
    tracking_uri: TrackingUri = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the cells still to run, run none.")] = False,
    strict: Strict = False,
    dag: Dag = False,
    executor: Annotated[str, typer.Option(
        help="Where the cells run: serial (one after another here), processes (worker "
             "processes on this machine) or ray (a Ray cluster).")] = "serial",
    workers: Annotated[Optional[int], typer.Option(
        help="processes: how many workers (default: the cores); ray without --ray-address: "
             "the CPUs of the local Ray instance.")] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        help="ray: the cluster (auto, host:port, ray://host:10001); default: start a local "
             "Ray instance.")] = None,
    results: Annotated[str, typer.Option(
        help="driver: workers send records back and this process writes them (any store); "
             "worker: workers write to the store themselves (an `mlflow server` every node "
             "reaches).")] = "driver",
    data: Annotated[str, typer.Option(
        help="ray: datasets reach workers through the object store (object-store) or are "
             "read from their folder on a shared file system (path).")] = "object-store",
    max_retries: Annotated[int, typer.Option(
        help="Retries of a cell whose worker was lost.")] = 2,
    cell_timeout: Annotated[Optional[float], typer.Option(
        help="Seconds after which a running cell is stopped and recorded failed.")] = None,
    gpus_per_cell: Annotated[float, typer.Option(
        help="ray: the GPU share a neural cell asks for when the cluster has GPUs.")] = 1.0,
    log_model: Annotated[bool, typer.Option(
        "--log-model", help="Log each fitted model with its runs (MLflow model 'model').")]
        = False,
):
    """Run a grid of methods x parameters x datasets x seeds; finished cells are skipped."""
    try:
        from hmtc_bench.executors import ExecutorOptions
        from hmtc_bench.grid import load_grid, run_grid
        options = ExecutorOptions(executor=executor, workers=workers, ray_address=ray_address,
                                  results=results, data=data, max_retries=max_retries,
                                  cell_timeout=cell_timeout, gpus_per_cell=gpus_per_cell)
        store = _store(tracking_uri)
        options.check(store.uri)
        grid = load_grid(grid_file)
        typer.echo(f"grid {grid.name}: {len(grid.pairs())} (dataset, configuration) pairs x "
                   f"{len(grid.seeds)} seeds x {len(grid.decode)} decodings = {grid.n_cells} "
                   "cells", err=True)
        counts = run_grid(grid, store, dry_run=dry_run, strict=strict, dag=dag,
                          executor=options, log_model=log_model)
    except HMTCError as err:
        _fail(str(err))
    typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
    if counts.get("failed"):
        raise typer.Exit(1)


@app.command()
def tune(
    grid_file: Annotated[str, typer.Argument(help="Grid file: its datasets, methods (params "
                                             "fixed, 'space' searched), seeds and decodings.")],
    trials: Annotated[int, typer.Option(help="Trials per (dataset, method entry): the same "
                                        "budget for every method.")],
    metric: Annotated[str, typer.Option(help="What a trial maximises on dev: micro_f1, "
                                        "macro_f1, hier_f1 or lca_f1.")] = "micro_f1",
    tracking_uri: TrackingUri = None,
    strict: Strict = False,
    dag: Dag = False,
    refit: Annotated[bool, typer.Option(
        help="Refit each chosen configuration for the grid's seeds and evaluate on test.")]
        = True,
    executor: Annotated[str, typer.Option(
        help="Where the trials and the refits run: serial (here, one after another), "
             "processes or ray (trials in batches of --workers, one task each).")] = "serial",
    workers: Annotated[Optional[int], typer.Option(
        help="processes / ray: how many workers, and the trials of one batch (default: the "
             "cores).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="ray: the cluster.")] = None,
    defaults_first: Annotated[bool, typer.Option(
        "--defaults-first", help="Trial 0 of each study is the method's defaults (the other "
        "N-1 are proposed), so no study chooses what scored below them on dev.")] = False,
):
    """Tune every method of a grid on each dataset with N trials chosen on dev (Optuna TPE,
    seeded, pruned), then refit the chosen configurations; resumable."""
    try:
        from hmtc_bench.executors import ExecutorOptions
        from hmtc_bench.grid import load_grid
        from hmtc_bench.tuning_grid import plan_studies, tune_grid
        options = ExecutorOptions(executor=executor, workers=workers, ray_address=ray_address)
        store = _store(tracking_uri)
        options.check(store.uri)
        grid = load_grid(grid_file)
        specs = plan_studies(grid, trials, metric, defaults_first)   # checked before any work
        typer.echo(f"grid {grid.name}: {len(specs)} studies x {trials} trials, then the chosen "
                   f"configurations x {len(grid.seeds)} seeds", err=True)
        results, counts = tune_grid(grid, trials, store, metric=metric, executor=options,
                                    refit=refit, strict=strict, dag=dag,
                                    defaults_first=defaults_first)
    except HMTCError as err:
        _fail(str(err))
    for result in results:
        best = result.best
        states = [t.state for t in result.trials]
        typer.echo(f"{result.spec.name}: {states.count('complete')} complete, "
                   f"{states.count('pruned')} pruned, {states.count('failed')} failed; "
                   + (f"chose trial {best.number}, dev {metric} {best.value:.4f}, "
                      f"params {json.dumps(best.params, sort_keys=True)}" if best else
                      "nothing chosen"))
    if counts is not None:
        typer.echo("refit: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        if counts.get("failed"):
            raise typer.Exit(1)


@app.command()
def report(
    output: Annotated[str, typer.Option(help="HTML file to write.")] = "results/report.html",
    dataset: Annotated[Optional[str], typer.Option(
        help="Only this dataset: its name, its folder or its data hash.")] = None,
    ui_url: Annotated[str, typer.Option(help="Base URL of `hmtc-bench ui` for run links.")]
        = "http://127.0.0.1:5000",
    significance: Annotated[bool, typer.Option(
        "--significance", help="Mark significance in the leaderboards, rank the methods "
                               "across datasets (Friedman, Nemenyi) and write the "
                               "critical-difference diagram beside the report (PNG).")]
        = False,
    tracking_uri: TrackingUri = None,
    records_from: RecordFiles = None,
):
    """Write a static HTML report (leaderboards, per-level F1, F1 against fit time)."""
    from pathlib import Path

    from hmtc_bench.report import build_report
    try:
        everything = _read_records(records_from, tracking_uri)
    except HMTCError as err:
        _fail(str(err))
    records = [r for r in everything if _is_dataset(r, dataset)]
    if not any(r.finished for r in records):
        _fail(_no_runs(everything, dataset))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(build_report(records, ui_url, significance), encoding="utf-8")
    tmp.replace(path)
    typer.echo(f"wrote {path}")
    if significance:
        from hmtc_bench.leaderboard import leaderboard as board
        from hmtc_bench.plots import save_png
        from hmtc_bench.report import ranks_section
        _, figure = ranks_section(board([r for r in records if r.finished], ("micro_f1",)))
        if figure is not None:
            png = path.with_name(path.stem + "_cd.png")
            save_png(figure, png)
            typer.echo(f"wrote {png}")


@data_app.command("info")
def data_info(
    name_or_path: Annotated[str, typer.Argument(help="Dataset name or folder.")],
    strict: Strict = False,
    dag: Dag = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Print a dataset card: counts per level, labels per document, depth, provenance."""
    try:
        from hmtc_bench.data import load_dataset
        card = load_dataset(name_or_path, strict=strict, dag=dag).card()
    except HMTCError as err:
        _fail(str(err))
    if json_output:
        typer.echo(json.dumps(card, indent=2, default=str))
        return
    width = max(len(k) for k in card)
    for key, value in card.items():
        typer.echo(f"{key:<{width}}  {value}")


@data_app.command("download")
def data_download(
    name: Annotated[str, typer.Argument(help="20newsgroups, wos or rcv1-v2.")],
    dest: Annotated[str, typer.Option(help="Folder to download into.")] = "data",
    force: Annotated[bool, typer.Option(help="Download again even if present.")] = False,
    verify: Annotated[bool, typer.Option(help="Check SHA-256 checksums.")] = True,
):
    """Fetch a public corpus from its original source (resumes; verifies checksums)."""
    import warnings
    try:
        from hmtc_bench.data.download import download
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            folder = download(name, dest, force=force, verify=verify,
                              progress=lambda m: typer.echo(m, err=True))
    except HMTCError as err:
        _fail(str(err))
    typer.echo(f"{folder}  (next: hmtc-bench data info {folder})")


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
       tracking_uri: TrackingUri = None):
    """Serve the MLflow UI of the store on 127.0.0.1."""
    store = _store(tracking_uri)
    typer.echo(f"serving {store.uri} on http://127.0.0.1:{port} (Ctrl-C stops)", err=True)
    raise typer.Exit(store.serve_ui(port))


# the commands that use saved models (train, predict, register) and those that move run
# records in and out of the store (export, import) live in their own modules
from hmtc_bench import cli_compare, cli_models, cli_records  # noqa: E402,F401


def main() -> None:  # console script
    """Run the app; an exception that is not one of the project's own (a bug in hmtc-bench or
    in a plugin) is reported as such, its traceback written to a log file (and printed under
    ``--debug``)."""
    try:
        app()
    except Exception as err:
        import tempfile
        import traceback
        from pathlib import Path
        log = Path(tempfile.gettempdir()) / "hmtc-bench-error.log"
        log.write_text(traceback.format_exc(), encoding="utf-8")
        if DEBUG["on"]:
            raise
        typer.echo(f"error: {type(err).__name__}: {err}\n"
                   "This is not an error hmtc-bench checks for: if your input is not the "
                   "cause, it is a bug in hmtc-bench or in a plugin. The traceback is in "
                   f"{log} (or rerun with --debug).", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
