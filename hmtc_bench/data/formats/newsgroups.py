"""``20news-bydate``: 20 Newsgroups, "bydate" split, read from the original
``20news-bydate.tar.gz``.

The archive holds ``20news-bydate-{train,test}/<group>/<id>`` (latin-1 Usenet posts, headers
kept, as ``sklearn.datasets.load_files`` reads them). The hierarchy comes from the dotted
group names with unary chains collapsed: the top-level name (``comp``) is always a label,
an inner prefix only when at least two groups share it (``comp.sys``, ``rec.sport``,
``talk.politics``), and the full group name is the leaf. That gives 7 top labels, 16 on
level 2 (3 of them internal) and 7 leaves on level 3: 30 labels, leaves at depths 2 and
3, one path per document. Dev is drawn from train with a fixed seed.
"""

from __future__ import annotations

import os
import tarfile
from collections import defaultdict
from pathlib import Path

from hmtc_bench.data.dataset import (DataError, Dataset, build_split, split_rows,
                                     warn_unseen_labels)
from hmtc_bench.data.toolkit import DEFAULT_SEED, DEV_FRACTION, checksums
from hmtc_bench.hierarchy import LabelHierarchy

NAME = "20news-bydate"
ARCHIVE = "20news-bydate.tar.gz"


def recognise(path: Path) -> bool:
    """The archive ``20news-bydate.tar.gz``, or a folder holding it."""
    return path.name == ARCHIVE if path.is_file() else (path / ARCHIVE).is_file()


def read(path: str | Path, *, strict: bool = False, seed: int = DEFAULT_SEED,
         **options) -> Dataset:
    """``load``: the posts are decoded as latin-1 (nothing to refuse) and the label sets are
    always checked strictly, so ``strict`` is not used."""
    return load(path, seed=seed, **options)


def default_path() -> Path:
    """``$HMTC_BENCH_DATASETS/20newsgroups/20news-bydate.tar.gz``, else
    ``../shared/datasets/20newsgroups/...`` relative to the working directory."""
    base = os.environ.get("HMTC_BENCH_DATASETS")
    base = Path(base) if base else Path.cwd().parent / "shared" / "datasets"
    return base / "20newsgroups" / ARCHIVE


def group_path(group: str, groups) -> list[str]:
    """Labels from the top down for one group, e.g. ``comp.sys.mac.hardware`` ->
    ``["comp", "comp.sys", "comp.sys.mac.hardware"]``."""
    parts = group.split(".")
    path = [parts[0]]
    for k in range(2, len(parts)):
        prefix = ".".join(parts[:k])
        if sum(1 for g in groups if g.startswith(prefix + ".")) >= 2:
            path.append(prefix)
    if group != parts[0]:
        path.append(group)
    return path


def load(path: str | Path | None = None, *, seed: int = DEFAULT_SEED,
         dev_fraction: float = DEV_FRACTION) -> Dataset:
    """The 20 Newsgroups dataset from the archive at ``path`` (see ``default_path``)."""
    path = Path(path) if path is not None else default_path()
    if path.is_dir():
        path = path / ARCHIVE
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass the path of {ARCHIVE} "
                        "(or set HMTC_BENCH_DATASETS to the folder holding 20newsgroups/)")
    docs: dict[str, list[tuple[str, str, str]]] = defaultdict(list)   # split -> (id, group, text)
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            parts = member.name.strip("/").split("/")
            if len(parts) < 3 or not parts[-3].startswith("20news-bydate-"):
                continue
            split = parts[-3].removeprefix("20news-bydate-")
            if split not in ("train", "test"):
                continue
            text = archive.extractfile(member).read().decode("latin-1")
            docs[split].append((f"{split}/{parts[-2]}/{parts[-1]}", parts[-2], text))
    if not docs["train"] or not docs["test"]:
        raise DataError(f"{path}: expected folders 20news-bydate-train/ and 20news-bydate-test/")
    for split in docs:
        docs[split].sort()
        repeated = next((a for a, b in zip(docs[split], docs[split][1:]) if a[0] == b[0]), None)
        if repeated:
            raise DataError(f"{path}: the document 20news-bydate-{repeated[0]} is in the archive "
                            "twice; document ids must be unique")
    groups = sorted({g for split in docs.values() for _, g, _ in split})
    paths = {g: group_path(g, groups) for g in groups}
    hierarchy = LabelHierarchy.from_paths([paths[g] for g in groups], tree=True,
                                          source=str(path))

    def make(rows):
        return build_split([r[0] for r in rows], [r[2] for r in rows],
                           [paths[r[1]] for r in rows], hierarchy, strict=True, source=str(path))

    train_rows, dev_rows = split_rows(len(docs["train"]), [1 - dev_fraction, dev_fraction], seed)
    train = make([docs["train"][i] for i in train_rows])
    dev = make([docs["train"][i] for i in dev_rows])
    test = make(docs["test"])
    info = {"format": NAME, "path": str(path),
            "provenance": "20 Newsgroups bydate (Lang 1995; Rennie's split)",
            "licence": "no formal licence; research corpus",
            "split": f"given train/test; dev = {dev_fraction:.0%} of train drawn with seed {seed}",
            "split_seed": seed,
            "hierarchy": "dotted group names, unary chains collapsed"}
    info.update(checksums(path.parent))
    dataset = Dataset("20newsgroups", hierarchy, train, dev, test, info)
    warn_unseen_labels(dataset, str(path))
    return dataset
