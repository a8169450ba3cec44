"""Datasets: the contract, the readers, the embedded default and the synthetic generator.

``load_dataset(name_or_path)`` takes a registered name (entry-point group
``hmtc_bench.datasets``: ``icd10cm``, ``synthetic``, and third-party ones) or a folder whose
format is recognised from its files.

Modules: ``dataset`` (the contract: ``Dataset``, ``Split``, ``build_split``, ``DataError``),
``toolkit`` (what the readers share), ``formats`` (one module per on-disk format, listed in
``formats.FORMATS``), ``icd10cm`` and ``synthetic`` (registered datasets), ``download``.
"""

from __future__ import annotations

from pathlib import Path

from hmtc_bench.errors import ParameterError

from hmtc_bench.data.dataset import (DataError, Dataset, DuplicateIdWarning, RepairWarning, Split,
                                     UnseenLabelWarning, build_split)
from hmtc_bench.data.toolkit import DEFAULT_SEED, DecodeWarning
from hmtc_bench.plugins import list_plugins, unknown

GROUP = "hmtc_bench.datasets"
DEFAULT_DATASET = "icd10cm"


def list_datasets() -> dict:
    return list_plugins(GROUP)


def load_dataset(name_or_path: str = DEFAULT_DATASET, *, strict: bool = False,
                 seed: int | None = None, dag: bool = False) -> Dataset:
    """A registered dataset by name, or a dataset folder by path.

    ``strict`` refuses what is otherwise repaired with a warning (label sets not closed under
    ancestors, invalid UTF-8). ``seed`` is the split seed of a folder whose dev (or dev and
    test) split is drawn (default 0); registered loaders use their own recorded defaults.
    ``dag`` declares the hierarchy a DAG: the formats that are trees by definition (HiAGM
    ``*.taxonomy``, RCV1-V2 ``rcv1.topics.hier.orig``) otherwise refuse a label with a second
    parent, naming both lines; other formats and registered datasets ignore it.
    """
    registered = list_datasets()
    if name_or_path in registered:
        data = registered[name_or_path].load()()
        # a registered loader's seed may draw the documents too (ICD-10-CM samples its
        # codes): its split is the dataset's own, never resampled
        data.info["split_resampleable"] = False
        if seed is not None:
            raise ParameterError(f"dataset {name_or_path}: its split is fixed "
                                 f"({data.info.get('split', '?')}); a split seed applies to "
                                 "dataset folders whose split is drawn")
        return data
    path = Path(name_or_path)
    if path.exists():
        from hmtc_bench.data.formats import read_folder
        return read_folder(path, strict=strict, seed=DEFAULT_SEED if seed is None else seed,
                           dag=dag)
    if "/" in name_or_path or name_or_path.startswith("."):
        raise DataError(f"{name_or_path}: no such file or folder")
    raise unknown("dataset", name_or_path, registered)


__all__ = ["DataError", "Dataset", "DecodeWarning", "DuplicateIdWarning", "RepairWarning",
           "Split", "UnseenLabelWarning", "build_split", "list_datasets", "load_dataset",
           "DEFAULT_DATASET"]
