"""``relaclass``: JSON lines with label ids, the layout of the RelaClass / TaxoClass samples.

JSON lines ``{"id" | "asin": ..., "token": text, "labels": [level-1 id, level-2 id, ...]}`` with
``labels.txt`` (``id<TAB>name``) and ``label_hierarchy.txt`` (``parent_id<TAB>child_id``), as in
the RelaClass / TaxoClass repositories (the shared ``wos-sample`` and ``amazon-sample``).
Labels are the names of ``labels.txt``. Files whose names contain ``train``, ``dev``/``val``
and ``test`` are those splits (files named ``sample`` are set aside when the others give
train and test); a single file is split with a recorded seed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import (DEFAULT_SEED, Records, assign_roles, json_lines,
                                     make_dataset, provenance, read_lines, role_of)
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

NAME = "relaclass"
LABELS_FILE = "labels.txt"
LABEL_HIERARCHY_FILE = "label_hierarchy.txt"


def recognise(path: Path) -> bool:
    """A folder with ``labels.txt``, ``label_hierarchy.txt`` and ``*.json`` / ``*.jsonl``."""
    return (path.is_dir() and (path / LABELS_FILE).is_file()
            and (path / LABEL_HIERARCHY_FILE).is_file()
            and any(p.suffix in (".json", ".jsonl") for p in path.iterdir()))


def _id_table(path: Path) -> dict[str, str]:
    names = {}
    for number, line in read_lines(path, strict=True):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"{path}, line {number}: expected 'id<TAB>name', found {line[:60]!r}")
        key = fields[0].strip()
        if key in names:
            raise DataError(f"{path}, line {number}: label id {key!r} given twice")
        names[key] = fields[1].strip()
    if not names:
        raise DataError(f"{path}: no labels")
    return names


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None) -> Dataset:
    """Read JSON lines with label ids, ``labels.txt`` and ``label_hierarchy.txt``."""
    folder = Path(folder)
    for needed in (LABELS_FILE, LABEL_HIERARCHY_FILE):
        if not (folder / needed).is_file():
            raise DataError(f"{folder}: {needed} is missing (expected JSON lines with label ids, "
                            f"{LABELS_FILE} and {LABEL_HIERARCHY_FILE})")
    names = _id_table(folder / LABELS_FILE)
    counts = Counter(names.values())
    label = {k: (v if counts[v] == 1 else f"{v} ({k})") for k, v in names.items()}
    hier_path = folder / LABEL_HIERARCHY_FILE
    edges, children = [], set()
    for number, line in read_lines(hier_path, strict=True):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 2:
            raise DataError(f"{hier_path}, line {number}: expected 'parent_id<TAB>child_id', "
                            f"found {line[:60]!r}")
        for key in fields:
            if key not in names:
                raise DataError(f"{hier_path}, line {number}: label id {key!r} is not in "
                                f"{LABELS_FILE}")
        edges.append((label[fields[0]], label[fields[1]], number))
        children.add(fields[1])
    top = [("Root", label[k], None) for k in names if k not in children]
    try:
        hierarchy = LabelHierarchy.from_edges(top + edges, tree=False, source=str(hier_path))
    except HierarchyError as err:
        raise DataError(str(err)) from None
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix in (".json", ".jsonl"))
    roles = _roles(files, folder)
    by_role = {role: _read_file(path, label, strict) for role, path in roles.items()}
    info = {"format": NAME, "path": str(folder),
            "files": sorted(p.name for p in roles.values()) + [LABELS_FILE,
                                                               LABEL_HIERARCHY_FILE]}
    info.update(provenance(folder, "unknown (none stated with the files)"))
    ignored = sorted(p.name for p in files if p not in roles.values())
    if ignored:
        info["files_ignored"] = ignored
    return make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)


def _roles(files: list[Path], folder: Path) -> dict[str, Path]:
    """As ``assign_roles``, setting ``sample`` files aside when the others give train and
    test."""
    if len(files) == 1:
        return {"all": files[0]}
    full = [f for f in files if "sample" not in f.name.lower()]
    candidates = full if {role_of(f.name) for f in full} >= {"train", "test"} else files
    return assign_roles(candidates, folder)


def _read_file(path: Path, label: dict[str, str], strict: bool) -> Records:
    records = Records(str(path))
    for number, record in json_lines(path, strict):
        if not isinstance(record, dict) or "token" not in record or "labels" not in record:
            found = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise DataError(f"{path}, line {number}: expected an object with keys token and "
                            f"labels, found {found}")
        ids = record["labels"]
        if not isinstance(ids, list):
            raise DataError(f"{path}, line {number}: labels must be a list of label ids")
        labels = []
        for key in ids:
            if str(key) not in label:
                raise DataError(f"{path}, line {number}: label id {key!r} is not in "
                                f"{LABELS_FILE}")
            labels.append(label[str(key)])
        text = record["token"]
        if isinstance(text, list):
            text = " ".join(map(str, text))
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}: token must be a string or a token list")
        doc_id = next((record[k] for k in ("id", "asin", "doc_id") if k in record), None)
        records.add(number, doc_id, text, labels)
    return records
