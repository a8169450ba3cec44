"""``hiagm``: a taxonomy file and JSON lines, the layout of HiAGM and the HTC repositories.

A taxonomy file (``*.taxonomy``: ``parent<TAB>child...``, first line ``Root``) and JSON lines
with ``token``/``label`` or ``doc_token``/``doc_label`` keys; the text is a token list (joined
with spaces) or a string. Files whose names contain ``train``, ``dev``/``val`` and ``test``
are those splits; a single file is split with a recorded seed.

The taxonomy is a tree: a label given a second parent is refused naming both lines, unless
``dag=True`` declares the hierarchy a DAG. Its lines may come in any order.
"""

from __future__ import annotations

from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import (DEFAULT_SEED, Records, assign_roles, json_objects,
                                     make_dataset, provenance, text_of)
from hmtc_bench.hierarchy import LabelHierarchy

NAME = "hiagm"


def recognise(path: Path) -> bool:
    """A folder with a ``*.taxonomy`` file and ``*.json`` / ``*.jsonl`` files."""
    if not path.is_dir():
        return False
    names = [p.name for p in path.iterdir()]
    return any(n.endswith(".taxonomy") for n in names) and any(
        n.endswith((".json", ".jsonl")) for n in names)


def read_file(path: str | Path, *, strict: bool = False) -> Records:
    """Read HiAGM-style JSON lines (``token``/``label`` or ``doc_token``/``doc_label``)."""
    path = Path(path)
    records = Records(str(path))
    for number, record in json_objects(path, strict):
        text_key = "token" if "token" in record else "doc_token" if "doc_token" in record else None
        label_key = "label" if "label" in record else "doc_label" if "doc_label" in record else None
        if text_key is None or label_key is None:
            raise DataError(f"{path}, line {number}: expected keys token/label or "
                            f"doc_token/doc_label, found {sorted(record)}")
        labels = record[label_key]
        if not isinstance(labels, list):
            raise DataError(f"{path}, line {number}: {label_key} must be a list of labels")
        records.add(number, record.get("id", record.get("doc_id")),
                    text_of(record[text_key], path, number), [str(x) for x in labels])
    return records


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None, dag: bool = False) -> Dataset:
    """Read a folder: one ``*.taxonomy`` file and the JSON lines files beside it; ``dag``
    accepts labels with more than one parent."""
    folder = Path(folder)
    taxonomies = sorted(folder.glob("*.taxonomy"))
    if len(taxonomies) != 1:
        raise DataError(f"{folder}: expected one *.taxonomy file, found {len(taxonomies)}")
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    files += sorted(p for p in folder.glob("*.jsonl") if p.is_file())
    if not files:
        raise DataError(f"{folder}: no *.json or *.jsonl data files beside {taxonomies[0].name}")
    try:
        hierarchy = LabelHierarchy.from_taxonomy(taxonomies[0], tree=not dag)
    except UnicodeDecodeError as err:
        raise DataError(f"{taxonomies[0]}: not UTF-8 ({err.reason})") from None
    roles = assign_roles(files, folder)
    by_role = {role: read_file(path, strict=strict) for role, path in roles.items()}
    info = {"format": NAME, "path": str(folder), "files": sorted(p.name for p in files)}
    info.update(provenance(folder))
    return make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)
