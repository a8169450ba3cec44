"""``reuters21578``: Reuters-21578, Distribution 1.0: the original SGML files, the ModApte split.

Input, as distributed (``reuters21578.tar.gz`` from UCI / David D. Lewis):

- the 22 files ``reut2-000.sgm`` ... ``reut2-021.sgm``: ``<REUTERS TOPICS=".." LEWISSPLIT=".."
  CGISPLIT=".." OLDID=".." NEWID="..">`` records with ``<TOPICS><D>code</D>...</TOPICS>`` and
  ``<TEXT>`` holding ``<TITLE>``, ``<DATELINE>`` and ``<BODY>`` (or, for ``TYPE="BRIEF"``, a
  title only and for ``TYPE="UNPROC"``, unstructured text);
- ``cat-descriptions_120396.txt``: the 135 TOPICS codes under the headings ``**Economic
  Indicator Codes``, ``**Currency Codes``, ``**Corporate Codes``, ``**Commodity Codes``,
  ``**Energy Codes``; the three codes listed directly under ``****Subject Codes`` (money-fx,
  ship, interest) form the group ``Other subject``. These six groups are the top level of a
  two-level tree, the topics the second level.

The path may be the tarball itself, a folder holding it, or a folder of the extracted files.

Split: ModApte (``LEWISSPLIT="TRAIN"`` / ``"TEST"`` with ``TOPICS="YES"``: 9,603 / 3,299
documents). Documents of these without any TOPICS code cannot be scored and are left out
(counted in the card); dev is drawn from train with a recorded seed.

Text: the title and the body (a brief: its title; an unprocessed story: its text), with SGML
entities decoded and the control characters of the wire format removed. The files are
ASCII but for one byte in ``reut2-017.sgm``; they are decoded as Latin-1, as distributed.

Labels: ``topics="used"`` (default) keeps the topics that occur in the ModApte documents,
``"r90"`` those with at least one training and one test document (the usual 90-category
benchmark; documents left without a topic are dropped and counted), ``"all"`` all 135.
"""

from __future__ import annotations

import html
import re
import tarfile
from collections import Counter
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.toolkit import DEFAULT_SEED, Records, make_dataset, provenance
from hmtc_bench.hierarchy import LabelHierarchy

NAME = "reuters21578"
CATEGORIES_FILE = "cat-descriptions_120396.txt"
TOPICS_FILE = "all-topics-strings.lc.txt"
SGML_NAME = re.compile(r"reut2-\d{3}\.sgm$")
TARBALL_NAME = re.compile(r"reuters-?21578.*\.(tar\.gz|tgz|tar)$", re.IGNORECASE)
LICENCE = ("Reuters-21578 README: free distribution for research purposes only "
           "(Reuters Ltd and Carnegie Group)")
OTHER_GROUP = "Other subject"
TOPIC_CHOICES = ("used", "r90", "all")

_ATTR = re.compile(r'([A-Z]+)="([^"]*)"')
_D = re.compile(r"<D>(.*?)</D>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_GROUP = re.compile(r"^\*\*(?!\*)\s*(.+?)\s+Codes\s*\((\d+)\)\s*$")
_SUBJECT = re.compile(r"^\*{4}\s*Subject Codes\s*\((\d+)\)\s*$")
_CODE_IN_PARENS = re.compile(r"\(([A-Za-z0-9.-]+)\)\s*$")
_BARE_CODE = re.compile(r"^[A-Za-z0-9.-]+$")


def recognise(path: Path) -> bool:
    """True for the tarball or a folder with ``reut2-*.sgm`` files or the tarball."""
    if path.is_file():
        return bool(TARBALL_NAME.search(path.name))
    return any(SGML_NAME.search(p.name) or (p.is_file() and TARBALL_NAME.search(p.name))
               for p in path.iterdir())


# ---------------------------------------------------------------------- input files
def _wanted(name: str) -> bool:
    return bool(SGML_NAME.search(name)) or name in (CATEGORIES_FILE, TOPICS_FILE)


def _source_files(path: Path) -> tuple[str, dict[str, bytes]]:
    """(prefix for messages, {file name: bytes}) of the SGML files and the category lists.

    The prefix names a file inside a tarball as ``archive.tar.gz:reut2-003.sgm`` and a loose
    file by its path."""
    if path.is_dir():
        loose = {p.name: p for p in path.iterdir() if p.is_file() and _wanted(p.name)}
        if any(SGML_NAME.search(n) for n in loose):
            return f"{path}/", {n: p.read_bytes() for n, p in sorted(loose.items())}
        tarballs = sorted(p for p in path.iterdir() if p.is_file() and TARBALL_NAME.search(p.name))
        if not tarballs:
            raise DataError(f"{path}: no reut2-*.sgm files and no reuters21578.tar.gz "
                            "(is this the Reuters-21578 distribution?)")
        if len(tarballs) > 1:
            raise DataError(f"{path}: several Reuters tarballs ({[p.name for p in tarballs]}); "
                            "pass the one to read")
        path = tarballs[0]
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    files = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and _wanted(name):
                    files[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable tar archive ({err})") from None
    if not any(SGML_NAME.search(n) for n in files):
        raise DataError(f"{path}: the archive holds no reut2-*.sgm files "
                        "(is this the Reuters-21578 distribution?)")
    return f"{path}:", dict(sorted(files.items()))


def read_categories(text: str, source: str = CATEGORIES_FILE) -> dict[str, str]:
    """Topic code (lower case, as in the SGML files) -> its group, from
    ``cat-descriptions_120396.txt``."""
    groups: dict[str, str] = {}
    group = None
    declared: dict[str, int] = {}
    seen_subject = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not seen_subject:
            if _SUBJECT.match(line):
                seen_subject, group = True, OTHER_GROUP
            continue
        if line.startswith(("___", "@")):
            break  # the organisation, exchange, place and people lists follow
        if not line:
            continue
        heading = _GROUP.match(line)
        if heading:
            group = heading.group(1).strip()
            declared[group] = int(heading.group(2))
            continue
        found = _CODE_IN_PARENS.search(line)
        code = found.group(1) if found else line if _BARE_CODE.match(line) else None
        if code is None:
            raise DataError(f"{source}, line {number}: expected a topic code such as "
                            f"'Trade (TRADE)' or 'COCOA', found {line!r}")
        code = code.lower()
        if code in groups and groups[code] != group:
            raise DataError(f"{source}, line {number}: topic {code!r} listed under both "
                            f"{groups[code]!r} and {group!r}")
        groups[code] = group
    if not seen_subject:
        raise DataError(f"{source}: no '****Subject Codes' heading (is this "
                        f"{CATEGORIES_FILE}?)")
    counts = Counter(groups.values())
    for name, n in declared.items():
        if counts[name] != n:
            raise DataError(f"{source}: the heading '{name} Codes ({n})' announces {n} codes "
                            f"but {counts[name]} are listed")
    return groups


def _clean(text: str) -> str:
    return _CONTROL.sub("", html.unescape(text)).strip()


def _between(text: str, start: str, end: str, begin: int = 0) -> str | None:
    i = text.find(start, begin)
    if i < 0:
        return None
    i += len(start)
    j = text.find(end, i)
    return text[i:j] if j >= 0 else None


def _text_of(record: str) -> str:
    i = record.find("<TEXT")
    if i < 0:
        return ""
    head_end = record.find(">", i)
    inner = _between(record, ">", "</TEXT>", head_end) or ""
    title, body = _between(inner, "<TITLE>", "</TITLE>"), _between(inner, "<BODY>", "</BODY>")
    parts = [_clean(p) for p in (title, body) if p]
    if body is None and "UNPROC" in record[i:head_end] or not any(parts):
        parts = [_clean(_TAG.sub(" ", inner))]
    return "\n".join(p for p in parts if p)


def _topics_of(record: str) -> list[str]:
    block = _between(record, "<TOPICS>", "</TOPICS>")
    if not block:
        return []
    return [t for t in (d.strip().lower() for d in _D.findall(block)) if t]


def _parse_sgml(where: str, data: bytes):
    """Yield (line, attributes, record text) of each record of one SGML file."""
    text = data.decode("latin-1")
    if "<REUTERS" not in text:
        raise DataError(f"{where}: no <REUTERS> records (not a Reuters-21578 SGML file)")
    line, pos = 1, 0
    while True:
        start = text.find("<REUTERS", pos)
        if start < 0:
            return
        line += text.count("\n", pos, start)
        end = text.find("</REUTERS>", start)
        following = text.find("<REUTERS", start + 8)
        if end < 0 or 0 <= following < end:
            raise DataError(f"{where}, line {line}: <REUTERS> record without </REUTERS> "
                            "(truncated or damaged file?)")
        head_end = text.find(">", start)
        attrs = dict(_ATTR.findall(text, start, head_end))
        if "NEWID" not in attrs:
            raise DataError(f"{where}, line {line}: <REUTERS> without a NEWID attribute")
        yield line, attrs, text[head_end + 1:end]
        line += text.count("\n", start, end)
        pos = end


def read(path: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         name: str | None = None, topics: str = "used") -> Dataset:
    """Read Reuters-21578 (tarball, folder with it, or extracted folder): ModApte split,
    TOPICS grouped into a two-level tree by ``cat-descriptions_120396.txt``."""
    path = Path(path)
    if topics not in TOPIC_CHOICES:
        raise DataError(f"topics={topics!r}: expected one of {TOPIC_CHOICES}")
    prefix, files = _source_files(path)
    if CATEGORIES_FILE not in files:
        raise DataError(f"{prefix.rstrip(':/')}: {CATEGORIES_FILE} is missing; the topic "
                        "grouping comes from it (it is part of the original distribution)")
    groups = read_categories(files[CATEGORIES_FILE].decode("latin-1"), prefix + CATEGORIES_FILE)
    if TOPICS_FILE in files:
        listed = {t.strip() for t in files[TOPICS_FILE].decode("latin-1").split() if t.strip()}
        if listed != set(groups):
            raise DataError(f"{prefix}{TOPICS_FILE}: its topics and those of {CATEGORIES_FILE} "
                            f"differ: {sorted(listed ^ set(groups))[:5]}")
    docs = {"train": [], "test": []}
    others = Counter()
    no_topics = Counter()
    for file_name, data in files.items():
        if not SGML_NAME.search(file_name):
            continue
        for line, attrs, record in _parse_sgml(prefix + file_name, data):
            role = {"TRAIN": "train", "TEST": "test"}.get(attrs.get("LEWISSPLIT", ""))
            if role is None or attrs.get("TOPICS") != "YES":
                others[attrs.get("LEWISSPLIT", "?")] += 1
                continue
            doc_topics = _topics_of(record)
            for topic in doc_topics:
                if topic not in groups:
                    raise DataError(f"{prefix}{file_name}, line {line}: topic {topic!r} is "
                                    f"not in {CATEGORIES_FILE}")
            if not doc_topics:
                no_topics[role] += 1
                continue
            docs[role].append((file_name, line, attrs["NEWID"], _text_of(record), doc_topics))
    modapte = {role: len(docs[role]) + no_topics[role] for role in docs}
    in_train = Counter(t for d in docs["train"] for t in set(d[4]))
    in_test = Counter(t for d in docs["test"] for t in set(d[4]))
    if topics == "all":
        kept = set(groups)
    elif topics == "used":
        kept = set(in_train) | set(in_test)
    else:
        kept = set(in_train) & set(in_test)
    dropped = Counter()
    by_role = {}
    for role, items in docs.items():
        records = Records(prefix.rstrip(":/"))
        for file_name, line, newid, text, doc_topics in items:
            labels = [t for t in doc_topics if t in kept]
            if not labels:
                dropped[role] += 1
                continue
            if not text:
                raise DataError(f"{prefix}{file_name}, line {line}: document NEWID={newid} "
                                "has no text")
            records.add(line, newid, text, sorted({groups[t] for t in labels} | set(labels)))
        by_role[role] = records
    # labels in the order of the grouping file: groups, then topics
    edges = [("Root", groups[t], None) for t in groups] + [(groups[t], t, None) for t in groups
                                                           if t in kept]
    wanted = {groups[t] for t in kept} | kept
    hierarchy = LabelHierarchy.from_edges([e for e in edges if e[1] in wanted],
                                          tree=True, source=CATEGORIES_FILE)
    folder = path if path.is_dir() else path.parent
    info = {"format": NAME, "path": str(path),
            "files": [n for n in files if not SGML_NAME.search(n)] + [
                f"{sum(1 for n in files if SGML_NAME.search(n))} reut2-*.sgm files"],
            "split_name": "ModApte",
            "modapte_documents": modapte,
            "documents_without_topics_left_out": dict(no_topics),
            "topics": topics, "topics_in_grouping": len(groups),
            "topics_kept": len(kept),
            "documents_outside_modapte": sum(others.values()),
            "text": "title + body; SGML entities decoded, control characters removed"}
    if dropped:
        info["documents_without_kept_topics_left_out"] = dict(dropped)
    info.update(provenance(folder, LICENCE))
    return make_dataset(name or _name_of(path), hierarchy, by_role, strict, seed, info)


def _name_of(path: Path) -> str:
    if path.is_file():
        return re.sub(r"\.(tar\.gz|tgz|tar)$", "", path.name, flags=re.IGNORECASE)
    return path.name
