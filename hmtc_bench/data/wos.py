"""Web of Science (Kowsari et al. 2017, HDLTex) in its distributed layouts, and the
label-id JSON layout of the RelaClass samples.

``wos-data``
    ``Data.txt`` or ``Data.xlsx`` (``Meta-data/`` of the Mendeley archive ``WebOfScience.zip``):
    a header ``Y1 Y2 Y Domain area keywords Abstract`` then one row per paper; ``Data.txt`` is
    the tab-separated export of the sheet the HTC repositories read (``Data.xlsx`` needs the
    optional package ``openpyxl``). The label tree is Domain -> area. A code ``(Y1, Y2)`` is one
    area, as in HiAGM's preprocessing; where rows of one code carry several area names (HiAGM
    reports nine such codes in WOS-46985), the code is named by its most frequent name and the
    merge is recorded in the card. An area name used under two domains is qualified as
    ``Domain/area``.
``wos-xy``
    ``X.txt`` (one abstract per line), ``YL1.txt`` (the domain index) and ``YL2.txt`` (the
    area index within the domain), optionally ``Y.txt``: the ``WOS5736``, ``WOS11967`` and
    ``WOS46985`` folders of the archive. Labels are the codes: domains ``"0"`` ... and areas
    ``"<YL1>-<YL2>"`` (the folders carry no names).
``relaclass``
    JSON lines ``{"id" | "asin": ..., "token": text, "labels": [level-1 id, level-2 id, ...]}``
    with ``labels.txt`` (``id<TAB>name``) and ``label_hierarchy.txt`` (``parent_id<TAB>child_id``),
    as in the RelaClass / TaxoClass repositories (the shared ``wos-sample`` and
    ``amazon-sample``). Labels are the names of ``labels.txt``.

WOS comes as one corpus: it is split with a recorded seed in the proportions of the HTC papers
(20 % test, then 20 % of the rest dev: 30,070 / 7,518 / 9,397 for WOS-46985).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset, split_rows
from hmtc_bench.data.readers import (DEFAULT_SEED, _make_dataset, _provenance, _Records,
                                     _role, read_lines)
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

FORMAT_DATA = "wos-data"
FORMAT_XY = "wos-xy"
FORMAT_LABEL_IDS = "relaclass"
WOS_LICENCE = ("WOS (Kowsari et al. 2017, HDLTex): Mendeley Data doi:10.17632/9rw3vkcfy4; "
               "cite the HDLTex paper")
WOS_COLUMNS = ("Y1", "Y2", "Y", "Domain", "area", "keywords", "Abstract")
WOS_TEST_FRACTION = 0.2
WOS_DEV_FRACTION = 0.2  # of the rest, as HiAGM's preprocessing
XY_FILES = ("X.txt", "YL1.txt", "YL2.txt")
LABELS_FILE = "labels.txt"
LABEL_HIERARCHY_FILE = "label_hierarchy.txt"


def matches_data(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("Data.txt", "Data.xlsx"))


def matches_xy(path: Path) -> bool:
    return path.is_dir() and all((path / n).is_file() for n in XY_FILES)


def matches_label_ids(path: Path) -> bool:
    return (path.is_dir() and (path / LABELS_FILE).is_file()
            and (path / LABEL_HIERARCHY_FILE).is_file()
            and any(p.suffix in (".json", ".jsonl") for p in path.iterdir()))


def _info(folder: Path, fmt: str, licence: str, **extra) -> dict:
    info = {"format": fmt, "path": str(folder), **extra}
    info.update(_provenance(folder))
    if info["licence"] == "unknown":
        info["licence"] = licence
    return info


def _split_corpus(name: str, hierarchy: LabelHierarchy, records: _Records, strict: bool,
                  seed: int, info: dict) -> Dataset:
    """Test 20 %, then dev 20 % of the rest, each drawn with a recorded seed."""
    rest, test_rows = split_rows(len(records.ids), [1 - WOS_TEST_FRACTION, WOS_TEST_FRACTION],
                                 seed)
    parts = split_rows(len(rest), [1 - WOS_DEV_FRACTION, WOS_DEV_FRACTION], seed + 1)
    train_rows, dev_rows = rest[parts[0]], rest[parts[1]]
    info = dict(info)
    info["split"] = (f"one corpus split with seed {seed}: {WOS_TEST_FRACTION:.0%} test; dev = "
                     f"{WOS_DEV_FRACTION:.0%} of the rest (seed {seed + 1}), the proportions "
                     "of the HTC papers")
    info["split_seed"] = seed
    return Dataset(name, hierarchy, records.split(hierarchy, strict, train_rows),
                    records.split(hierarchy, strict, dev_rows),
                    records.split(hierarchy, strict, test_rows), info)


def _name(value: str) -> str:
    return " ".join(str(value).split())


def _int(value, where: str, column: str) -> int:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: column {column} must be a number, found {value!r}") from None
    if number != int(number) or number < 0:
        raise DataError(f"{where}: column {column} must be a non-negative integer, "
                        f"found {value!r}")
    return int(number)


def _unquote(text: str) -> str:
    """A field quoted the CSV way (``"..."`` with ``""`` inside) back to its text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"').strip()
    return text


# ---------------------------------------------------------------------- Data.txt / xlsx
def _data_rows_txt(path: Path, strict: bool):
    with open(path, "rb") as handle:
        if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}, line 1: the file is UTF-16 (as Excel's 'Unicode Text' "
                            "export writes it); save it as UTF-8 tab-separated text")
    header = None
    for number, line in read_lines(path, strict):
        line = line.rstrip("\r\n").lstrip("\ufeff") if header is None else line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if header is None:
            header = fields
            yield number, fields
            continue
        if len(fields) != len(header):
            raise DataError(f"{path}, line {number}: expected {len(header)} tab-separated "
                            f"fields ({' '.join(h.strip() for h in header)}), found {len(fields)}")
        yield number, fields


def _data_rows_xlsx(path: Path):
    try:
        import openpyxl
    except ImportError:
        raise DataError(f"{path}: reading .xlsx needs the optional package openpyxl "
                        "(pip install openpyxl), or save the sheet as tab-separated Data.txt "
                        "beside it") from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises several types for a damaged file
        raise DataError(f"{path}: not a readable .xlsx workbook ({err})") from None
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            if row is None or all(v is None or str(v).strip() == "" for v in row):
                continue
            yield number, ["" if v is None else str(v) for v in row]
    finally:
        book.close()


def read_wos_data(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                  name: str | None = None) -> Dataset:
    """Read ``Data.txt`` (or ``Data.xlsx``) of the WOS-46985 distribution."""
    folder = Path(folder)
    txt, xlsx = folder / "Data.txt", folder / "Data.xlsx"
    if txt.is_file():
        path, rows, unit = txt, _data_rows_txt(txt, strict), "line"
    elif xlsx.is_file():
        path, rows, unit = xlsx, _data_rows_xlsx(xlsx), "row"
    else:
        raise DataError(f"{folder}: no Data.txt or Data.xlsx")
    records = _Records(str(path))
    columns = None
    codes, domain_names, area_names, y_of = [], defaultdict(Counter), defaultdict(Counter), \
        defaultdict(Counter)
    for number, fields in rows:
        if columns is None:
            found = {f.strip().lower(): i for i, f in enumerate(fields)}
            missing = [c for c in WOS_COLUMNS if c.lower() not in found]
            if missing:
                raise DataError(f"{path}, {unit} {number}: expected the header "
                                f"{' '.join(WOS_COLUMNS)}; missing {missing} (is this the WOS "
                                "Data.txt?)")
            columns = {c: found[c.lower()] for c in WOS_COLUMNS}
            continue
        where = f"{path}, {unit} {number}"
        row = {c: fields[i] if i < len(fields) else "" for c, i in columns.items()}
        get = row.__getitem__
        y1, y2 = _int(get("Y1"), where, "Y1"), _int(get("Y2"), where, "Y2")
        domain, area = _name(get("Domain")), _name(get("area"))
        if not domain or not area:
            raise DataError(f"{where}: empty {'Domain' if not domain else 'area'}")
        code = (y1, y2)
        domain_names[y1][domain] += 1
        area_names[code][area] += 1
        if str(get("Y")).strip():
            y_of[_int(get("Y"), where, "Y")][code] += 1
        codes.append(code)
        records.add(number, f"{path.stem}:{number}", _unquote(get("Abstract")), [])
    if columns is None or not codes:
        raise DataError(f"{path}: no rows")
    domains = {y1: names.most_common(1)[0][0] for y1, names in domain_names.items()}
    areas = {code: names.most_common(1)[0][0] for code, names in area_names.items()}
    labels = _code_labels(domains, areas)
    for i, code in enumerate(codes):
        records.labels[i] = [labels[code[0]], labels[code]]
    hierarchy = _tree(domains, areas, labels, path)
    merged = {f"{c[0]}-{c[1]}": sorted(n, key=lambda x: -n[x])
              for c, n in sorted(area_names.items()) if len(n) > 1}
    info = _info(folder, FORMAT_DATA, WOS_LICENCE, files=[path.name],
                 text="the Abstract column", codes=len(areas))
    if merged:
        info["area_names_merged"] = merged
    inconsistent = sum(sum(c.values()) - c.most_common(1)[0][1] for c in y_of.values())
    if inconsistent:
        info["rows_whose_Y_disagrees_with_Y1_Y2"] = inconsistent
    return _split_corpus(name or folder.name, hierarchy, records, strict, seed, info)


def _code_labels(domains: dict, areas: dict) -> dict:
    """Label names: domains by name, areas by name, qualified where a name repeats."""
    labels = {y1: name for y1, name in domains.items()}
    taken = Counter(areas.values())
    domain_set = set(domains.values())
    if len(domain_set) != len(domains):
        labels = {y1: f"{name} ({y1})" if list(domains.values()).count(name) > 1 else name
                  for y1, name in domains.items()}
    for code, area in areas.items():
        name = area
        if taken[area] > 1 or area in domain_set:
            name = f"{labels[code[0]]}/{area}"
        labels[code] = name
    qualified = Counter(labels[c] for c in areas)
    for code in areas:
        if qualified[labels[code]] > 1:
            labels[code] = f"{labels[code]} ({code[0]}-{code[1]})"
    return labels


def _tree(domains: dict, areas: dict, labels: dict, source) -> LabelHierarchy:
    edges = [("Root", labels[y1]) for y1 in sorted(domains)]
    edges += [(labels[code[0]], labels[code]) for code in sorted(areas)]
    try:
        return LabelHierarchy.from_edges(edges, tree=True, source=str(source))
    except HierarchyError as err:
        raise DataError(str(err)) from None


# ---------------------------------------------------------------------- X.txt / YL*.txt
def _int_lines(path: Path) -> list[tuple[int, int]]:
    out = []
    for number, line in read_lines(path, strict=True):
        if line.strip():
            out.append((number, _int(line.strip(), f"{path}, line {number}", path.stem)))
    return out


def read_wos_xy(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                name: str | None = None) -> Dataset:
    """Read a ``WOS5736`` / ``WOS11967`` / ``WOS46985`` folder (X.txt, YL1.txt, YL2.txt)."""
    folder = Path(folder)
    for needed in XY_FILES:
        if not (folder / needed).is_file():
            raise DataError(f"{folder}: {needed} is missing (expected X.txt, YL1.txt, YL2.txt)")
    x_path = folder / "X.txt"
    texts = [(n, line.rstrip("\r\n")) for n, line in read_lines(x_path, strict)]
    while texts and not texts[-1][1].strip():
        texts.pop()
    yl1, yl2 = _int_lines(folder / "YL1.txt"), _int_lines(folder / "YL2.txt")
    y = _int_lines(folder / "Y.txt") if (folder / "Y.txt").is_file() else None
    for other, values in (("YL1.txt", yl1), ("YL2.txt", yl2), ("Y.txt", y)):
        if values is not None and len(values) != len(texts):
            raise DataError(f"{folder / other}: {len(values)} labels for the {len(texts)} lines "
                            "of X.txt (the files must have one line per document)")
    records = _Records(str(x_path))
    domains, areas = {}, {}
    y_of = defaultdict(Counter)
    for i, (number, text) in enumerate(texts):
        code = (yl1[i][1], yl2[i][1])
        domains[code[0]] = str(code[0])
        areas[code] = f"{code[0]}-{code[1]}"
        if y is not None:
            y_of[y[i][1]][code] += 1
        records.add(number, f"{folder.name}:{number}", text, [domains[code[0]], areas[code]])
    if not texts:
        raise DataError(f"{x_path}: no documents")
    labels = {**domains, **areas}
    hierarchy = _tree(domains, areas, labels, folder / "YL2.txt")
    info = _info(folder, FORMAT_XY, WOS_LICENCE,
                 files=[n for n in (*XY_FILES, "Y.txt") if (folder / n).is_file()],
                 text="X.txt (one abstract per line)",
                 labels_note="codes: domains YL1, areas YL1-YL2")
    if y is not None:
        info["Y_values"] = len(y_of)
        split_y = {yv: sorted(f"{a}-{b}" for a, b in c) for yv, c in sorted(y_of.items())
                   if len(c) > 1}
        if split_y:
            info["Y_values_spanning_several_codes"] = split_y
    return _split_corpus(name or folder.name, hierarchy, records, strict, seed, info)


# ---------------------------------------------------------------------- label-id JSON
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


def read_label_ids_folder(folder: str | Path, *, strict: bool = False,
                          seed: int = DEFAULT_SEED, name: str | None = None) -> Dataset:
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
    roles = _label_id_roles(files, folder)
    by_role = {role: _read_label_id_file(path, label, strict) for role, path in roles.items()}
    info = _info(folder, FORMAT_LABEL_IDS, "unknown (none stated with the files)",
                 files=sorted(p.name for p in roles.values()) + [LABELS_FILE,
                                                                  LABEL_HIERARCHY_FILE])
    ignored = sorted(p.name for p in files if p not in roles.values())
    if ignored:
        info["files_ignored"] = ignored
    return _make_dataset(name or folder.name, hierarchy, by_role, strict, seed, info)


def _label_id_roles(files: list[Path], folder: Path) -> dict[str, Path]:
    if len(files) == 1:
        return {"all": files[0]}
    full = [f for f in files if "sample" not in f.name.lower()]
    candidates = full if {_role(f.name) for f in full} >= {"train", "test"} else files
    roles: dict[str, Path] = {}
    for f in candidates:
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


def _read_label_id_file(path: Path, label: dict[str, str], strict: bool) -> _Records:
    records = _Records(str(path))
    for number, line in read_lines(path, strict):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: malformed JSON ({err.msg}, column "
                            f"{err.colno})") from None
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
