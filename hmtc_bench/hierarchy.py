"""The label hierarchy: the only owner of the networkx DiGraph.

A rooted DAG (a tree in the common case) with a synthetic root that is never scored.
Every label matrix in hmtc-bench uses the column order of ``LabelHierarchy.labels``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp

from hmtc_bench.errors import HMTCError

ROOT = "Root"


class HierarchyError(HMTCError, ValueError):
    """A label hierarchy that cannot be built; the message names the file, line and label."""


def _where(source: str | None, line: int | None) -> str:
    if source is None and line is None:
        return ""
    if line is None:
        return f"{source}: "
    return f"{source or '<edges>'}, line {line}: "


def _place(source: str | None, line, relative_to: str | None = None) -> str:
    """Where an edge came from, without the trailing colon: ``line 3`` when it is in the file
    ``relative_to``, else ``file, line 3``; ``file`` alone or ``""`` when its line is unknown."""
    if line is None:
        return "" if source is None or source == relative_to else str(source)
    return f"line {line}" if source == relative_to else f"{source or '<edges>'}, line {line}"


def _lines_of(edges: list[dict], last: dict) -> str:
    """`` (edges on lines 3, 4)``, or ``(edges on a.csv, line 2; b.csv, lines 2, 5)`` when
    they come from several files; empty when no line is known."""
    by_file: dict = {}
    for d in edges:
        if d["line"] is not None and d["line"] not in by_file.setdefault(d["file"], []):
            by_file[d["file"]].append(d["line"])
    by_file = {f: lines for f, lines in by_file.items() if lines}
    if not by_file:
        return ""

    def lines(numbers):
        return ("line " if len(numbers) == 1 else "lines ") + ", ".join(map(str, numbers))
    if list(by_file) == [last["file"]]:
        return f" (edges on {lines(by_file[last['file']])})"
    return " (edges on " + "; ".join(f"{f or '<edges>'}, {lines(n)}"
                                     for f, n in by_file.items()) + ")"


class LabelHierarchy:
    """A rooted label DAG with a fixed label order.

    Parameters
    ----------
    edges : iterable of (parent, child), (parent, child, line) or (parent, child, line, file)
        ``parent`` may be the root name for top-level labels; ``line`` and ``file`` (default:
        ``source``) say where the edge was read, for the messages.
    root : str
        Name of the synthetic root (never a label, never scored).
    tree : bool
        When True, refuse a label with two parents (the message names both edges' lines).
    source : str, optional
        File name used in error messages.

    Labels are ordered by level (1 = top), then by first appearance in ``edges``.
    The level of a label in a DAG is 1 + the length of its longest path from the root,
    so a parent always sits on a higher level than its child. Edges may come in any order (a
    child's edge before its parent's); a cycle is refused naming the lines of its edges.
    """

    def __init__(self, edges: Iterable[Sequence], *, root: str = ROOT, tree: bool = False,
                 source: str | None = None):
        graph = nx.DiGraph()
        graph.add_node(root)
        first_seen: dict[str, int] = {}
        order = 0       # edges added so far (networkx counts them by a walk over every node)
        for edge in edges:
            parent, child = str(edge[0]), str(edge[1])
            line = edge[2] if len(edge) > 2 else None
            file = edge[3] if len(edge) > 3 else source
            where = _where(file, line)
            if not child or not parent:
                raise HierarchyError(f"{where}empty label name")
            if child == root:
                raise HierarchyError(f"{where}the root {root!r} cannot be a child (of {parent!r})")
            if parent == child:
                raise HierarchyError(f"{where}label {child!r} is its own parent (a cycle)")
            if graph.has_edge(parent, child):
                continue
            if tree and graph.has_node(child) and graph.in_degree(child) > 0:
                other = next(iter(graph.predecessors(child)))
                first = graph.edges[other, child]
                at = _place(first["file"], first["line"], file)
                here = _place(file, line, file)
                raise HierarchyError(
                    f"{where}label {child!r} has two parents, {other!r}"
                    + (f" ({at})" if at else "") + f" and {parent!r}"
                    + (f" ({here})" if here else "")
                    + ", but a tree was declared; remove one of the two lines, or declare "
                    "the hierarchy a DAG (dag=True; --dag on the command line)")
            for label in (parent, child):
                if label != root and label not in first_seen:
                    first_seen[label] = len(first_seen)
            graph.add_edge(parent, child, line=line, file=file, order=order)
            order += 1
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            data = [graph.edges[e] for e in cycle]
            last = max(data, key=lambda d: d["order"])  # the edge that closed the cycle
            raise HierarchyError(
                f"{_where(last['file'], last['line'])}the hierarchy has a cycle: "
                + " -> ".join([a for a, _ in cycle] + [cycle[0][0]]) + _lines_of(data, last))
        orphans = [n for n in graph.nodes if n != root and graph.in_degree(n) == 0]
        if orphans:
            first = min((graph.edges[e] for e in graph.out_edges(orphans[0])),
                        key=lambda d: d["order"])
            raise HierarchyError(
                f"{_where(first['file'], first['line'])}labels {orphans[:5]} have no parent "
                f"and are not under the root {root!r} (unknown parent?)")
        if len(first_seen) == 0:
            raise HierarchyError(f"{_where(source, None)}the hierarchy has no labels")
        self.root = root
        self.source = source
        self._graph = graph
        self._tree = all(graph.in_degree(n) <= 1 for n in graph.nodes)
        # level = 1 + longest path from the root (root level 0)
        level = {root: 0}
        for node in nx.topological_sort(graph):
            if node != root:
                level[node] = 1 + max(level[p] for p in graph.predecessors(node))
        self._level = level
        self.labels: tuple[str, ...] = tuple(
            sorted(first_seen, key=lambda lab: (level[lab], first_seen[lab])))
        self.index: dict[str, int] = {lab: i for i, lab in enumerate(self.labels)}

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_edges(cls, edges: Iterable[Sequence], *, root: str = ROOT, tree: bool = False,
                   source: str | None = None) -> "LabelHierarchy":
        return cls(edges, root=root, tree=tree, source=source)

    @classmethod
    def from_taxonomy(cls, path: str | Path, *, tree: bool = True) -> "LabelHierarchy":
        """Read the HiAGM taxonomy format: ``parent<TAB>child<TAB>child...``, first line ``Root``.

        The lines after the first may come in any order (a parent's line after its child's).
        A tree by default: a label given a second parent is refused naming both lines, unless
        ``tree=False`` (a DAG). A UTF-8 byte-order mark at the start of the file is dropped.
        """
        path = Path(path)
        edges = []
        children: set[str] = set()
        parent_line: dict[str, int] = {}
        root = None
        with open(path, encoding="utf-8-sig", errors="strict") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = [f.strip() for f in line.split("\t")]
                if root is None:
                    if fields[0] != ROOT:
                        raise HierarchyError(
                            f"{path}, line {number}: the first line must start with {ROOT!r}, "
                            f"found {fields[0]!r} (is this a HiAGM taxonomy file?)")
                    root = fields[0]
                parent = fields[0]
                parent_line.setdefault(parent, number)
                for child in (c for c in fields[1:] if c):
                    edges.append((parent, child, number))
                    children.add(child)
        if root is None:
            raise HierarchyError(f"{path}: empty taxonomy file")
        for parent, number in parent_line.items():
            if parent != ROOT and parent not in children:
                raise HierarchyError(
                    f"{path}, line {number}: unknown parent {parent!r} (it is never a child "
                    f"on any line, nor is it the root {ROOT!r})")
        return cls(edges, root=ROOT, tree=tree, source=str(path))

    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str]], *, root: str = ROOT,
                   tree: bool = False, source: str | None = None) -> "LabelHierarchy":
        """Build from label paths, e.g. ``[("Science", "Science/Physics"), ...]``.

        Each path lists labels from the top level down; consecutive labels become edges.
        """
        edges = []
        for number, path in enumerate(paths, start=1):
            previous = root
            for label in path:
                edges.append((previous, label, number))
                previous = label
        return cls(edges, root=root, tree=tree, source=source)

    def to_edges(self) -> list[tuple[str, str]]:
        """All edges (parent, child) in label order; top-level labels have the root as parent."""
        return [(p, lab) for lab in self.labels for p in self.parents(lab)]

    # ------------------------------------------------------------------ structure
    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.index

    def __repr__(self) -> str:
        kind = "tree" if self.is_tree else "DAG"
        return f"LabelHierarchy({len(self)} labels, depth {self.depth}, {kind})"

    @property
    def is_tree(self) -> bool:
        return self._tree

    def _check(self, label: str) -> None:
        if label not in self.index:
            raise KeyError(f"unknown label {label!r}")

    def parents(self, label: str) -> list[str]:
        """Direct parents; the root for a top-level label."""
        self._check(label)
        return sorted(self._graph.predecessors(label), key=self._order)

    def children(self, label: str) -> list[str]:
        """Direct children; ``children(hierarchy.root)`` gives the top level."""
        if label != self.root:
            self._check(label)
        return sorted(self._graph.successors(label), key=self._order)

    def ancestors(self, label: str) -> set[str]:
        """All ancestors without the root and without the label itself."""
        self._check(label)
        return nx.ancestors(self._graph, label) - {self.root}

    def descendants(self, label: str) -> set[str]:
        self._check(label)
        return nx.descendants(self._graph, label)

    def level(self, label: str) -> int:
        self._check(label)
        return self._level[label]

    @cached_property
    def depth(self) -> int:
        return max(self._level[lab] for lab in self.labels)

    @cached_property
    def leaves(self) -> tuple[str, ...]:
        return tuple(lab for lab in self.labels if self._graph.out_degree(lab) == 0)

    def labels_at_level(self, level: int) -> list[str]:
        return [lab for lab in self.labels if self._level[lab] == level]

    @cached_property
    def levels(self) -> np.ndarray:
        """Level of each column, shape (L,)."""
        return np.array([self._level[lab] for lab in self.labels], dtype=np.int64)

    def level_columns(self, level: int) -> np.ndarray:
        return np.flatnonzero(self.levels == level)

    def _order(self, label: str) -> int:
        return self.index.get(label, -1)

    # ------------------------------------------------------------------ label sets
    def closure(self, labels: Iterable[str]) -> set[str]:
        """The label set closed under ancestors."""
        out: set[str] = set()
        for label in labels:
            out.add(label)
            out |= self.ancestors(label)
        return out

    def is_consistent(self, labels: Iterable[str]) -> bool:
        """True when every label's parents (other than the root) are in the set."""
        labels = set(labels)
        return all(p == self.root or p in labels for lab in labels for p in self.parents(lab))

    def encode(self, label_sets: Sequence[Iterable[str]]) -> sp.csr_matrix:
        """Indicator matrix (n, L) in label order; raises KeyError naming an unknown label."""
        rows, cols = [], []
        for i, labels in enumerate(label_sets):
            for label in labels:
                if label not in self.index:
                    raise KeyError(f"unknown label {label!r} (document {i})")
                rows.append(i)
                cols.append(self.index[label])
        data = np.ones(len(rows), dtype=np.int8)
        Y = sp.csr_matrix((data, (rows, cols)), shape=(len(label_sets), len(self)), dtype=np.int8)
        Y.sum_duplicates()
        Y.data[:] = 1
        return Y

    def decode(self, Y) -> list[list[str]]:
        """Label lists (in label order) from an indicator matrix."""
        Y = sp.csr_matrix(Y)
        return [[self.labels[j] for j in sorted(Y.indices[Y.indptr[i]:Y.indptr[i + 1]])]
                for i in range(Y.shape[0])]

    # ------------------------------------------------------------------ matrices
    @cached_property
    def parent_matrix(self) -> sp.csr_matrix:
        """(L, L) with [p, c] = 1 when p is a parent of c (the root left out)."""
        rows, cols = [], []
        for c, lab in enumerate(self.labels):
            for p in self._graph.predecessors(lab):
                if p != self.root:
                    rows.append(self.index[p])
                    cols.append(c)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)),
                             shape=(len(self), len(self)))

    @cached_property
    def n_parents(self) -> np.ndarray:
        """Number of non-root parents of each label, shape (L,)."""
        return np.asarray(self.parent_matrix.sum(axis=0)).ravel().astype(np.int64)

    @cached_property
    def ancestor_matrix(self) -> sp.csr_matrix:
        """(L, L) with [c, a] = 1 when a is c or an ancestor of c; ``Y @ A > 0`` closes Y."""
        rows, cols = [], []
        for c, lab in enumerate(self.labels):
            for a in self.ancestors(lab) | {lab}:
                rows.append(self.index[a])
                cols.append(c)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)),
                             shape=(len(self), len(self))).T.tocsr()

    def close_matrix(self, Y) -> sp.csr_matrix:
        """Close every row of an indicator matrix under ancestors."""
        Y = sp.csr_matrix(Y, dtype=np.int32)
        closed = (Y @ self.ancestor_matrix).tocsr()
        closed.data[:] = 1
        closed.eliminate_zeros()
        return closed.astype(np.int8)

    # ------------------------------------------------------------------ identity
    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (first 16 hex) of the label order and the edges: same hierarchy, same hash."""
        digest = hashlib.sha256()
        for label in self.labels:
            digest.update(label.encode())
            digest.update(b"\x00")
            for parent in self.parents(label):
                digest.update(parent.encode())
                digest.update(b"\x01")
            digest.update(b"\x02")
        return digest.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelHierarchy) and self.content_hash == other.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)
