import numpy as np
import pytest

from conftest import write
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

TAXONOMY = "Root\tA\tB\nA\tA1\tA2\nA1\tA1x\nB\tB1\n"


@pytest.fixture
def tree(tmp_path):
    return LabelHierarchy.from_taxonomy(write(tmp_path / "t.taxonomy", TAXONOMY))


def test_taxonomy_structure(tree):
    assert tree.labels == ("A", "B", "A1", "A2", "B1", "A1x")
    assert [tree.level(x) for x in tree.labels] == [1, 1, 2, 2, 2, 3]
    assert tree.depth == 3
    assert set(tree.leaves) == {"A2", "B1", "A1x"}
    assert tree.parents("A1x") == ["A1"]
    assert tree.parents("A") == ["Root"]
    assert tree.children("A") == ["A1", "A2"]
    assert tree.children(tree.root) == ["A", "B"]
    assert tree.ancestors("A1x") == {"A", "A1"}
    assert tree.descendants("A") == {"A1", "A2", "A1x"}
    assert tree.is_tree
    assert list(tree.level_columns(2)) == [2, 3, 4]


def test_closure_consistency_and_matrices(tree):
    assert tree.closure(["A1x", "B1"]) == {"A", "A1", "A1x", "B", "B1"}
    assert tree.is_consistent(["A", "A1", "A1x"])
    assert not tree.is_consistent(["A", "A1x"])
    Y = tree.encode([["A1x"], ["B1", "A2"]])
    closed = tree.close_matrix(Y)
    assert tree.decode(closed) == [["A", "A1", "A1x"], ["A", "B", "A2", "B1"]]


def test_builders_agree_and_hash(tree):
    from_edges = LabelHierarchy.from_edges(
        [("Root", "A"), ("Root", "B"), ("A", "A1"), ("A", "A2"), ("A1", "A1x"), ("B", "B1")])
    from_paths = LabelHierarchy.from_paths([["A", "A1", "A1x"], ["A", "A2"], ["B", "B1"]])
    assert from_edges.content_hash == tree.content_hash == from_paths.content_hash
    other = LabelHierarchy.from_edges([("Root", "A"), ("A", "B")])
    assert other.content_hash != tree.content_hash


def test_dag_levels_and_parents():
    dag = LabelHierarchy.from_edges([("Root", "A"), ("Root", "B"), ("A", "C"), ("B", "C"),
                                     ("Root", "D"), ("D", "E"), ("E", "C")])
    assert not dag.is_tree
    assert dag.parents("C") == ["A", "B", "E"]
    assert dag.level("C") == 3  # longest path from the root
    assert dag.n_parents[dag.index["C"]] == 3
    assert dag.closure(["C"]) == {"A", "B", "C", "D", "E"}


@pytest.mark.parametrize("text, message", [
    ("Root\tA\nA\tB\nB\tA\n", "line 3: label .A. has two parents"),
    ("Root\tA\nX\tB\n", "line 2: unknown parent 'X'"),
    ("Root\tA\tB\nA\tC\nB\tC\n", "line 3: label 'C' has two parents"),
    ("Top\tA\n", "line 1: the first line must start with 'Root'"),
    ("Root\tA\nA\tA\n", "line 2: label 'A' is its own parent"),
    ("", "empty taxonomy"),
])
def test_taxonomy_errors_name_the_line(tmp_path, text, message):
    path = write(tmp_path / "bad.taxonomy", text)
    with pytest.raises(HierarchyError, match=message) as err:
        LabelHierarchy.from_taxonomy(path)
    assert str(path) in str(err.value)


def test_cycle_names_line(tmp_path):
    path = write(tmp_path / "c.taxonomy", "Root\tA\nA\tB\nB\tC\nC\tB\n")
    with pytest.raises(HierarchyError, match=r"line 4: the hierarchy has a cycle"):
        LabelHierarchy.from_taxonomy(path, tree=False)


def test_unknown_label_and_orphans():
    tree = LabelHierarchy.from_edges([("Root", "A")])
    with pytest.raises(KeyError, match="unknown label 'Z'"):
        tree.ancestors("Z")
    with pytest.raises(HierarchyError, match="no parent"):
        LabelHierarchy.from_edges([("Root", "A"), ("X", "Y")])


def test_ancestor_matrix_matches_closure(synthetic):
    h = synthetic.hierarchy
    A = h.ancestor_matrix.toarray()
    for lab in h.labels[::5]:
        expected = {h.index[a] for a in h.closure([lab])}
        assert set(np.flatnonzero(A[h.index[lab]])) == expected
