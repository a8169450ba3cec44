"""``wos-data``: Web of Science (Kowsari et al. 2017, HDLTex) as ``Data.txt`` / ``Data.xlsx``.

``Data.txt`` or ``Data.xlsx`` (``Meta-data/`` of the Mendeley archive ``WebOfScience.zip``): a
header ``Y1 Y2 Y Domain area keywords Abstract`` then one row per paper; ``Data.txt`` is the
tab-separated export of the sheet the HTC repositories read (``Data.xlsx`` needs the optional
package ``openpyxl``). The label tree is Domain -> area. A code ``(Y1, Y2)`` is one area, as in
HiAGM's preprocessing; where rows of one code carry several area names (HiAGM reports nine
such codes in WOS-46985), the code is named by its most frequent name and the merge is
recorded in the card. An area name used under two domains is qualified as ``Domain/area``.

The corpus is split with a recorded seed in the proportions of the HTC papers (``_wos``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.formats._wos import (WOS_LICENCE, domain_area_tree, non_negative_int,
                                          split_corpus)
from hmtc_bench.data.toolkit import DEFAULT_SEED, Records, provenance, read_lines

NAME = "wos-data"
WOS_COLUMNS = ("Y1", "Y2", "Y", "Domain", "area", "keywords", "Abstract")


def recognise(path: Path) -> bool:
    """A folder with ``Data.txt`` or ``Data.xlsx``."""
    return path.is_dir() and any((path / n).is_file() for n in ("Data.txt", "Data.xlsx"))


def _name(value: str) -> str:
    return " ".join(str(value).split())


def _unquote(text: str) -> str:
    """A field quoted the CSV way (``"..."`` with ``""`` inside) back to its text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"').strip()
    return text


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


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
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
    records = Records(str(path))
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
        y1 = non_negative_int(get("Y1"), where, "Y1")
        y2 = non_negative_int(get("Y2"), where, "Y2")
        domain, area = _name(get("Domain")), _name(get("area"))
        if not domain or not area:
            raise DataError(f"{where}: empty {'Domain' if not domain else 'area'}")
        code = (y1, y2)
        domain_names[y1][domain] += 1
        area_names[code][area] += 1
        if str(get("Y")).strip():
            y_of[non_negative_int(get("Y"), where, "Y")][code] += 1
        codes.append(code)
        records.add(number, f"{path.stem}:{number}", _unquote(get("Abstract")), [])
    if columns is None or not codes:
        raise DataError(f"{path}: no rows")
    domains = {y1: names.most_common(1)[0][0] for y1, names in domain_names.items()}
    areas = {code: names.most_common(1)[0][0] for code, names in area_names.items()}
    labels = _code_labels(domains, areas)
    for i, code in enumerate(codes):
        records.labels[i] = [labels[code[0]], labels[code]]
    hierarchy = domain_area_tree(domains, areas, labels, path)
    merged = {f"{c[0]}-{c[1]}": sorted(n, key=lambda x: -n[x])
              for c, n in sorted(area_names.items()) if len(n) > 1}
    info = {"format": NAME, "path": str(folder), "files": [path.name],
            "text": "the Abstract column", "codes": len(areas)}
    info.update(provenance(folder, WOS_LICENCE))
    if merged:
        info["area_names_merged"] = merged
    inconsistent = sum(sum(c.values()) - c.most_common(1)[0][1] for c in y_of.values())
    if inconsistent:
        info["rows_whose_Y_disagrees_with_Y1_Y2"] = inconsistent
    return split_corpus(name or folder.name, hierarchy, records, strict, seed, info)


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
