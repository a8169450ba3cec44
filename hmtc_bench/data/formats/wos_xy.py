"""``wos-xy``: Web of Science (Kowsari et al. 2017, HDLTex) as ``X.txt`` / ``YL1.txt`` /
``YL2.txt``.

``X.txt`` (one abstract per line), ``YL1.txt`` (the domain index) and ``YL2.txt`` (the area
index within the domain), optionally ``Y.txt``: the ``WOS5736``, ``WOS11967`` and
``WOS46985`` folders of the archive ``WebOfScience.zip``. Labels are the codes: domains
``"0"`` ... and areas ``"<YL1>-<YL2>"`` (the folders carry no names).

The corpus is split with a recorded seed in the proportions of the HTC papers (``_wos``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.formats._wos import (WOS_LICENCE, domain_area_tree, non_negative_int,
                                          split_corpus)
from hmtc_bench.data.toolkit import DEFAULT_SEED, Records, provenance, read_lines

NAME = "wos-xy"
XY_FILES = ("X.txt", "YL1.txt", "YL2.txt")


def recognise(path: Path) -> bool:
    """A folder with ``X.txt``, ``YL1.txt`` and ``YL2.txt``."""
    return path.is_dir() and all((path / n).is_file() for n in XY_FILES)


def _int_lines(path: Path) -> list[tuple[int, int]]:
    out = []
    for number, line in read_lines(path, strict=True):
        if line.strip():
            out.append((number, non_negative_int(line.strip(), f"{path}, line {number}",
                                                 path.stem)))
    return out


def read(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
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
    records = Records(str(x_path))
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
    hierarchy = domain_area_tree(domains, areas, labels, folder / "YL2.txt")
    info = {"format": NAME, "path": str(folder),
            "files": [n for n in (*XY_FILES, "Y.txt") if (folder / n).is_file()],
            "text": "X.txt (one abstract per line)",
            "labels_note": "codes: domains YL1, areas YL1-YL2"}
    info.update(provenance(folder, WOS_LICENCE))
    if y is not None:
        info["Y_values"] = len(y_of)
        split_y = {yv: sorted(f"{a}-{b}" for a, b in c) for yv, c in sorted(y_of.items())
                   if len(c) > 1}
        if split_y:
            info["Y_values_spanning_several_codes"] = split_y
    return split_corpus(name or folder.name, hierarchy, records, strict, seed, info)
