"""The command line's model commands: ``train`` (fit and save a final model), ``predict``
(labels for new texts from a saved or logged model) and ``register`` (a run's model into the
MLflow model registry). Registered on the app of ``hmtc_bench.cli``, which imports this
module; heavy modules are imported inside the commands."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from hmtc_bench.cli import Dag, Strict, TrackingUri, _fail, _parse_params, app
from hmtc_bench.errors import HMTCError


@app.command()
def train(
    method: Annotated[str, typer.Option(help="Method name (see `hmtc-bench list`).")],
    out: Annotated[str, typer.Option(help="Folder to write the model to (an MLflow model).")],
    dataset: Annotated[str, typer.Option(help="Dataset name or folder.")] = "icd10cm",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    param: Annotated[Optional[list[str]], typer.Option(
        help="Method parameter KEY=VALUE (YAML value); repeatable.")] = None,
    decode: Annotated[str, typer.Option(
        help="The model's default decoding policy; tuned and tuned-global are fitted on "
             "dev here (dev then stays out of the fit) and saved with the model.")]
        = "threshold",
    threshold: Annotated[float, typer.Option(help="The model's default threshold.")] = 0.5,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    strict: Strict = False,
    dag: Dag = False,
):
    """Fit the final model of a method on a dataset and save it: on train + dev, or, for
    methods that stop early on dev (the neural ones) or a --decode fitted on dev, on train
    with dev for early stopping and the decoding's thresholds."""
    from pathlib import Path

    from hmtc_bench.predicting import check_decoding
    params = _parse_params(param or [])
    if Path(out).exists() and not force:
        _fail(f"--out {out}: already exists (--force replaces it)")
    try:
        from hmtc_bench.data import load_dataset
        from hmtc_bench.methods import inspect_method
        from hmtc_bench.methods.params import SEED
        from hmtc_bench.runner import train_final
        from hmtc_bench.tracking.models import save_mlflow_model
        try:
            SEED.check(seed)
        except ValueError as err:
            _fail(f"--seed {seed}: {err}")
        info = inspect_method(method)
        info.build(params, seed)  # unknown method or parameter: fail before loading data
        check_decoding(decode, threshold)
        data = load_dataset(dataset, strict=strict, dag=dag)
        from hmtc_bench.evaluation.decoding import check_policy
        try:       # a fitted policy needs dev; its thresholds are fitted by train_final
            check_policy(decode, data.hierarchy, has_dev=len(data.dev) > 0)
        except HMTCError as err:
            raise type(err)(f"--decode: {err} ({data.name})") from None
        import shutil
        import tempfile
        with tempfile.TemporaryDirectory(prefix="hmtc-bench-train-") as tmp:
            estimator, fitted = train_final(info, data, seed, params, decode, threshold)
            folder = estimator.save(Path(tmp) / "model", info={
                **fitted, "decode": decode, "threshold": threshold})
            target = Path(out)
            staged = save_mlflow_model(folder, target.with_name(f".{target.name}.new"))
            if target.exists():
                shutil.rmtree(target)
            staged.rename(target)
    except HMTCError as err:
        _fail(str(err))
    typer.echo(f"wrote {out}: {method} fitted on {data.name} ({fitted['fitted_on']}, "
               f"{fitted['n_train'] + fitted['n_dev']} documents, {fitted['fit_seconds']:.1f} "
               f"s); next: hmtc-bench predict --model {out} --text '...'")


@app.command()
def predict(
    model: Annotated[str, typer.Option(
        help="A model folder (hmtc-bench train), runs:/<run id>/model or "
             "models:/<name>/<version>.")],
    input: Annotated[Optional[str], typer.Option(
        "--input", help="Texts: JSON lines with \"text\" (and \"id\"), a .csv with a text "
                        "column, a .txt or - (standard input): one text per line.")] = None,
    text: Annotated[Optional[str], typer.Option(
        "--text", help="One text, predicted and printed readably.")] = None,
    output: Annotated[Optional[str], typer.Option(
        help="JSON-lines file to write (default: standard output); written whole or not "
             "at all.")] = None,
    top_k: Annotated[int, typer.Option(
        "--top-k", help="Also list the k best-scored labels of each text.")] = 0,
    decode: Annotated[Optional[str], typer.Option(
        help="Decoding policy (default: the model's).")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help="Decision threshold (default: the model's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts predicted at a time.")] = 256,
    json_output: Annotated[bool, typer.Option(
        "--json", help="With --text: print the prediction as JSON.")] = False,
    tracking_uri: TrackingUri = None,
):
    """Predict the labels of new texts with a saved or logged model."""
    from pathlib import Path
    if (input is None) == (text is None):
        _fail("give either --input FILE or --text TEXT")
    if batch_size < 1:
        _fail(f"--batch-size {batch_size}: must be at least 1")
    try:
        from hmtc_bench.methods.saving import load_model, read_manifest
        from hmtc_bench.predicting import (InputError, check_decoding, predict_file,
                                           predict_rows, readable)
        from hmtc_bench.tracking.models import defaults, local_model, saved_decode_params
        check_decoding(decode or "threshold", 0.5 if threshold is None else threshold, top_k)
        if input not in (None, "-") and not Path(input).is_file():
            raise InputError(f"--input {input}: no such file")
        with local_model(model, tracking_uri) as folder:
            saved_decode, saved_threshold = defaults(read_manifest(folder))
            decode = decode or saved_decode
            threshold = saved_threshold if threshold is None else threshold
            fitted = saved_decode_params(read_manifest(folder), decode)
            method = load_model(folder)
        check_decoding(decode, threshold, top_k, method.hierarchy_, fitted)
        if text is not None:
            if not text.strip():
                raise InputError("--text: empty text")
            row = next(predict_rows(method, [("text", text)], decode, threshold, top_k,
                                    decode_params=fitted))
            typer.echo(json.dumps(row, ensure_ascii=False, indent=1) if json_output
                       else readable(row))
            return
        count = predict_file(method, input, output, decode, threshold, top_k, batch_size,
                             decode_params=fitted)
    except HMTCError as err:
        _fail(str(err))
    if output not in (None, "-"):
        typer.echo(f"wrote {output}: {count} predictions ({decode}, threshold {threshold})",
                   err=True)


@app.command()
def register(
    model: Annotated[str, typer.Argument(help="The model to register, e.g. runs:/<id>/model.")],
    name: Annotated[str, typer.Option(help="Registered model name.")],
    tracking_uri: TrackingUri = None,
):
    """Register a run's model in the store's MLflow model registry (models:/<name>/<v>)."""
    try:
        from hmtc_bench.tracking.models import register as register_model
        version = register_model(model, name, tracking_uri)
    except HMTCError as err:
        _fail(str(err))
    typer.echo(f"registered models:/{name}/{version}")
