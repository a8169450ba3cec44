"""Saved models as MLflow models: the pyfunc flavour, logging a run's model, and finding a
model by path or MLflow URI.

An MLflow model of hmtc-bench is a folder with MLflow's ``MLmodel`` file whose
``python_function`` flavour names this module as its loader (``loader_module``, no
pickle) and holds the hmtc-bench model folder (``hmtc_bench.methods.saving``) as its data
(``data/model``). So ``mlflow.pyfunc.load_model(uri).predict(df)``, the model registry
and ``mlflow models serve -m URI --env-manager local`` work on it. Its signature: a
``text`` string column in; ``labels``, ``paths``, ``levels`` and ``scores`` out (as
described in ``hmtc_bench.predicting``, and ``top`` with ``top_k``); parameters
``decode``, ``threshold`` and ``top_k`` with the model's own defaults.

``hmtc-bench train --out DIR`` writes such a folder; ``hmtc-bench run --log-model`` logs
one as the artifact ``model`` of each run (``runs:/<run id>/model``).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from hmtc_bench.evaluation.decoding import DEFAULT_POLICY, DEFAULT_THRESHOLD
from hmtc_bench.methods.saving import ModelError, load_model, read_manifest

ARTIFACT = "model"           # the artifact path of a run's model
DATA = "model"               # the hmtc-bench folder inside the MLflow model (data/model)
MLMODEL = "MLmodel"


def _signature(decode: str, threshold: float):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import (Array, ColSpec, DataType, Map, ParamSchema, ParamSpec,
                                     Schema)
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "text")]),
        outputs=Schema([ColSpec(Array(DataType.string), "labels"),
                        ColSpec(Array(Array(DataType.string)), "paths"),
                        ColSpec(Array(Array(DataType.string)), "levels"),
                        ColSpec(Map(DataType.double), "scores")]),
        params=ParamSchema([ParamSpec("decode", DataType.string, decode),
                            ParamSpec("threshold", DataType.double, float(threshold)),
                            ParamSpec("top_k", DataType.long, 0)]))


def defaults(manifest: dict) -> tuple[str, float]:
    """The decoding a saved model uses unless told otherwise (from its ``info``)."""
    info = manifest.get("info") or {}
    return info.get("decode", DEFAULT_POLICY), float(info.get("threshold", DEFAULT_THRESHOLD))


def saved_decode_params(manifest: dict, policy: str) -> dict | None:
    """What the saved model's own decoding fitted on dev (``decode_params``: the per-label
    thresholds of ``tuned``, the one threshold of ``tuned-global``), when ``policy`` is
    that decoding; else None (another policy has nothing fitted here)."""
    info = manifest.get("info") or {}
    return info.get("decode_params") if info.get("decode") == policy else None


def save_mlflow_model(model_folder, path, info: dict | None = None) -> Path:
    """Wrap the hmtc-bench model folder ``model_folder`` as an MLflow pyfunc model at
    ``path`` (written under a temporary name, then renamed); ``info`` updates the saved
    model's ``info`` (e.g. the run's decoding and run id) in the copy."""
    import json

    import mlflow.pyfunc

    from hmtc_bench import __version__
    model_folder, path = Path(model_folder), Path(path)
    manifest = read_manifest(model_folder)
    if path.exists():
        raise ModelError(f"{path}: already exists; choose another folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".saving", dir=path.parent))
    try:
        staged = work / "staging" / DATA
        shutil.copytree(model_folder, staged)
        if info:
            manifest["info"] = {**manifest.get("info", {}), **info}
            (staged / "model.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        with warnings.catch_warnings():   # no input example: it would load the model again
            warnings.filterwarnings("ignore", message=".*input example", category=UserWarning)
            mlflow.pyfunc.save_model(
                str(work / "mlflow"), loader_module=__name__, data_path=str(staged),
                signature=_signature(*defaults(manifest)),
                pip_requirements=[f"hmtc-bench=={__version__}"],
                metadata={"hmtc_bench_method": manifest.get("method") or manifest["class"],
                          "hmtc_bench_hierarchy_hash": manifest["hierarchy_hash"]})
        (work / "mlflow").rename(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def model_data(path) -> Path:
    """The hmtc-bench model folder of a local ``path``: the folder itself, or the data of
    an MLflow model folder written by ``save_mlflow_model``."""
    path = Path(path)
    if (path / MLMODEL).is_file():
        import yaml
        try:
            flavour = yaml.safe_load((path / MLMODEL).read_text())["flavors"]["python_function"]
        except (yaml.YAMLError, KeyError, TypeError) as err:
            raise ModelError(f"{path / MLMODEL}: not a pyfunc MLflow model ({err})") from None
        if flavour.get("loader_module") != __name__ or not flavour.get("data"):
            raise ModelError(f"{path / MLMODEL}: an MLflow model, but not one of hmtc-bench "
                             f"(loader {flavour.get('loader_module')!r})")
        return path / flavour["data"]
    return path


def is_mlflow_uri(uri: str) -> bool:
    return "://" in uri or uri.startswith(("runs:/", "models:/"))


@contextmanager
def local_model(uri: str, tracking_uri: str | None = None):
    """The local hmtc-bench model folder of ``uri``: a path (an hmtc-bench or MLflow model
    folder) or an MLflow URI (``runs:/<id>/model``, ``models:/<name>/<version>``, ...)
    downloaded from the store ``tracking_uri`` into a temporary folder for the block."""
    if not is_mlflow_uri(uri):
        yield model_data(uri)
        return
    import mlflow

    from hmtc_bench.tracking.store import Store
    store = Store(tracking_uri).check(write=False)
    mlflow.set_tracking_uri(store.uri)
    mlflow.set_registry_uri(store.uri)
    with tempfile.TemporaryDirectory(prefix="hmtc-bench-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"{uri}: cannot be fetched from {store.uri} ({first})") from None
        yield model_data(local)


def log_model(client, run_id: str, model_folder, info: dict | None = None) -> None:
    """Log the hmtc-bench model folder as the MLflow model ``model`` of run ``run_id``
    (``info``: see ``save_mlflow_model``)."""
    with tempfile.TemporaryDirectory(prefix="hmtc-bench-log-") as tmp:
        wrapped = save_mlflow_model(model_folder, Path(tmp) / ARTIFACT,
                                    {**(info or {}), "run_id": run_id})
        client.log_artifacts(run_id, str(wrapped), ARTIFACT)


def register(uri: str, name: str, tracking_uri: str | None = None) -> str:
    """Register the MLflow model ``uri`` (e.g. ``runs:/<id>/model``) as a new version of
    ``name`` in the store's model registry; returns the version."""
    import mlflow

    from hmtc_bench.tracking.store import Store
    store = Store(tracking_uri).check(write=True)
    mlflow.set_tracking_uri(store.uri)
    mlflow.set_registry_uri(store.uri)
    with local_model(uri, store.uri) as folder:     # refuse what is not an hmtc-bench model
        read_manifest(folder)
    return str(mlflow.register_model(uri, name).version)


# ---------------------------------------------------------------------- pyfunc
class PyfuncModel:
    """What ``mlflow.pyfunc.load_model`` wraps: predicts a DataFrame with a ``text``
    column (or a list of texts) into a DataFrame of predictions."""

    def __init__(self, folder):
        self.method = load_model(folder)
        self.manifest = read_manifest(folder)
        self.decode, self.threshold = defaults(self.manifest)

    def predict(self, model_input, params: dict | None = None):
        import pandas as pd

        from hmtc_bench.predicting import InputError, predict_rows
        params = params or {}
        if isinstance(model_input, pd.DataFrame):
            if "text" not in model_input.columns:
                raise InputError(f"model input: no \"text\" column (columns: "
                                 f"{', '.join(map(str, model_input.columns))})")
            texts = model_input["text"].tolist()
        else:
            texts = list(model_input)
        for number, text in enumerate(texts, 1):
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"model input, row {number}: "
                                 f"{'empty text' if isinstance(text, str) else 'not a string'}")
        policy = params.get("decode") or self.decode
        rows = predict_rows(self.method, enumerate(texts, 1), policy,
                            float(params.get("threshold", self.threshold)),
                            int(params.get("top_k") or 0),
                            decode_params=saved_decode_params(self.manifest, policy))
        return pd.DataFrame([{k: v for k, v in row.items() if k != "id"} for row in rows],
                            columns=None)


def _load_pyfunc(data_path: str) -> PyfuncModel:
    """MLflow's entry point for the pyfunc flavour (``loader_module``)."""
    return PyfuncModel(data_path)


__all__ = ["ARTIFACT", "PyfuncModel", "local_model", "log_model", "model_data", "register",
           "save_mlflow_model"]
