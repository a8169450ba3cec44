"""``bgc``: the Blurb Genre Collection, English (Aly, Remus and Biemann 2019; University of
Hamburg).

Input, as distributed (``blurbgenrecollectionen.zip``):

- ``BlurbGenreCollection_EN_train.txt``, ``..._dev.txt``, ``..._test.txt``: XML-like book
  records (not well-formed XML: ``&`` is not escaped) ::

      <book date="..." xml:lang="en">
      <title>...</title>
      <body>the blurb</body>
      <copyright>...</copyright>
      <metadata>
      <topics><d0>Fiction</d0><d1>Mystery & Suspense</d1>...</topics>
      <author>...</author> <published>...</published> <page_num>...</page_num>
      <isbn>...</isbn> <url>...</url>
      </metadata>
      </book>

  ``<dN>`` is a genre at depth N; a book may have several genres per depth (several paths);
- ``hierarchy.txt``: ``parent<TAB>child`` pairs ("is a"); genres that are never a child are
  top-level (``Humor`` and ``Poetry`` have no children, so they appear only as ``<d0>``).

Text: the blurb (``<body>``); the title is kept out, so that the document is the blurb the
collection is named after. Entities (``&amp;`` ...) are decoded. The given train / dev / test
files are the split.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import (DEFAULT_SEED, Records, make_dataset, provenance,
                                     read_lines, roles_by_name)
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

NAME = "bgc"
LICENCE = "BGC: CC BY-NC 4.0 (blurbs (c) Penguin Random House; non-commercial research use)"
HIERARCHY_FILE = "hierarchy.txt"
_FILE = re.compile(r"^BlurbGenreCollection.*\.txt$", re.IGNORECASE)
_GENRE = re.compile(r"<d(\d+)>(.*?)</d\1>", re.DOTALL)


def recognise(path: Path) -> bool:
    """A folder with a ``BlurbGenreCollection*.txt`` file."""
    return path.is_dir() and any(_FILE.match(p.name) for p in path.iterdir())


def _field(book: str, tag: str) -> str | None:
    start = book.find(f"<{tag}>")
    if start < 0:
        return None
    start += len(tag) + 2
    end = book.find(f"</{tag}>", start)
    return book[start:end] if end >= 0 else None


def _clean(value: str) -> str:
    return " ".join(html.unescape(value).split())


def read_books(path: str | Path, strict: bool = False):
    """Yield (line, isbn, title, blurb, [(depth, genre), ...]) of each ``<book>`` record."""
    path = Path(path)
    lines = [(n, line) for n, line in read_lines(path, strict)]
    text = "".join(line for _, line in lines)
    starts = [0]
    for _, line in lines:
        starts.append(starts[-1] + len(line))
    if "<book" not in text:
        raise DataError(f"{path}: no <book> records (is this a Blurb Genre Collection file?)")

    def line_at(offset: int) -> int:
        lo, hi = 0, len(lines) - 1
        while lo < hi:  # last line starting at or before offset
            mid = (lo + hi + 1) // 2
            if starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lines[lo][0]

    pos = 0
    while True:
        start = text.find("<book", pos)
        if start < 0:
            return
        end = text.find("</book>", start)
        following = text.find("<book", start + 5)
        number = line_at(start)
        if end < 0 or 0 <= following < end:
            raise DataError(f"{path}, line {number}: <book> record without </book>")
        book = text[start:end]
        body = _field(book, "body")
        if body is None:
            raise DataError(f"{path}, line {number}: <book> without <body>")
        topics = _field(book, "topics")
        if topics is None:
            raise DataError(f"{path}, line {number}: <book> without <topics>")
        genres = [(int(depth), _clean(name)) for depth, name in _GENRE.findall(topics)]
        isbn = _field(book, "isbn")
        yield (number, _clean(isbn) if isbn else None, _clean(_field(book, "title") or ""),
               html.unescape(body).strip(), genres)
        pos = end


def read_genre_hierarchy(path: Path) -> list[tuple[str, str, int]]:
    edges = []
    for number, line in read_lines(path, strict=True):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = [_clean(f) for f in line.split("\t")]
        fields = [f for f in fields if f]
        if len(fields) != 2:
            raise DataError(f"{path}, line {number}: expected 'parent<TAB>child', "
                            f"found {line[:80]!r}")
        edges.append((fields[0], fields[1], number))
    if not edges:
        raise DataError(f"{path}: no parent-child pairs")
    return edges


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None) -> Dataset:
    """Read the Blurb Genre Collection folder (train / dev / test files and hierarchy.txt)."""
    folder = Path(folder)
    hier_path = folder / HIERARCHY_FILE
    if not hier_path.is_file():
        raise DataError(f"{folder}: {HIERARCHY_FILE} is missing (the genre pairs of the "
                        "distribution)")
    edges = read_genre_hierarchy(hier_path)
    files = sorted(p for p in folder.iterdir() if p.is_file() and _FILE.match(p.name))
    roles = roles_by_name(files, folder, unnamed="(expected _train, _dev or _test in the name)")
    if not {"train", "test"} <= set(roles):
        raise DataError(f"{folder}: need BlurbGenreCollection_EN_train.txt and _test.txt, "
                        f"found {[p.name for p in files]}")
    known = {e[0] for e in edges} | {e[1] for e in edges}
    top_extra: list[str] = []
    by_role = {}
    for role, path in roles.items():
        records = Records(str(path))
        for number, isbn, _title, blurb, genres in read_books(path, strict):
            if not genres:
                raise DataError(f"{path}, line {number}: book without genres in <topics>")
            for depth, genre in genres:
                if genre not in known:
                    if depth != 0:
                        raise DataError(f"{path}, line {number}: genre {genre!r} (d{depth}) is "
                                        f"not in {HIERARCHY_FILE}")
                    top_extra.append(genre)
                    known.add(genre)
            records.add(number, isbn, blurb, list(dict.fromkeys(g for _, g in genres)))
        by_role[role] = records
    children = {e[1] for e in edges}
    tops = list(dict.fromkeys([e[0] for e in edges if e[0] not in children] + top_extra))
    try:
        hierarchy = LabelHierarchy.from_edges([("Root", t, None) for t in tops] + edges,
                                              tree=False, source=str(hier_path))
    except HierarchyError as err:
        raise DataError(str(err)) from None
    info = {"format": NAME, "path": str(folder),
            "files": sorted(p.name for p in roles.values()) + [HIERARCHY_FILE],
            "text": "the blurb (<body>), entities decoded"}
    info.update(provenance(folder, LICENCE))
    return make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)
