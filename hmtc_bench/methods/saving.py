"""Saved models: the folder a fitted method is saved to, and how it is read back.

A model folder holds no pickle. Its files:

``model.json``       format name and version, the method (registered name and
                     ``module:Class``), its parameters, the hierarchy's hash, the package
                     versions, how it was fitted (``info``: dataset, its hash, which splits,
                     the default decoding), and the SHA-256 and size of every other file;
``hierarchy.json``   the label hierarchy: its root and (parent, child) edges;
the method's own     written by its ``_save_state`` through a ``ModelWriter``: arrays as
                     ``.npy`` (no object arrays), JSON, text (LightGBM's own model format),
                     safetensors and the tokenizer's own files for the neural methods.

``HMTCMethod.save(path)`` writes the folder under a temporary name beside ``path`` and
renames it when every file is written, so a folder at ``path`` is always whole.
``load_model(path)`` (also ``HMTCMethod.load``) refuses, in one line naming the file
(``ModelError``), a folder that is not a model folder, one of another format version, and
one with a missing, changed or unreadable file: every file is checked against its
SHA-256 before any is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from hmtc_bench.errors import HMTCError

FORMAT = "hmtc-bench-model"
VERSION = 1
MANIFEST = "model.json"
HIERARCHY = "hierarchy.json"


class ModelError(HMTCError):
    """A model folder that cannot be saved or loaded (names the folder or file)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_name(name: str) -> str:
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or name == MANIFEST:
        raise ValueError(f"{name!r} is not a file name inside a model folder")
    return name


class ModelWriter:
    """Writes the files of a model folder being saved (``_save_state`` gets one)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, name: str) -> Path:
        """A path inside the folder (parent folders made) for files written by a library,
        e.g. a tokenizer's ``save_pretrained``."""
        target = self.root / _check_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def array(self, name: str, array) -> None:
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"{name}: object arrays cannot be saved without pickle")
        with open(self.path(name + ".npy"), "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    def json(self, name: str, obj) -> None:
        self.path(name + ".json").write_text(json.dumps(obj, indent=1, sort_keys=True),
                                             encoding="utf-8")

    def text(self, name: str, text: str) -> None:
        self.path(name).write_text(text, encoding="utf-8")


class ModelReader:
    """Reads the files of a verified model folder (``_load_state`` gets one)."""

    def __init__(self, root: Path, files: dict):
        self.root = root
        self.files = files

    def path(self, name: str) -> Path:
        if name not in self.files and not any(f.startswith(name.rstrip("/") + "/")
                                              for f in self.files):
            raise ModelError(f"{self.root / name}: not in the model folder's {MANIFEST}")
        return self.root / name

    def array(self, name: str) -> np.ndarray:
        path = self.path(name + ".npy")
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ModelError(f"{path}: not a readable array ({err})") from None

    def json(self, name: str):
        path = self.path(name + ".json")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelError(f"{path}: not valid JSON ({err})") from None

    def text(self, name: str) -> str:
        return self.path(name).read_text(encoding="utf-8")

    def has(self, name: str) -> bool:
        return name in self.files


def save_method(method, path, info: dict | None = None, overwrite: bool = False) -> Path:
    """Save the fitted ``method`` to folder ``path`` (see the module docstring); ``info``
    (JSON-able) says how it was fitted. An existing ``path`` is refused unless
    ``overwrite``; returns the folder."""
    from hmtc_bench.methods.base import NotFittedError
    from hmtc_bench.runner import package_versions
    if not hasattr(method, "hierarchy_"):
        raise NotFittedError(f"{type(method).__name__} is not fitted; nothing to save")
    path = Path(path)
    if path.exists() and not overwrite:
        raise ModelError(f"{path}: already exists; choose another folder or overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".saving", dir=path.parent))
    try:
        writer = ModelWriter(work)
        hierarchy = method.hierarchy_
        writer.json("hierarchy", {"root": hierarchy.root,
                                  "edges": [list(e) for e in hierarchy.to_edges()]})
        method._save_state(writer)
        files = {p.relative_to(work).as_posix(): {"sha256": _sha256(p), "bytes": p.stat().st_size}
                 for p in sorted(work.rglob("*")) if p.is_file()}
        cls = type(method)
        manifest = {
            "format": FORMAT, "version": VERSION,
            "method": method_name(cls), "class": f"{cls.__module__}:{cls.__qualname__}",
            "params": json.loads(json.dumps(method.get_params())),
            "hierarchy_hash": hierarchy.content_hash, "n_labels": len(hierarchy),
            "versions": package_versions(),
            "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "info": info or {}, "files": files}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(work, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return path


def method_name(cls: type) -> str | None:
    from hmtc_bench.methods import registered_name
    return registered_name(cls)


def read_manifest(path) -> dict:
    """The checked ``model.json`` of the model folder ``path`` (``ModelError`` otherwise)."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise ModelError(f"{path}: no such model folder")
    if not manifest_path.exists():
        raise ModelError(f"{path}: no {MANIFEST} (not a model folder saved by hmtc-bench)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{manifest_path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{manifest_path}: not an hmtc-bench model (format "
                         f"{manifest.get('format') if isinstance(manifest, dict) else '?'!r})")
    if manifest.get("version") != VERSION:
        raise ModelError(f"{manifest_path}: model format version {manifest.get('version')}; "
                         f"this hmtc-bench reads version {VERSION}")
    return manifest


def verify(path, manifest: dict) -> None:
    """Every file listed in the manifest is there, readable and has its SHA-256."""
    path = Path(path)
    for name, entry in manifest["files"].items():
        target = path / _check_name(name)
        if not target.is_file():
            raise ModelError(f"{target}: missing from the model folder; nothing was loaded")
        try:
            digest = _sha256(target)
        except OSError as err:
            raise ModelError(f"{target}: unreadable ({err.strerror or err})") from None
        if digest != entry["sha256"]:
            raise ModelError(f"{target}: SHA-256 checksum mismatch (changed or corrupted since "
                             "it was saved); nothing was loaded")


def load_model(path, expected: type | None = None):
    """The fitted method saved in folder ``path`` (checked first, see the module
    docstring), or in the MLflow model folder ``path`` that wraps one
    (``hmtc_bench.tracking.models``); ``expected``: refuse a model not of this class."""
    from hmtc_bench.hierarchy import LabelHierarchy
    path = Path(path)
    if (path / "MLmodel").is_file():
        from hmtc_bench.tracking.models import model_data
        path = model_data(path)
    manifest = read_manifest(path)
    verify(path, manifest)
    if expected is not None and manifest.get("class") == \
            f"{expected.__module__}:{expected.__qualname__}":
        cls = expected      # e.g. a class made at run time, neither registered nor importable
    else:
        cls = _saved_class(manifest, path)
    if expected is not None and not issubclass(cls, expected):
        raise ModelError(f"{path}: holds a {manifest.get('method') or manifest['class']}, not "
                         f"a {expected.__name__}")
    reader = ModelReader(path, manifest["files"])
    saved = reader.json("hierarchy")
    hierarchy = LabelHierarchy.from_edges([tuple(e) for e in saved["edges"]], root=saved["root"])
    if hierarchy.content_hash != manifest["hierarchy_hash"]:
        raise ModelError(f"{path / HIERARCHY}: the hierarchy does not match its hash in "
                         f"{MANIFEST}")
    method = cls(**manifest["params"])
    method.hierarchy_ = hierarchy
    method.n_labels_ = len(hierarchy)
    method._load_state(reader)
    method.saved_info_ = manifest["info"]
    return method


def _saved_class(manifest: dict, path: Path) -> type:
    from hmtc_bench.methods import GROUP, get_method, import_object
    from hmtc_bench.methods.base import HMTCMethod
    from hmtc_bench.plugins import list_plugins
    name = manifest.get("method")
    if name and name in list_plugins(GROUP):
        return get_method(name)
    try:
        cls = import_object(manifest["class"])
    except (ImportError, AttributeError, ValueError, KeyError) as err:
        raise ModelError(f"{path / MANIFEST}: method {name or '?'} ({manifest.get('class')}) "
                         f"is neither registered nor importable ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, HMTCMethod)):
        raise ModelError(f"{path / MANIFEST}: {manifest['class']} is not an HMTCMethod")
    return cls


ALWAYS_SET = ("hierarchy_", "n_labels_", "saved_info_")  # set by load_model itself
STATE = "state"


def save_attributes(writer: ModelWriter, method, exclude=()) -> None:
    """Save the learned attributes of ``method`` (public names ending in ``_``) that are
    plain data: numpy arrays as ``state/<name>.npy``, JSON values (numbers, strings, lists,
    dicts) in ``state/attributes.json``; ``exclude``: those the method writes itself. Any
    other value raises ``TypeError`` naming it (the method must then write it in its own
    ``_save_state``)."""
    plain = {}
    for name, value in vars(method).items():
        if not name.endswith("_") or name.startswith("_") or name in ALWAYS_SET \
                or name in exclude:
            continue
        if isinstance(value, np.ndarray) and value.dtype != object:
            writer.array(f"{STATE}/{name}", value)
            continue
        try:
            plain[name] = json.loads(json.dumps(value, allow_nan=True))
        except (TypeError, ValueError):
            raise TypeError(f"{type(method).__name__}.{name} ({type(value).__name__}) is not "
                            "an array or a JSON value: write it in _save_state") from None
    writer.json(f"{STATE}/attributes", plain)


def load_attributes(reader: ModelReader, method) -> None:
    """Set the attributes written by ``save_attributes``."""
    for name, value in reader.json(f"{STATE}/attributes").items():
        setattr(method, name, value)
    prefix = f"{STATE}/"
    for file in reader.files:
        if file.startswith(prefix) and file.endswith(".npy") and "/" not in file[len(prefix):]:
            setattr(method, file[len(prefix):-4], reader.array(file[:-4]))


def folder_bytes(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


__all__ = ["FORMAT", "VERSION", "ModelError", "ModelReader", "ModelWriter", "folder_bytes",
           "load_attributes", "load_model", "read_manifest", "save_attributes", "save_method",
           "verify"]
