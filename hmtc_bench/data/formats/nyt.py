"""``nyt``: the New York Times Annotated Corpus (LDC2008T19): NITF XML articles, selected by id
lists.

Input, as the HTC repositories (HiAGM, HiMatch, HGCLR, HPT) use it:

- the articles: NITF XML files ``<id>.xml``, anywhere under the folder: the LDC layout
  ``nyt_corpus/data/YYYY/MM/DD/<id>.xml``, the monthly archives ``nyt_corpus/data/YYYY/MM.tgz``
  as distributed (read without unpacking), or the repositories' flattened ``Nytimes/YYYY/``;
- optionally the id lists ``idnewnyt_train.json``, ``idnewnyt_val.json``, ``idnewnyt_test.json``
  (despite the name, one article path per line, e.g. ``Nytimes/2003/1480146.xml``; any file
  whose name contains train, val/dev or test and whose lines end in ``.xml`` will do): an
  article is matched by its file name, wherever it lies. Without id lists every article
  found is read and split with a recorded seed;
- optionally ``nyt_label.vocab`` (one label per line): the labels kept, as the repositories
  restrict NYT to its 166 labels.

Labels come from ``<classifier type="taxonomic_classifier">`` paths such as
``Top/News/Business/Companies``: every prefix below ``Top`` is a label named by its path
(``Top/News``, ``Top/News/Business``, ...), paths with fewer than three parts are ignored,
as in the repositories. Text: the paragraphs of the ``full_text`` block (else of the
``lead_paragraph`` block). Articles left without text or without a kept label are counted in
the card and left out, as the repositories do.
"""

from __future__ import annotations

import re
import tarfile
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import (DEFAULT_SEED, Records, make_dataset, provenance,
                                     read_lines, roles_by_name)
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

NAME = "nyt"
LICENCE = "New York Times Annotated Corpus, LDC2008T19: LDC user agreement (licensed, not free)"
VOCAB_FILE = "nyt_label.vocab"
ID_LIST_SUFFIXES = (".json", ".txt", ".lst", ".list", ".ids")
_YEAR = re.compile(r"(?:^|/)((?:19|20)\d\d)(?:/|$)")


class SkippedWarning(UserWarning):
    """Documents were left out (no text, or no kept label); counted in the card."""


def recognise(path: Path) -> bool:
    """A folder with ``nyt_label.vocab``, ``idnewnyt*`` lists, ``nyt_corpus/`` or NITF XML."""
    if not path.is_dir():
        return False
    names = [p.name for p in path.iterdir()]
    if VOCAB_FILE in names or any(n.startswith("idnewnyt") for n in names):
        return True
    if "nyt_corpus" in names:
        return True
    for p in path.iterdir():
        if p.suffix == ".xml" and p.is_file():
            with open(p, "rb") as handle:
                return b"<nitf" in handle.read(4096)
    return False


# ---------------------------------------------------------------------- one article
def parse_article(data: bytes, where: str) -> tuple[str | None, str, list[str]]:
    """(doc id, text, taxonomic classifier paths) of one NITF article."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        line, column = err.position
        raise DataError(f"{where}, line {line}: not well-formed XML ({err.msg.split(':')[0]}, "
                        f"column {column})") from None
    if root.tag != "nitf":
        raise DataError(f"{where}: root element <{root.tag}>, expected <nitf> (is this an NYT "
                        "Annotated Corpus article?)")
    doc_id = root.find("./head/docdata/doc-id")
    doc_id = doc_id.get("id-string") if doc_id is not None else None
    paths = [" ".join((c.text or "").split()) for c in root.iter("classifier")
             if c.get("type") == "taxonomic_classifier"]
    text = ""
    for kind in ("full_text", "lead_paragraph"):
        block = root.find(f"./body/body.content/block[@class='{kind}']")
        if block is not None:
            text = "\n".join(" ".join("".join(p.itertext()).split()) for p in block.iter("p"))
            text = text.strip()
            if text:
                break
    return doc_id, text, [p for p in paths if p]


def labels_of(paths: list[str]) -> list[str]:
    """Every prefix below ``Top`` of paths with at least three parts."""
    labels = []
    for path in paths:
        parts = [p.strip() for p in path.split("/")]
        if len(parts) < 3 or any(not p for p in parts):
            continue
        for k in range(2, len(parts) + 1):
            label = "/".join(parts[:k])
            if label not in labels:
                labels.append(label)
    return labels


# ---------------------------------------------------------------------- finding articles
class _Articles:
    """Article bytes by id (file stem), from loose XML files and monthly ``.tgz`` archives."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.loose: dict[str, Path] = {}
        self.archives: list[Path] = []
        for path in sorted(folder.rglob("*")):
            if path.suffix == ".xml" and path.is_file():
                self.loose.setdefault(path.stem, path)
            elif path.name.endswith((".tgz", ".tar.gz")) and path.is_file():
                self.archives.append(path)

    def all_ids(self) -> list[str]:
        ids = list(self.loose)
        for archive in self.archives:
            with self._open(archive) as tar:
                ids += [Path(m.name).stem for m in tar if m.isfile() and m.name.endswith(".xml")]
        return list(dict.fromkeys(ids))

    def _open(self, archive: Path):
        try:
            return tarfile.open(archive)
        except (tarfile.TarError, OSError) as err:
            raise DataError(f"{archive}: not a readable tar archive ({err})") from None

    def fetch(self, wanted: dict[str, str | None]) -> dict[str, tuple[str, bytes]]:
        """(where, bytes) of each wanted id; ``wanted`` maps id -> year hint or None."""
        found = {}
        for doc_id in wanted:
            if doc_id in self.loose:
                found[doc_id] = (str(self.loose[doc_id]), self.loose[doc_id].read_bytes())
        rest = {k: v for k, v in wanted.items() if k not in found}
        years = {v for v in rest.values()}
        for archive in self.archives:
            if not rest:
                break
            year = _YEAR.search(archive.relative_to(self.folder).as_posix())
            if None not in years and year and year.group(1) not in years:
                continue
            with self._open(archive) as tar:
                for member in tar:
                    stem = Path(member.name).stem
                    if member.isfile() and stem in rest and member.name.endswith(".xml"):
                        found[stem] = (f"{archive}:{member.name}",
                                       tar.extractfile(member).read())
                        del rest[stem]
        return found


def _id_lists(folder: Path) -> dict[str, Path]:
    candidates = [path for path in sorted(folder.iterdir())
                  if path.is_file() and path.suffix in ID_LIST_SUFFIXES]
    lists = roles_by_name(candidates, folder, what="id lists", unnamed=None)
    if lists and not {"train", "test"} <= set(lists):
        raise DataError(f"{folder}: id lists for {sorted(lists)} only; need train and test "
                        "(e.g. idnewnyt_train.json, idnewnyt_test.json)")
    return lists


def _read_id_list(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, article id, year hint) of each line of an id list."""
    out = []
    for number, line in read_lines(path, strict=True):
        entry = line.strip().strip('"').strip()
        if not entry:
            continue
        name = entry.replace("\\", "/").rsplit("/", 1)[-1]
        stem = name.removesuffix(".xml")
        if not stem.isdigit():
            raise DataError(f"{path}, line {number}: expected an article path such as "
                            f"Nytimes/2003/1480146.xml or an id, found {entry[:60]!r}")
        year = _YEAR.search(entry)
        out.append((number, stem, year.group(1) if year else None))
    if not out:
        raise DataError(f"{path}: empty id list")
    return out


def _read_vocab(path: Path) -> list[str]:
    labels = []
    for number, line in read_lines(path, strict=True):
        label = line.strip()
        if label:
            labels.append(label)
    if not labels:
        raise DataError(f"{path}: empty label vocabulary")
    return labels


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None) -> Dataset:
    """Read NYT articles (selected by id lists when present) with taxonomic labels."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    articles = _Articles(folder)
    if not articles.loose and not articles.archives:
        raise DataError(f"{folder}: no NYT articles (*.xml files or monthly *.tgz archives) "
                        "under it")
    vocab = _read_vocab(folder / VOCAB_FILE) if (folder / VOCAB_FILE).is_file() else None
    keep = set(vocab) if vocab is not None else None
    lists = _id_lists(folder)
    if lists:
        selection = {role: _read_id_list(path) for role, path in lists.items()}
    else:
        selection = {"all": [(None, doc_id, None) for doc_id in articles.all_ids()]}
    wanted = {doc_id: year for items in selection.values() for _, doc_id, year in items}
    fetched = articles.fetch(wanted)
    for role, items in selection.items():
        for number, doc_id, _ in items:
            if doc_id not in fetched:
                n_missing = sum(1 for _, d, _ in items if d not in fetched)
                raise DataError(f"{lists[role]}, line {number}: article {doc_id}.xml not found "
                                f"under {folder} ({n_missing} of this list missing; looked in "
                                "*.xml files and *.tgz archives)")
    skipped = Counter()
    by_role, all_paths = {}, []
    for role, items in selection.items():
        records = Records(str(lists.get(role, folder)))
        for number, doc_id, _ in items:
            where, data = fetched[doc_id]
            xml_id, text, paths = parse_article(data, where)
            labels = labels_of(paths)
            if keep is not None:
                labels = [lab for lab in labels if lab in keep]
            if not text:
                skipped["no text"] += 1
                continue
            if not labels:
                skipped["no kept label" if keep is not None else "no taxonomic label"] += 1
                continue
            all_paths.extend(labels)
            records.add(number if number is not None else where, xml_id or doc_id, text, labels)
        by_role[role] = records
    edges = []
    for label in sorted(set(all_paths) | (keep or set()), key=lambda x: (x.count("/"), x)):
        parts = label.split("/")
        for k in range(2, len(parts) + 1):
            edges.append(("/".join(parts[:k - 1]) if k > 2 else "Root", "/".join(parts[:k])))
    try:
        hierarchy = LabelHierarchy.from_edges(edges, tree=True,
                                              source=str(folder / VOCAB_FILE) if vocab else None)
    except HierarchyError as err:
        raise DataError(str(err)) from None
    if skipped:
        warnings.warn(f"{folder}: left out {sum(skipped.values())} articles "
                      f"({dict(skipped)}), as the HTC repositories do", SkippedWarning,
                      stacklevel=2)
    info = {"format": NAME, "path": str(folder),
            "files": sorted(p.name for p in lists.values()) + ([VOCAB_FILE] if vocab else []),
            "articles_read": len(fetched),
            "selection": "id lists" if lists else "every article found",
            "text": "paragraphs of the full_text block (else lead_paragraph)",
            "labels": "taxonomic_classifier path prefixes below Top (paths of 3+ parts)"
                      + (f", restricted to {VOCAB_FILE}" if vocab else "")}
    if skipped:
        info["articles_left_out"] = dict(skipped)
    info.update(provenance(folder, LICENCE))
    return make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)
