"""``paths``: generic JSON lines or CSV documents, each with its label paths.

JSON lines (``*.jsonl``) or CSV (``*.csv``) with ``id``, ``text`` and ``labels``: a list of
label paths, each a list of labels from the top down or a string with the labels joined by
``/``. In CSV, paths are separated by ``;``. The hierarchy is built from the paths (a DAG
when a label sits under two parents); a cycle is refused naming the files and lines of its
edges. Files whose names contain ``train``, ``dev``/``val`` and ``test`` are those splits; a
single file is split with a recorded seed.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import (DEFAULT_SEED, Records, assign_roles, json_objects,
                                     make_dataset, provenance, read_lines, text_of)
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

NAME = "paths"
PATH_SEP = "/"
CSV_PATH_SEP = ";"


def recognise(path: Path) -> bool:
    """A folder with ``*.jsonl`` or ``*.csv`` files."""
    return path.is_dir() and any(p.name.endswith((".jsonl", ".csv")) for p in path.iterdir())


def _split_paths(value, path, number, sep) -> list[list[str]]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise DataError(f"{path}, line {number}: labels must be a list of paths")
    paths = []
    for item in value:
        if isinstance(item, str):
            parts = [p.strip() for p in item.split(sep)]
        elif isinstance(item, list):
            parts = [str(p).strip() for p in item]
        else:
            raise DataError(f"{path}, line {number}: a label path must be a string or a list")
        if not parts or any(not p for p in parts):
            raise DataError(f"{path}, line {number}: empty label in path {item!r}")
        paths.append(parts)
    return paths


def read_file(path: str | Path, *, strict: bool = False,
              sep: str = PATH_SEP) -> tuple[Records, list[tuple[list[str], int]]]:
    """Read one JSON lines or CSV file; returns its records and all its label paths, each
    with the line it was read on."""
    path = Path(path)
    records = Records(str(path))
    all_paths: list[tuple[list[str], int]] = []

    def add(number, doc_id, text, paths):
        all_paths.extend((p, number) for p in paths)
        records.add(number, doc_id, text, sorted({lab for p in paths for lab in p}))

    if path.suffix == ".csv":
        lines = (line for _, line in read_lines(path, strict))
        reader = csv.DictReader(lines)
        missing = {"text", "labels"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}, line 1: missing CSV columns {sorted(missing)} "
                            "(expected id, text, labels)")
        for row in reader:
            number = reader.line_num
            paths = [p for p in (row["labels"] or "").split(CSV_PATH_SEP) if p.strip()]
            if not paths:
                raise DataError(f"{path}, line {number}: document has no labels")
            add(number, row.get("id"), row["text"], _split_paths(paths, path, number, sep))
    else:
        for number, record in json_objects(path, strict):
            if "text" not in record or "labels" not in record:
                raise DataError(f"{path}, line {number}: expected keys text and labels, "
                                f"found {sorted(record)}")
            add(number, record.get("id"), text_of(record["text"], path, number),
                _split_paths(record["labels"], path, number, sep))
    return records, all_paths


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None, sep: str = PATH_SEP) -> Dataset:
    """Read a folder of ``*.jsonl`` / ``*.csv`` files; the hierarchy comes from the paths."""
    folder = Path(folder)
    files = sorted(p for ext in ("*.jsonl", "*.csv") for p in folder.glob(ext) if p.is_file())
    if not files:
        raise DataError(f"{folder}: no *.jsonl or *.csv files")
    roles = assign_roles(files, folder)
    by_role, edges = {}, []
    for role, path in roles.items():  # in file-name order: the label order depends on it
        by_role[role], file_paths = read_file(path, strict=strict, sep=sep)
        for labels, number in file_paths:  # edges from the top down, each with its file and line
            edges += [(parent, child, number, str(path))
                      for parent, child in zip(["Root", *labels], labels)]
    try:
        hierarchy = LabelHierarchy.from_edges(edges, tree=False)
    except HierarchyError as err:
        raise DataError(str(err)) from None
    info = {"format": NAME, "path": str(folder), "files": sorted(p.name for p in files)}
    info.update(provenance(folder))
    return make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)
