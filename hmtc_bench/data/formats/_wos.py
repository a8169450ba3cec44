"""What the two Web of Science formats (``wos_data``, ``wos_xy``) share: the licence, the
split in the proportions of the HTC papers, the Domain -> area tree and integer columns.

WOS comes as one corpus: it is split with a recorded seed in the proportions of the HTC papers
(20 % test, then 20 % of the rest dev: 30,070 / 7,518 / 9,397 for WOS-46985).
"""

from __future__ import annotations

from hmtc_bench.data.dataset import DataError, Dataset, warn_unseen_labels
from hmtc_bench.data.toolkit import Records, draw_test_dev, unique_ids
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

WOS_LICENCE = ("WOS (Kowsari et al. 2017, HDLTex): Mendeley Data doi:10.17632/9rw3vkcfy4; "
               "cite the HDLTex paper")
WOS_TEST_FRACTION = 0.2
WOS_DEV_FRACTION = 0.2  # of the rest, as HiAGM's preprocessing


def split_corpus(name: str, hierarchy: LabelHierarchy, records: Records, strict: bool,
                 seed: int, info: dict) -> Dataset:
    """Test 20 %, then dev 20 % of the rest, each drawn with a recorded seed."""
    unique_ids([records])
    train_rows, dev_rows, test_rows = draw_test_dev(len(records.ids), seed, WOS_TEST_FRACTION,
                                                    WOS_DEV_FRACTION)
    info = dict(info)
    info["split"] = (f"one corpus split with seed {seed}: {WOS_TEST_FRACTION:.0%} test; dev = "
                     f"{WOS_DEV_FRACTION:.0%} of the rest (seed {seed + 1}), the proportions "
                     "of the HTC papers")
    info["split_seed"] = seed
    dataset = Dataset(name, hierarchy, records.split(hierarchy, strict, train_rows),
                      records.split(hierarchy, strict, dev_rows),
                      records.split(hierarchy, strict, test_rows), info)
    warn_unseen_labels(dataset, str(info.get("path", name)), stacklevel=3)
    return dataset


def non_negative_int(value, where: str, column: str) -> int:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: column {column} must be a number, found {value!r}") from None
    if number != int(number) or number < 0:
        raise DataError(f"{where}: column {column} must be a non-negative integer, "
                        f"found {value!r}")
    return int(number)


def domain_area_tree(domains: dict, areas: dict, labels: dict, source) -> LabelHierarchy:
    """Root -> domain -> area, labels named by ``labels`` (domain key or (domain, area))."""
    edges = [("Root", labels[y1]) for y1 in sorted(domains)]
    edges += [(labels[code[0]], labels[code]) for code in sorted(areas)]
    try:
        return LabelHierarchy.from_edges(edges, tree=True, source=str(source))
    except HierarchyError as err:
        raise DataError(str(err)) from None
