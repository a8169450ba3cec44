"""Readers: one per on-disk format, each returning a ``Dataset``.

Formats
-------
``hiagm``
    A taxonomy file (``*.taxonomy``: ``parent<TAB>child...``, first line ``Root``) and JSON
    lines with ``token``/``label`` or ``doc_token``/``doc_label`` keys; the text is a token
    list (joined with spaces) or a string. Files whose names contain ``train``, ``dev``/``val``
    and ``test`` are those splits; a single file is split with a recorded seed.
``paths``
    Generic JSON lines (``*.jsonl``) or CSV (``*.csv``) with ``id``, ``text`` and ``labels``:
    a list of label paths, each a list of labels from the top down or a string with the
    labels joined by ``/``. In CSV, paths are separated by ``;``. The hierarchy is built
    from the paths.

Standard corpora in their distributed formats, one module each, registered in ``FORMATS`` and
recognised by their file names: ``lyrl2004`` (``rcv1.py``), ``wos-data``, ``wos-xy`` and
``relaclass`` (``wos.py``), ``nyt`` (``nyt.py``), ``reuters21578`` (``reuters.py``; also the
tarball path), ``bgc`` (``bgc.py``), ``20news-bydate`` (``newsgroups.py``; also the tarball).
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset, Split, build_split, split_rows
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

PATH_SEP = "/"
CSV_PATH_SEP = ";"
DEFAULT_SEED = 0
# a corpus that comes as one file: 80 % train+dev / 20 % test; dev = 10 % of train+dev
TEST_FRACTION = 0.2
DEV_FRACTION = 0.1


class DecodeWarning(UserWarning):
    """Bytes that were not valid UTF-8 were replaced."""


class _Records:
    """Documents read from one file: ids, texts, label sets and the line of each."""

    def __init__(self, source: str):
        self.source = source
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.labels: list[list] = []
        self.lines: list[int] = []

    def add(self, line: int, doc_id, text, labels):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{self.source}, line {line}: empty text")
        self.ids.append(str(doc_id) if doc_id is not None else f"{Path(self.source).stem}:{line}")
        self.texts.append(text)
        self.labels.append(labels)
        self.lines.append(line)

    def split(self, hierarchy: LabelHierarchy, strict: bool, rows=None) -> Split:
        if rows is None:
            rows = range(len(self.ids))
        rows = list(rows)
        return build_split([self.ids[i] for i in rows], [self.texts[i] for i in rows],
                           [self.labels[i] for i in rows], hierarchy, strict=strict,
                           source=self.source, lines=[self.lines[i] for i in rows])


def read_lines(path: Path, strict: bool):
    """Yield (line number, text) of a file, decoding invalid UTF-8 with replacement
    (counted in one warning) or refusing it when ``strict``."""
    bad = 0
    first_bad = None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                if strict:
                    raise DataError(f"{path}, line {number}: invalid UTF-8 at byte "
                                    f"{err.start} (strict mode)") from None
                bad += 1
                first_bad = first_bad or number
                line = raw.decode("utf-8", errors="replace")
            yield number, line
    if bad:
        warnings.warn(f"{path}: {bad} lines had invalid UTF-8, replaced with U+FFFD "
                      f"(first: line {first_bad})", DecodeWarning, stacklevel=3)


def _json_lines(path: Path, strict: bool):
    for number, line in read_lines(path, strict):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: malformed JSON ({err.msg}, "
                            f"column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object, "
                            f"found {type(record).__name__}")
        yield number, record


def _text_of(value, path, number) -> str:
    if isinstance(value, list):
        return " ".join(str(t) for t in value)
    if isinstance(value, str):
        return value
    raise DataError(f"{path}, line {number}: text must be a string or a token list, "
                    f"found {type(value).__name__}")


def read_hiagm_file(path: str | Path, *, strict: bool = False) -> _Records:
    """Read HiAGM-style JSON lines (``token``/``label`` or ``doc_token``/``doc_label``)."""
    path = Path(path)
    records = _Records(str(path))
    for number, record in _json_lines(path, strict):
        text_key = "token" if "token" in record else "doc_token" if "doc_token" in record else None
        label_key = "label" if "label" in record else "doc_label" if "doc_label" in record else None
        if text_key is None or label_key is None:
            raise DataError(f"{path}, line {number}: expected keys token/label or "
                            f"doc_token/doc_label, found {sorted(record)}")
        labels = record[label_key]
        if not isinstance(labels, list):
            raise DataError(f"{path}, line {number}: {label_key} must be a list of labels")
        records.add(number, record.get("id", record.get("doc_id")),
                    _text_of(record[text_key], path, number), [str(x) for x in labels])
    return records


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


def read_paths_file(path: str | Path, *, strict: bool = False,
                    sep: str = PATH_SEP) -> tuple[_Records, list[list[str]]]:
    """Read the generic format (JSON lines or CSV); returns records and all label paths."""
    path = Path(path)
    records = _Records(str(path))
    all_paths: list[list[str]] = []

    def add(number, doc_id, text, paths):
        all_paths.extend(paths)
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
        for number, record in _json_lines(path, strict):
            if "text" not in record or "labels" not in record:
                raise DataError(f"{path}, line {number}: expected keys text and labels, "
                                f"found {sorted(record)}")
            add(number, record.get("id"), _text_of(record["text"], path, number),
                _split_paths(record["labels"], path, number, sep))
    return records, all_paths


# ---------------------------------------------------------------------- folders
def _role(name: str) -> str | None:
    lower = name.lower()
    for role, keys in (("train", ("train",)), ("dev", ("dev", "val")), ("test", ("test",))):
        if any(k in lower for k in keys):
            return role
    return None


def _assign_roles(files: list[Path], folder: Path) -> dict[str, Path]:
    if len(files) == 1:
        return {"all": files[0]}
    roles: dict[str, Path] = {}
    for f in files:
        role = _role(f.name)
        if role is None:
            raise DataError(f"{folder}: cannot tell which split {f.name} is (name it with "
                            "train, dev or test)")
        if role in roles:
            raise DataError(f"{folder}: two files for the {role} split: "
                            f"{roles[role].name} and {f.name}")
        roles[role] = f
    if "train" not in roles or "test" not in roles:
        raise DataError(f"{folder}: need a train and a test file, found {sorted(roles)}")
    return roles


def _make_dataset(name: str, hierarchy: LabelHierarchy, by_role: dict[str, _Records],
                  strict: bool, seed: int, info: dict) -> Dataset:
    """Build the splits; draw dev from train, or all three from one file, with ``seed``."""
    info = dict(info)
    if "all" in by_role:
        records = by_role["all"]
        rest, test_rows = split_rows(len(records.ids), [1 - TEST_FRACTION, TEST_FRACTION], seed)
        rng_rows = split_rows(len(rest), [1 - DEV_FRACTION, DEV_FRACTION], seed + 1)
        train_rows, dev_rows = rest[rng_rows[0]], rest[rng_rows[1]]
        splits = {"train": records.split(hierarchy, strict, train_rows),
                  "dev": records.split(hierarchy, strict, dev_rows),
                  "test": records.split(hierarchy, strict, test_rows)}
        info["split"] = (f"one file split with seed {seed}: {1 - TEST_FRACTION:.0%} train+dev / "
                         f"{TEST_FRACTION:.0%} test; dev = {DEV_FRACTION:.0%} of train+dev "
                         f"(seed {seed + 1})")
        info["split_seed"] = seed
    else:
        splits = {role: by_role[role].split(hierarchy, strict)
                  for role in ("train", "dev", "test") if role in by_role}
        if "dev" not in splits:
            train = splits["train"]
            train_rows, dev_rows = split_rows(len(train), [1 - DEV_FRACTION, DEV_FRACTION], seed)
            splits["train"], splits["dev"] = train.subset(train_rows), train.subset(dev_rows)
            info["split"] = (f"given train/test; dev = {DEV_FRACTION:.0%} of train drawn "
                             f"with seed {seed}")
            info["split_seed"] = seed
        else:
            info["split"] = "given train/dev/test files"
    return Dataset(name, hierarchy, splits["train"], splits["dev"], splits["test"], info)


def read_hiagm_folder(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                      name: str | None = None) -> Dataset:
    folder = Path(folder)
    taxonomies = sorted(folder.glob("*.taxonomy"))
    if len(taxonomies) != 1:
        raise DataError(f"{folder}: expected one *.taxonomy file, found {len(taxonomies)}")
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    files += sorted(p for p in folder.glob("*.jsonl") if p.is_file())
    if not files:
        raise DataError(f"{folder}: no *.json or *.jsonl data files beside {taxonomies[0].name}")
    try:
        hierarchy = LabelHierarchy.from_taxonomy(taxonomies[0], tree=False)
    except UnicodeDecodeError as err:
        raise DataError(f"{taxonomies[0]}: not UTF-8 ({err.reason})") from None
    roles = _assign_roles(files, folder)
    by_role = {role: read_hiagm_file(path, strict=strict) for role, path in roles.items()}
    info = {"format": "hiagm", "path": str(folder), "files": sorted(p.name for p in files)}
    info.update(_provenance(folder))
    return _make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)


def read_paths_folder(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                      name: str | None = None, sep: str = PATH_SEP) -> Dataset:
    folder = Path(folder)
    files = sorted(p for ext in ("*.jsonl", "*.csv") for p in folder.glob(ext) if p.is_file())
    if not files:
        raise DataError(f"{folder}: no *.jsonl or *.csv files")
    roles = _assign_roles(files, folder)
    by_role, paths = {}, []
    for role, path in roles.items():
        by_role[role], file_paths = read_paths_file(path, strict=strict, sep=sep)
        paths.extend(file_paths)
    try:
        hierarchy = LabelHierarchy.from_paths(list(dict.fromkeys(map(tuple, paths))))
    except HierarchyError as err:
        raise DataError(f"{folder}: {err}") from None
    info = {"format": "paths", "path": str(folder), "files": sorted(p.name for p in files)}
    info.update(_provenance(folder))
    return _make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)


def _provenance(folder: Path) -> dict:
    """Provenance and licence lines from a PROVENANCE.md or README beside the data, if any."""
    for candidate in ("PROVENANCE.md", "README.md"):
        path = folder / candidate
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            licence = next((line.strip("-* ") for line in text.splitlines()
                            if "licen" in line.lower()), "see " + candidate)
            return {"provenance": f"{path}", "licence": licence[:300]}
    return {"provenance": "unknown (no PROVENANCE.md beside the data)", "licence": "unknown"}


def _lazy(module: str, function: str):
    """A reader defined in ``hmtc_bench.data.<module>``, imported when first used (those
    modules import this one)."""
    def reader(path, *, strict: bool = False, seed: int = DEFAULT_SEED, **options) -> Dataset:
        import importlib
        return getattr(importlib.import_module(f"hmtc_bench.data.{module}"), function)(
            path, strict=strict, seed=seed, **options)
    reader.__name__ = reader.__qualname__ = function
    reader.__doc__ = f"``hmtc_bench.data.{module}.{function}``"
    return reader


def _read_20news(path, *, strict: bool = False, seed: int = DEFAULT_SEED, **options) -> Dataset:
    """``hmtc_bench.data.newsgroups.load`` (reads ``20news-bydate.tar.gz``; always strict)."""
    from hmtc_bench.data.newsgroups import load
    return load(path, seed=seed, **options)


FORMATS = {
    "hiagm": read_hiagm_folder,
    "paths": read_paths_folder,
    "lyrl2004": _lazy("rcv1", "read_lyrl2004"),
    "wos-data": _lazy("wos", "read_wos_data"),
    "wos-xy": _lazy("wos", "read_wos_xy"),
    "relaclass": _lazy("wos", "read_label_ids_folder"),
    "nyt": _lazy("nyt", "read_nyt"),
    "reuters21578": _lazy("reuters", "read_reuters21578"),
    "bgc": _lazy("bgc", "read_bgc"),
    "20news-bydate": _read_20news,
}
NEWS_ARCHIVE = "20news-bydate.tar.gz"


def _specific_format(path: Path) -> str | None:
    """Formats recognised by their distinctive file names (checked before the generic ones)."""
    from hmtc_bench.data import bgc, nyt, rcv1, reuters, wos
    if path.is_file():
        if reuters.matches(path):
            return "reuters21578"
        if path.name == NEWS_ARCHIVE:
            return "20news-bydate"
        return None
    for fmt, test in (("lyrl2004", rcv1.matches), ("reuters21578", reuters.matches),
                      ("wos-data", wos.matches_data), ("wos-xy", wos.matches_xy),
                      ("bgc", bgc.matches), ("nyt", nyt.matches)):
        if test(path):
            return fmt
    if (path / NEWS_ARCHIVE).is_file():
        return "20news-bydate"
    return None


def detect_format(folder: str | Path) -> str:
    """Recognise a folder's format from its files (a Reuters-21578 or 20 Newsgroups tarball
    is recognised by its name)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: no such file or folder")
    specific = _specific_format(folder)
    if specific:
        return specific
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder, nor a known archive (reuters21578.tar.gz, "
                        f"{NEWS_ARCHIVE}); pass the folder holding the data")
    names = [p.name for p in folder.iterdir()]
    if any(n.endswith(".taxonomy") for n in names) and any(
            n.endswith((".json", ".jsonl")) for n in names):
        return "hiagm"
    from hmtc_bench.data import wos
    if wos.matches_label_ids(folder):
        return "relaclass"
    if any(n.endswith((".jsonl", ".csv")) for n in names):
        return "paths"
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
    hint = (f" It has sub-folders {subfolders[:8]}: point at one of them." if subfolders else "")
    raise DataError(f"{folder}: unrecognised dataset format; expected a *.taxonomy file with "
                    f"JSON lines (hiagm), or *.jsonl / *.csv files with label paths (paths), or "
                    f"the files of a known corpus ({', '.join(sorted(set(FORMATS) - {'hiagm', 'paths'}))}: "
                    f"see README.md). Found: {sorted(names)[:8]}.{hint}")


def read_folder(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                fmt: str | None = None) -> Dataset:
    fmt = fmt or detect_format(folder)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; known: {sorted(FORMATS)}")
    return FORMATS[fmt](folder, strict=strict, seed=seed)


__all__: Sequence[str] = ["read_folder", "detect_format", "read_hiagm_file", "read_paths_file",
                          "read_hiagm_folder", "read_paths_folder", "DecodeWarning", "FORMATS"]
