"""``lyrl2004``: RCV1-V2 in the raw LYRL2004 distribution (Lewis, Yang, Rose and Li, JMLR 5,
2004).

Input, the online appendices of the paper as distributed (each file plain or ``.gz``):

- ``lyrl2004_tokens_train.dat`` and ``lyrl2004_tokens_test_pt0.dat`` ... ``_pt3.dat``
  (appendix 12): documents as ``.I <id>`` / ``.W`` / token lines / a blank line;
- ``rcv1-v2.topics.qrels`` (appendix 8): lines ``<topic> <doc id> 1``;
- ``rcv1.topics.hier.orig`` (appendix 2): lines
  ``parent: <code> child: <code> child-description: <text>``, the first ``parent: None
  child: Root``.

Split: the LYRL2004 one, 23,149 training documents (the train file) and 781,265 test
documents (the four test parts). The test parts present in the folder are read; a missing
part is recorded in the card and warned about. Dev is drawn from train with a recorded seed
(10 %: 20,834 / 2,315, the proportions of the HTC papers' 20,833 / 2,316).

Text: the LYRL2004 tokens (stemmed, stop words removed) joined with spaces.

The topic hierarchy is a tree: a code given a second parent is refused naming both lines,
unless ``dag=True`` declares it a DAG.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import DEFAULT_SEED, Records, make_dataset, provenance, read_lines
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

NAME = "lyrl2004"
LICENCE = ("RCV1: Reuters copyright; research use under the Reuters / NIST agreement "
           "(LYRL2004 appendices: JMLR)")
TOKENS = re.compile(r"^lyrl2004_tokens_(train|test_pt([0-3]))\.dat(\.gz)?$")
QRELS = re.compile(r"^rcv1-?v2\.topics\.qrels(\.gz)?$")
HIERARCHY = re.compile(r"^rcv1\.topics\.hier\.orig(\.txt)?$")
_HIER_LINE = re.compile(r"^\s*parent:\s*(\S+)\s+child:\s*(\S+)\s+child-description:\s*(.*?)\s*$")


class PartialWarning(UserWarning):
    """Not every part of a corpus was present; what was read is recorded in the card."""


def recognise(path: Path) -> bool:
    """A folder with a ``lyrl2004_tokens_*.dat[.gz]`` file."""
    return path.is_dir() and any(TOKENS.match(p.name) for p in path.iterdir())


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _lines(path: Path, strict: bool) -> Iterable[tuple[int, str]]:
    """(number, text) of each line of a plain or gzipped file; invalid UTF-8 replaced with
    one warning, or refused under ``strict``."""
    try:
        for number, line in read_lines(path, strict, opener=_open):
            yield number, line.rstrip("\r\n")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


def read_topic_hierarchy(path: str | Path, *, dag: bool = False
                         ) -> tuple[LabelHierarchy, dict[str, str]]:
    """The topic tree of ``rcv1.topics.hier.orig`` (a DAG with ``dag``) and each code's
    description."""
    path = Path(path)
    edges, names = [], {}
    root = None
    for number, line in _lines(path, strict=True):
        if not line.strip():
            continue
        found = _HIER_LINE.match(line)
        if not found:
            raise DataError(f"{path}, line {number}: expected 'parent: CODE child: CODE "
                            f"child-description: TEXT', found {line[:80]!r} (is this "
                            "rcv1.topics.hier.orig?)")
        parent, child, description = found.groups()
        if parent == "None":
            root = child
            continue
        edges.append((parent, child, number))
        names[child] = description
    if root is None:
        raise DataError(f"{path}: no 'parent: None child: Root' line (is this "
                        "rcv1.topics.hier.orig?)")
    try:
        return LabelHierarchy.from_edges(edges, root=root, tree=not dag,
                                          source=str(path)), names
    except HierarchyError as err:
        raise DataError(str(err)) from None


def read_tokens(path: str | Path, strict: bool = False):
    """Yield (line of ``.I``, doc id, text) of a LYRL2004 token file."""
    path = Path(path)
    doc_id, start, tokens, in_text = None, 0, [], False
    for number, line in _lines(path, strict):
        if line.startswith(".I"):
            if doc_id is not None:
                yield start, doc_id, " ".join(tokens)
            parts = line.split()
            if len(parts) != 2 or parts[0] != ".I":
                raise DataError(f"{path}, line {number}: expected '.I <document id>', "
                                f"found {line[:60]!r}")
            doc_id, start, tokens, in_text = parts[1], number, [], False
        elif line == ".W":
            if doc_id is None or in_text:
                raise DataError(f"{path}, line {number}: '.W' without a preceding '.I <id>'")
            in_text = True
        elif line.strip():
            if not in_text:
                raise DataError(f"{path}, line {number}: text outside a document (expected "
                                f"'.I <id>' then '.W'); is this a LYRL2004 token file?")
            tokens.append(line.strip())
    if doc_id is not None:
        yield start, doc_id, " ".join(tokens)


def read_qrels(path: str | Path, wanted: set[str], hierarchy: LabelHierarchy) -> dict[str, list]:
    """Topics of the ``wanted`` documents from ``rcv1-v2.topics.qrels``."""
    path = Path(path)
    topics: dict[str, list[str]] = {}
    for number, line in _lines(path, strict=True):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(f"{path}, line {number}: expected '<topic> <document id> 1', "
                            f"found {line[:60]!r}")
        topic, doc_id = parts[0], parts[1]
        if topic not in hierarchy.index:
            raise DataError(f"{path}, line {number}: topic {topic!r} is not in the topic "
                            "hierarchy")
        if doc_id in wanted:
            topics.setdefault(doc_id, []).append(topic)
    return topics


def _find(folder: Path, pattern: re.Pattern, what: str) -> Path:
    found = sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
    if not found:
        raise DataError(f"{folder}: {what} is missing (part of the LYRL2004 distribution; "
                        "`hmtc-bench data download rcv1-v2` fetches it)")
    if len(found) > 1:
        raise DataError(f"{folder}: {what} is there twice: {[p.name for p in found]}")
    return found[0]


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None, test_parts: Iterable[int] | None = None,
         dag: bool = False) -> Dataset:
    """Read RCV1-V2 from the LYRL2004 token files, qrels and topic hierarchy.

    ``test_parts`` restricts the test split to some of the parts 0-3 (default: all that are
    present); what was read is recorded in the card. ``dag`` accepts a topic with more than
    one parent."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    hierarchy, _ = read_topic_hierarchy(_find(folder, HIERARCHY, "rcv1.topics.hier.orig"),
                                        dag=dag)
    qrels = _find(folder, QRELS, "rcv1-v2.topics.qrels[.gz]")
    token_files: dict[str, list[Path]] = {"train": [], "test": []}
    parts = {}
    for path in sorted(folder.iterdir()):
        found = TOKENS.match(path.name)
        if found and found.group(2) is None:
            token_files["train"].append(path)
        elif found:
            parts.setdefault(int(found.group(2)), []).append(path)
    for part, paths in parts.items():
        if len(paths) > 1:
            raise DataError(f"{folder}: test part {part} is there twice: "
                            f"{[p.name for p in paths]}")
    if len(token_files["train"]) != 1:
        raise DataError(f"{folder}: expected one lyrl2004_tokens_train.dat[.gz], found "
                        f"{[p.name for p in token_files['train']] or 'none'}")
    wanted_parts = sorted(set(test_parts)) if test_parts is not None else sorted(parts)
    missing = [p for p in wanted_parts if p not in parts]
    if missing or not wanted_parts:
        raise DataError(f"{folder}: test part(s) {missing or [0, 1, 2, 3]} not found "
                        "(lyrl2004_tokens_test_pt<N>.dat[.gz])")
    token_files["test"] = [parts[p][0] for p in wanted_parts]
    if test_parts is None and wanted_parts != [0, 1, 2, 3]:
        warnings.warn(f"{folder}: only test parts {wanted_parts} of 0-3 are present; the test "
                      "split is partial (recorded in the card)", PartialWarning, stacklevel=2)

    docs = {}
    for role, paths in token_files.items():
        docs[role] = [(path, line, doc_id, text) for path in paths
                      for line, doc_id, text in read_tokens(path, strict)]
    wanted = {d[2] for items in docs.values() for d in items}
    topics = read_qrels(qrels, wanted, hierarchy)
    by_role = {}
    for role, items in docs.items():
        # one record set per split may span files: its lines read "N of FILE"
        records = Records(str(folder))
        for path, line, doc_id, text in items:
            labels = topics.get(doc_id)
            if not labels:
                raise DataError(f"{path}, line {line}: document {doc_id} has no topic in "
                                f"{qrels.name}")
            if not text:
                raise DataError(f"{path}, line {line}: document {doc_id} has no tokens")
            records.add(f"{line} of {path.name}", doc_id, text, labels)
        by_role[role] = records
    info = {"format": NAME, "path": str(folder),
            "files": [p.name for ps in token_files.values() for p in ps] + [qrels.name],
            "split_name": "LYRL2004", "test_parts": wanted_parts,
            "text": "LYRL2004 tokens (stemmed, stop words removed), joined with spaces"}
    info.update(provenance(folder, LICENCE))
    return make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)
