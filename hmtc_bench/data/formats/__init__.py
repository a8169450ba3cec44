"""The on-disk formats: one module each, every one with the same shape.

``NAME``
    the format's name, as in dataset cards (``info["format"]``) and messages;
``recognise(path) -> bool``
    whether a path (a folder, or for some formats an archive) is in this format;
``read(path, *, strict=False, seed=DEFAULT_SEED, **options) -> Dataset``
    read it.

``FORMATS`` lists them in the order ``detect_format`` tries them: the standard corpora,
recognised by their distinctive file names, before the generic ``hiagm``, ``relaclass`` and
``paths`` layouts. A Reuters-21578 or 20 Newsgroups tarball is recognised by its name.

=================  ================  ==================================================
module             ``NAME``          what
=================  ================  ==================================================
``lyrl2004``       ``lyrl2004``      RCV1-V2, the LYRL2004 token files, qrels, topic tree
``reuters21578``   ``reuters21578``  Reuters-21578 SGML files (or their tarball), ModApte
``wos_data``       ``wos-data``      Web of Science ``Data.txt`` / ``Data.xlsx``
``wos_xy``         ``wos-xy``        Web of Science ``X.txt`` / ``YL1.txt`` / ``YL2.txt``
``bgc``            ``bgc``           Blurb Genre Collection
``nyt``            ``nyt``           New York Times Annotated Corpus, NITF XML
``newsgroups``     ``20news-bydate`` 20 Newsgroups ``20news-bydate.tar.gz``
``hiagm``          ``hiagm``         ``*.taxonomy`` and JSON lines (HiAGM layout)
``relaclass``      ``relaclass``     JSON lines with label ids, ``labels.txt`` (RelaClass)
``paths``          ``paths``         generic JSON lines / CSV with label paths
=================  ================  ==================================================

``_wos`` holds what ``wos_data`` and ``wos_xy`` share; ``hmtc_bench.data.toolkit`` what all
share.
"""

from __future__ import annotations

from pathlib import Path

from hmtc_bench.data.dataset import DataError, Dataset
from hmtc_bench.data.formats import (bgc, hiagm, lyrl2004, newsgroups, nyt, paths, relaclass,
                                     reuters21578, wos_data, wos_xy)
from hmtc_bench.data.toolkit import DEFAULT_SEED

FORMATS = [lyrl2004, reuters21578, wos_data, wos_xy, bgc, nyt, newsgroups, hiagm, relaclass,
           paths]
BY_NAME = {fmt.NAME: fmt for fmt in FORMATS}
GENERIC = ("hiagm", "paths")


def detect_format(folder: str | Path) -> str:
    """Recognise a folder's format from its files (a Reuters-21578 or 20 Newsgroups tarball
    is recognised by its name)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: no such file or folder")
    for fmt in FORMATS:
        if fmt.recognise(folder):
            return fmt.NAME
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder, nor a known archive (reuters21578.tar.gz, "
                        f"{newsgroups.ARCHIVE}); pass the folder holding the data")
    names = [p.name for p in folder.iterdir()]
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
    hint = (f" It has sub-folders {subfolders[:8]}: point at one of them." if subfolders else "")
    corpora = ", ".join(sorted(set(BY_NAME) - set(GENERIC)))
    raise DataError(f"{folder}: unrecognised dataset format; expected a *.taxonomy file with "
                    f"JSON lines (hiagm), or *.jsonl / *.csv files with label paths (paths), or "
                    f"the files of a known corpus ({corpora}: "
                    f"see README.md). Found: {sorted(names)[:8]}.{hint}")


def read_folder(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                fmt: str | None = None) -> Dataset:
    """Read a folder (or archive) in the format ``fmt``, recognised when not given."""
    fmt = fmt or detect_format(folder)
    if fmt not in BY_NAME:
        raise DataError(f"unknown format {fmt!r}; known: {sorted(BY_NAME)}")
    return BY_NAME[fmt].read(folder, strict=strict, seed=seed)


__all__ = ["FORMATS", "BY_NAME", "detect_format", "read_folder"]
