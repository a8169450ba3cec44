"""A deterministic, seeded generator of label trees and documents.

The tree has ragged depths; leaf frequencies follow a Zipf law (long tail); a share of
documents follows two paths. A document's words come from the labels on its paths:

* each label has a few words of its own (a weak signal), and
* below level 1 most of its words are *positional*: shared by every label at the same level
  with the same child index (the 2nd child of any parent uses the same words).

So a deep label is identified by its parent's words *and* its positional words together:
a method that uses the hierarchy (top-down, per parent) resolves it easily, a flat linear
model over all labels has to learn a conjunction and is measurably worse on deep levels.
"""

from __future__ import annotations

import numpy as np

from hmtc_bench.data.dataset import Dataset, build_split
from hmtc_bench.hierarchy import LabelHierarchy

DEFAULTS = dict(depth=3, branching=4, stop_prob=0.15, multi_path=0.2, zipf=1.0,
                words_per_label=6, own_words=2, noise_words=20, doc_length=40)


def make_hierarchy(depth: int = 3, branching: int = 4, stop_prob: float = 0.15,
                   seed: int = 0) -> LabelHierarchy:
    """A random tree: ``branching`` top labels, 2..branching children per node, and each
    non-top node a leaf early with probability ``stop_prob`` (ragged depths)."""
    if depth < 1 or branching < 2:
        raise ValueError("depth must be >= 1 and branching >= 2")
    rng = np.random.default_rng(seed)
    edges = []
    frontier = []
    for i in range(branching):
        edges.append(("Root", f"n{i}"))
        frontier.append(f"n{i}")
    for level in range(2, depth + 1):
        nxt = []
        for node in frontier:
            if level > 2 and rng.random() < stop_prob:
                continue
            for j in range(int(rng.integers(2, branching + 1))):
                child = f"{node}.{j}"
                edges.append((node, child))
                nxt.append(child)
        frontier = nxt
    return LabelHierarchy.from_edges(edges, tree=True, source="synthetic")


def _label_words(hierarchy: LabelHierarchy, words_per_label: int, own_words: int) -> dict:
    words = {}
    for label in hierarchy.labels:
        level = hierarchy.level(label)
        own = [f"w{label.replace('.', '_')}x{k}" for k in range(own_words)]
        if level == 1:
            shared = [f"w{label}y{k}" for k in range(words_per_label - own_words)]
        else:
            position = label.rsplit(".", 1)[1]
            shared = [f"p{level}_{position}y{k}" for k in range(words_per_label - own_words)]
        words[label] = own + shared
    return words


def generate(n_train: int = 1200, n_dev: int = 300, n_test: int = 500, seed: int = 0,
             **params) -> Dataset:
    """The ``synthetic`` dataset. Parameters (see ``DEFAULTS``): tree shape (depth, branching,
    stop_prob), multi_path share, zipf exponent of leaf frequencies, words per label,
    label-specific words among them, noise words, document length."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown synthetic parameters {sorted(unknown)}; "
                         f"known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    hierarchy = make_hierarchy(p["depth"], p["branching"], p["stop_prob"], seed)
    rng = np.random.default_rng(seed + 1)
    leaves = list(hierarchy.leaves)
    weights = 1.0 / np.arange(1, len(leaves) + 1) ** p["zipf"]
    weights = weights[rng.permutation(len(leaves))]
    weights /= weights.sum()
    words = _label_words(hierarchy, p["words_per_label"], p["own_words"])
    noise = [f"common{k}" for k in range(500)]
    per_label = max(1, p["doc_length"] // (2 * hierarchy.depth))
    n = n_train + n_dev + n_test
    texts, label_sets = [], []
    for _ in range(n):
        n_paths = 2 if rng.random() < p["multi_path"] else 1
        chosen = rng.choice(len(leaves), size=n_paths, replace=False, p=weights)
        labels = hierarchy.closure(leaves[i] for i in chosen)
        tokens = []
        for label in sorted(labels):
            vocab = words[label]
            tokens.extend(vocab[i] for i in rng.integers(0, len(vocab), per_label))
        tokens.extend(noise[i] for i in rng.integers(0, len(noise), p["noise_words"]))
        rng.shuffle(tokens)
        texts.append(" ".join(tokens))
        label_sets.append(sorted(labels, key=hierarchy.index.get))
    ids = [f"syn{i}" for i in range(n)]
    cuts = [(0, n_train), (n_train, n_train + n_dev), (n_train + n_dev, n)]
    train, dev, test = (build_split(ids[a:b], texts[a:b], label_sets[a:b], hierarchy,
                                    strict=True, source="synthetic") for a, b in cuts)
    info = {"format": "synthetic", "provenance": f"hmtc_bench.data.synthetic, seed {seed}",
            "licence": "generated (no licence needed)", "generator": {**p, "seed": seed},
            "split": f"generated {n_train} / {n_dev} / {n_test}"}
    return Dataset("synthetic", hierarchy, train, dev, test, info)
