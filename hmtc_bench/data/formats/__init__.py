"""The on-disk formats: one module each, every one with the same shape.

``NAME``
    the format's name, as in dataset cards (``info["format"]``) and messages;
``recognise(path) -> bool``
    whether a path (a folder, or for some formats an archive) is in this format;
``read(path, *, strict=False, seed=DEFAULT_SEED, **options) -> Dataset``
    read it. Formats whose hierarchy is a tree by definition (``hiagm``, ``lyrl2004``) take
    ``dag=False``: a label with a second parent is refused unless ``dag=True``. The others
    either accept a DAG as it comes (``bgc``, ``relaclass``, ``paths``) or build their tree
    themselves (the rest), so ``dag`` does not apply to them.

What every reader shares (``hmtc_bench.data.toolkit``): a UTF-8 byte-order mark at the start
of a file is dropped (formats read as Latin-1, Reuters-21578 and 20 Newsgroups, have none);
document ids must be unique across train, dev and test (a repeated id is refused naming both
places); labels found in dev or test but never in train are counted in one
``UnseenLabelWarning`` and in the card (``labels_unseen_in_train``).

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

import inspect
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


def takes_dag(fmt: str) -> bool:
    """Whether the format's hierarchy is a tree unless ``dag=True`` says otherwise."""
    return "dag" in inspect.signature(BY_NAME[fmt].read).parameters


def read_folder(folder: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
                fmt: str | None = None, dag: bool = False) -> Dataset:
    """Read a folder (or archive) in the format ``fmt``, recognised when not given. ``dag``
    accepts a label with more than one parent in the formats that are trees by default
    (``takes_dag``); the other formats read their hierarchy as they always do."""
    fmt = fmt or detect_format(folder)
    if fmt not in BY_NAME:
        raise DataError(f"unknown format {fmt!r}; known: {sorted(BY_NAME)}")
    options = {"dag": dag} if takes_dag(fmt) else {}
    return BY_NAME[fmt].read(folder, strict=strict, seed=seed, **options)


__all__ = ["FORMATS", "BY_NAME", "detect_format", "read_folder", "takes_dag"]
