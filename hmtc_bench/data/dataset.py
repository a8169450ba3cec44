"""The dataset contract: splits of ids, texts and label matrices in the hierarchy's order."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from hmtc_bench.errors import HMTCError
from hmtc_bench.hierarchy import LabelHierarchy

SPLITS = ("train", "dev", "test")


class DataError(HMTCError, ValueError):
    """Input data that cannot be read; the message names the file, line or label."""


class RepairWarning(UserWarning):
    """Label sets were not closed under ancestors and have been repaired."""


class UnseenLabelWarning(UserWarning):
    """Labels occur in dev or test but never in train: no method can learn them, and they
    count as 0 in macro-F1 over all labels."""


class DuplicateIdWarning(UserWarning):
    """A corpus known to ship repeated document ids had them made unique."""


@dataclass
class Split:
    """One split: ``ids[i]``, ``texts[i]`` and row i of ``Y`` (n, L) describe document i."""

    ids: list[str]
    texts: list[str]
    Y: sp.csr_matrix

    def __post_init__(self):
        if not (len(self.ids) == len(self.texts) == self.Y.shape[0]):
            raise ValueError(f"split sizes differ: {len(self.ids)} ids, {len(self.texts)} texts, "
                             f"{self.Y.shape[0]} label rows")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> "Split":
        rows = np.asarray(rows, dtype=np.int64)
        return Split([self.ids[i] for i in rows], [self.texts[i] for i in rows], self.Y[rows])


def build_split(ids: Sequence[str], texts: Sequence[str], label_sets: Sequence[Iterable[str]],
                hierarchy: LabelHierarchy, *, strict: bool = False,
                source: str = "<data>", lines: Sequence[int] | None = None) -> Split:
    """Encode label sets and close them under ancestors.

    Unknown labels are an error naming the document's line. Label sets that are not closed
    are repaired with one ``RepairWarning`` counting the repairs, or refused when ``strict``.
    """
    rows, cols = [], []
    for i, labels in enumerate(label_sets):
        labels = list(labels)
        if not labels:
            where = f"line {lines[i]}" if lines is not None else f"document {ids[i]!r}"
            raise DataError(f"{source}, {where}: document has no labels")
        for label in labels:
            column = hierarchy.index.get(label)
            if column is None:
                where = f"line {lines[i]}" if lines is not None else f"document {ids[i]!r}"
                raise DataError(f"{source}, {where}: label {label!r} is not in the hierarchy")
            rows.append(i)
            cols.append(column)
    Y = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)),
                      shape=(len(ids), len(hierarchy)))
    Y.sum_duplicates()
    Y.data[:] = 1
    closed = hierarchy.close_matrix(Y)
    added = int(closed.nnz - Y.nnz)
    if added:
        bad_rows = np.flatnonzero(np.asarray((closed != Y).sum(axis=1)).ravel())
        first = bad_rows[0]
        where = f"line {lines[first]}" if lines is not None else f"document {ids[first]!r}"
        if strict:
            raise DataError(f"{source}, {where}: label set is not closed under ancestors "
                            f"({len(bad_rows)} documents); drop strict to repair")
        warnings.warn(f"{source}: added {added} missing ancestor labels to {len(bad_rows)} "
                      f"documents (first: {where})", RepairWarning, stacklevel=2)
    return Split(list(ids), list(texts), closed)


@dataclass
class Dataset:
    """A hierarchy and its train / dev / test splits, with provenance.

    ``info`` holds provenance, licence, and how the splits were made (seeds, fractions).
    """

    name: str
    hierarchy: LabelHierarchy
    train: Split
    dev: Split
    test: Split
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        for split_name in SPLITS:
            split = getattr(self, split_name)
            if len(split) == 0:
                raise DataError(f"dataset {self.name!r}: the {split_name} split is empty")
            if split.Y.shape[1] != len(self.hierarchy):
                raise DataError(f"dataset {self.name!r}: the {split_name} matrix has "
                                f"{split.Y.shape[1]} columns for {len(self.hierarchy)} labels")

    def splits(self) -> dict[str, Split]:
        return {name: getattr(self, name) for name in SPLITS}

    def unseen_labels(self) -> list[str]:
        """Labels (in label order) with documents in dev or test but none in train."""
        in_train = np.asarray(self.train.Y.sum(axis=0)).ravel() > 0
        elsewhere = (np.asarray(self.dev.Y.sum(axis=0)).ravel()
                     + np.asarray(self.test.Y.sum(axis=0)).ravel()) > 0
        return [self.hierarchy.labels[j] for j in np.flatnonzero(elsewhere & ~in_train)]

    @property
    def content_hash(self) -> str:
        """SHA-256 (first 16 hex) over the hierarchy, ids, texts and labels of every split."""
        digest = hashlib.sha256(self.hierarchy.content_hash.encode())
        for name, split in self.splits().items():
            digest.update(name.encode())
            for doc_id, text in zip(split.ids, split.texts):
                digest.update(doc_id.encode("utf-8", "replace") + b"\x00")
                digest.update(text.encode("utf-8", "replace") + b"\x01")
            Y = sp.csr_matrix(split.Y)
            digest.update(Y.indptr.astype(np.int64).tobytes())
            digest.update(Y.indices.astype(np.int64).tobytes())
        return digest.hexdigest()[:16]

    @property
    def corpus_hash(self) -> str:
        """SHA-256 (first 16 hex) over the hierarchy and every document (id, text, labels),
        whatever split it is in: the same for every split seed of one corpus."""
        digest = hashlib.sha256(b"corpus:" + self.hierarchy.content_hash.encode())
        rows = []
        for split in self.splits().values():
            Y = sp.csr_matrix(split.Y)
            for i, (doc_id, text) in enumerate(zip(split.ids, split.texts)):
                rows.append((doc_id, text, Y.indices[Y.indptr[i]:Y.indptr[i + 1]]))
        for doc_id, text, labels in sorted(rows, key=lambda r: (r[0], r[1])):
            digest.update(doc_id.encode("utf-8", "replace") + b"\x00")
            digest.update(text.encode("utf-8", "replace") + b"\x01")
            digest.update(np.sort(labels).astype(np.int64).tobytes() + b"\x02")
        return digest.hexdigest()[:16]

    @property
    def split_seed(self) -> int | None:
        """The seed its split was drawn with, or None for a fixed (official) split or one
        that cannot be drawn again (``info["split_resampleable"]`` false)."""
        if not self.info.get("split_resampleable", True):
            return None
        seed = self.info.get("split_seed")
        return None if seed is None else int(seed)

    def card(self) -> dict:
        """Statistics and provenance: counts per level, labels per document, multi-path share."""
        h = self.hierarchy
        Y = sp.vstack([self.train.Y, self.dev.Y, self.test.Y]).tocsr()
        per_doc = np.asarray(Y.sum(axis=1)).ravel()
        leaf_like = _deepest_labels(Y, h)
        levels = {int(k): len(h.labels_at_level(k)) for k in range(1, h.depth + 1)}
        used = np.asarray(Y.sum(axis=0)).ravel()
        return {
            "name": self.name,
            "documents": {name: len(split) for name, split in self.splits().items()},
            "labels": len(h),
            "labels_per_level": levels,
            "labels_used_per_level": {
                k: int((used[h.level_columns(k)] > 0).sum()) for k in levels},
            "labels_unseen_in_train": len(self.unseen_labels()),
            "depth": h.depth,
            "structure": "tree" if h.is_tree else "DAG",
            "labels_per_document": round(float(per_doc.mean()), 3),
            "multi_path_share": round(float((leaf_like > 1).mean()), 4),
            "mean_words_per_document": round(float(np.mean(
                [len(t.split()) for s in self.splits().values() for t in s.texts])), 1),
            "hierarchy_hash": h.content_hash,
            "dataset_hash": self.content_hash,
            **self.info,
        }


def warn_unseen_labels(dataset: Dataset, source: str, stacklevel: int = 3) -> None:
    """One ``UnseenLabelWarning`` counting the labels of dev or test that train never has
    (with the first few names); nothing when there are none."""
    unseen = dataset.unseen_labels()
    if unseen:
        shown = ", ".join(repr(lab) for lab in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        many = len(unseen) > 1
        warnings.warn(f"{source}: {len(unseen)} label{'s' if many else ''} "
                      f"occur{'' if many else 's'} in dev or test but never in train ({shown}); "
                      f"no method can learn {'them' if many else 'it'} (recorded in the card as "
                      "labels_unseen_in_train)", UnseenLabelWarning, stacklevel=stacklevel)


def _deepest_labels(Y: sp.csr_matrix, hierarchy: LabelHierarchy) -> np.ndarray:
    """Per document, the number of its labels none of whose children are also in the set:
    the number of paths it follows. More than one means multi-path."""
    Y = sp.csr_matrix(Y, dtype=np.int32)
    has_child = (Y @ hierarchy.parent_matrix.T.tocsr()).tocsr()
    has_child.data[:] = 1
    own_tips = Y - Y.multiply(has_child)
    return np.asarray(own_tips.sum(axis=1)).ravel()


def split_rows(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it by ``fractions`` (which sum to 1)."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(part) for part in np.split(order, cuts)]
