"""What the format readers share: collecting documents, reading lines, telling train / dev /
test files apart by name, provenance, and building the ``Dataset`` with its splits.

The same rules for every format: a UTF-8 byte-order mark at the start of a file is dropped
(``read_lines``; anywhere else it stays text, so a JSON line starting with one is malformed);
document ids are unique across train, dev and test (``unique_ids``: a repeated id is refused
naming both places, or, for a corpus known to ship repeats, made unique with one
``DuplicateIdWarning``); labels of dev or test that train never has are counted in one
``UnseenLabelWarning`` and in the card. Nothing is returned when a check fails.

This module imports no format module (``hmtc_bench.data.formats.*`` import it).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from hmtc_bench.data.dataset import (DataError, Dataset, DuplicateIdWarning, Split, build_split,
                                     split_rows, warn_unseen_labels)
from hmtc_bench.hierarchy import LabelHierarchy

DEFAULT_SEED = 0
# a corpus that comes as one file: 80 % train+dev / 20 % test; dev = 10 % of train+dev
TEST_FRACTION = 0.2
DEV_FRACTION = 0.1
ROLE_KEYS = (("train", ("train",)), ("dev", ("dev", "val")), ("test", ("test",)))
SPLIT_ORDER = ("train", "dev", "test")
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark


class DecodeWarning(UserWarning):
    """Bytes that were not valid UTF-8 were replaced."""


class Records:
    """Documents read from one file: ids, texts, label sets and the line of each."""

    def __init__(self, source: str):
        self.source = source
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.labels: list[list] = []
        self.lines: list = []

    def add(self, line, doc_id, text, labels):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{self.source}, line {line}: empty text")
        self.ids.append(str(doc_id) if doc_id is not None else f"{Path(self.source).stem}:{line}")
        self.texts.append(text)
        self.labels.append(labels)
        self.lines.append(line)

    def where(self, i: int) -> str:
        """The file and line of document ``i``, as in messages."""
        return f"{self.source}, line {self.lines[i]}"

    def split(self, hierarchy: LabelHierarchy, strict: bool, rows=None) -> Split:
        if rows is None:
            rows = range(len(self.ids))
        rows = list(rows)
        return build_split([self.ids[i] for i in rows], [self.texts[i] for i in rows],
                           [self.labels[i] for i in rows], hierarchy, strict=strict,
                           source=self.source, lines=[self.lines[i] for i in rows])


# ---------------------------------------------------------------------- lines
def read_lines(path: Path, strict: bool,
               opener: Callable[[Path], object] | None = None) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) of a file, decoding invalid UTF-8 with replacement
    (counted in one warning) or refusing it when ``strict``; a UTF-8 byte-order mark at the
    start of the file is dropped. ``opener`` opens the file for
    reading bytes (default: ``open(path, "rb")``; e.g. ``gzip.open`` for a ``.gz`` file)."""
    bad = 0
    first_bad = None
    with (opener(path) if opener else open(path, "rb")) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)  # a byte-order mark starts the file, not its text
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


def json_lines(path: Path, strict: bool) -> Iterator[tuple[int, object]]:
    """Yield (line number, value) of each non-blank line of a JSON lines file."""
    for number, line in read_lines(path, strict):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: malformed JSON ({err.msg}, "
                            f"column {err.colno})") from None
        yield number, value


def json_objects(path: Path, strict: bool) -> Iterator[tuple[int, dict]]:
    """``json_lines``, each line a JSON object."""
    for number, record in json_lines(path, strict):
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object, "
                            f"found {type(record).__name__}")
        yield number, record


def text_of(value, path, number) -> str:
    """A document's text: a string, or a token list joined with spaces."""
    if isinstance(value, list):
        return " ".join(str(t) for t in value)
    if isinstance(value, str):
        return value
    raise DataError(f"{path}, line {number}: text must be a string or a token list, "
                    f"found {type(value).__name__}")


# ---------------------------------------------------------------------- split roles
def role_of(name: str) -> str | None:
    """``train``, ``dev`` or ``test`` from a file name (``val`` counts as dev), else None."""
    lower = name.lower()
    for role, keys in ROLE_KEYS:
        if any(k in lower for k in keys):
            return role
    return None


def roles_by_name(files: Sequence[Path], folder: Path, *, what: str = "files",
                  unnamed: str | None = "(name it with train, dev or test)"
                  ) -> dict[str, Path]:
    """The split of each file by its name; one file per split. A file whose name tells no
    split is an error (``unnamed`` ends the message), or skipped when ``unnamed`` is None."""
    roles: dict[str, Path] = {}
    for f in files:
        role = role_of(f.name)
        if role is None:
            if unnamed is None:
                continue
            raise DataError(f"{folder}: cannot tell which split {f.name} is {unnamed}")
        if role in roles:
            raise DataError(f"{folder}: two {what} for the {role} split: "
                            f"{roles[role].name} and {f.name}")
        roles[role] = f
    return roles


def assign_roles(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    """``{"all": file}`` for a single file, else the split of each file by its name, with at
    least a train and a test file."""
    if len(files) == 1:
        return {"all": files[0]}
    roles = roles_by_name(files, folder)
    if "train" not in roles or "test" not in roles:
        raise DataError(f"{folder}: need a train and a test file, found {sorted(roles)}")
    return roles


# ---------------------------------------------------------------------- provenance
def provenance(folder: Path, licence: str = "unknown") -> dict:
    """Provenance and licence lines from a PROVENANCE.md or README beside the data, if any;
    without one, ``licence`` is the licence. The SHA-256 of the downloaded files are added
    where ``hmtc-bench data download`` recorded them (``checksums``)."""
    out = {"provenance": "unknown (no PROVENANCE.md beside the data)", "licence": licence}
    for candidate in ("PROVENANCE.md", "README.md"):
        path = folder / candidate
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            found = next((line.strip("-* ") for line in text.splitlines()
                          if "licen" in line.lower()), "see " + candidate)
            out = {"provenance": f"{path}", "licence": found[:300]}
            break
    out.update(checksums(folder))
    return out


def checksums(folder: Path) -> dict:
    """``sha256`` (file name -> SHA-256) and ``sha256_file`` from the ``SHA256SUMS`` that
    ``hmtc-bench data download`` writes beside the files it fetched (in ``folder``, or in its
    parent for an unpacked archive); empty when there is none."""
    from hmtc_bench.data.download import SUMS_FILE, read_sums
    folder = Path(folder)
    for place in (folder, folder.parent):
        sums = read_sums(place)
        if sums:
            return {"sha256": sums, "sha256_file": str(place / SUMS_FILE)}
    return {}


# ---------------------------------------------------------------------- the dataset
def unique_ids(parts: Sequence[Records], *, rename: bool = False) -> int:
    """Check that no document id is given twice in ``parts`` (every file of a corpus).

    A repeated id is refused naming both places. With ``rename`` (for a corpus known to
    ship repeats) the second and later ones become ``<id>#2``, ``<id>#3``... and one
    ``DuplicateIdWarning`` counts them. Returns the number renamed."""
    seen: dict[str, tuple[Records, int]] = {}
    renamed, first = 0, None
    for records in parts:
        for i, doc_id in enumerate(records.ids):
            if doc_id not in seen:
                seen[doc_id] = (records, i)
                continue
            earlier, j = seen[doc_id]
            if not rename:
                raise DataError(f"{records.where(i)}: document id {doc_id!r} is given twice "
                                f"(first at {earlier.where(j)}); ids must be unique across "
                                "train, dev and test")
            k = 2
            while f"{doc_id}#{k}" in seen:
                k += 1
            records.ids[i] = f"{doc_id}#{k}"
            seen[records.ids[i]] = (records, i)
            renamed += 1
            first = first or f"{doc_id!r} at {records.where(i)}, first at {earlier.where(j)}"
    if renamed:
        warnings.warn(f"{renamed} documents repeat an earlier document id and were renamed "
                      f"<id>#2, <id>#3, ... (first: {first})", DuplicateIdWarning, stacklevel=3)
    return renamed


def draw_test_dev(n: int, seed: int, test_fraction: float,
                  dev_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (train, dev, test) of one corpus of ``n`` documents: test drawn with ``seed``,
    then dev, a fraction of the rest, with ``seed + 1``."""
    rest, test_rows = split_rows(n, [1 - test_fraction, test_fraction], seed)
    parts = split_rows(len(rest), [1 - dev_fraction, dev_fraction], seed + 1)
    return rest[parts[0]], rest[parts[1]], test_rows


def make_dataset(name: str, hierarchy: LabelHierarchy, by_role: dict[str, Records],
                 strict: bool, seed: int, info: dict, *,
                 rename_duplicates: bool = False) -> Dataset:
    """Build the splits; draw dev from train, or all three from one file, with ``seed``.

    Document ids are checked unique first (``unique_ids``; ``rename_duplicates`` for a corpus
    known to ship repeats, the count recorded in the card); labels of dev or test never in
    train are counted in one ``UnseenLabelWarning``."""
    info = dict(info)
    renamed = unique_ids([by_role[r] for r in ("all", *SPLIT_ORDER) if r in by_role],
                         rename=rename_duplicates)
    if renamed:
        info["duplicate_ids_renamed"] = renamed
    if "all" in by_role:
        records = by_role["all"]
        train_rows, dev_rows, test_rows = draw_test_dev(len(records.ids), seed, TEST_FRACTION,
                                                        DEV_FRACTION)
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
    dataset = Dataset(name, hierarchy, splits["train"], splits["dev"], splits["test"], info)
    warn_unseen_labels(dataset, str(info.get("path", name)), stacklevel=3)
    return dataset
