"""The data side of "nothing lost, nothing pooled": each reported fault, its message (file,
line and label named) and that nothing partial comes out (no dataset, no file written).

1. a second parent in a tree format (HiAGM taxonomy, RCV1-V2 topic hierarchy), unless
   ``dag=True``; 2. taxonomy lines in any order; 3. a UTF-8 byte-order mark in every format;
4. repeated document ids; 5. labels of dev / test never in train; 6. a cycle in label paths;
7. download checksums recorded at first download and verified later.
"""

import hashlib
import json
import warnings

import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.data import (DataError, DuplicateIdWarning, RepairWarning, UnseenLabelWarning,
                             load_dataset)
from hmtc_bench.hierarchy import HierarchyError, LabelHierarchy

TAXONOMY = "Root\tA\tB\nA\tA1\tA2\nB\tB1\n"


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _hiagm(folder, taxonomy=TAXONOMY, rows=None, bom=False):
    rows = rows or [{"token": f"word {i}", "label": [["A", "A1"], ["B", "B1"], ["A", "A2"]][i % 3]}
                    for i in range(30)]
    mark = "\ufeff" if bom else ""
    write(folder / "toy.taxonomy", mark + taxonomy)
    write(folder / "all.json", mark + _jsonl(rows))
    return folder


def _listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size)
                  for p in folder.rglob("*"))


def _refused(folder, error, pattern, **kw):
    """The load fails with ``pattern`` and leaves the folder exactly as it was."""
    before = _listing(folder)
    with pytest.raises(error, match=pattern) as info:
        load_dataset(str(folder), **kw)
    assert _listing(folder) == before
    return str(info.value)


# ---------------------------------------------------------------------- 1. a second parent
def test_hiagm_second_parent_is_refused_naming_both_lines(tmp_path):
    folder = _hiagm(tmp_path / "t", TAXONOMY + "B\tA1\n")  # a stray line: A1 under B too
    message = _refused(folder, HierarchyError,
                       r"toy.taxonomy, line 4: label 'A1' has two parents, 'A' \(line 2\) "
                       r"and 'B' \(line 4\), but a tree was declared")
    assert "dag=True" in message and "--dag" in message
    assert "\n" not in message
    with pytest.warns(RepairWarning, match="missing ancestor labels"):
        data = load_dataset(str(folder), dag=True)  # the user says so: A1's documents get B
    assert not data.hierarchy.is_tree and data.hierarchy.parents("A1") == ["A", "B"]
    assert data.card()["structure"] == "DAG"


def test_hiagm_second_parent_on_the_command_line(tmp_path):
    folder = _hiagm(tmp_path / "t", TAXONOMY + "B\tA1\n")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "info", str(folder)])
    assert result.exit_code == 1
    assert "toy.taxonomy, line 4: label 'A1' has two parents" in result.output
    assert "Traceback" not in result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        result = runner.invoke(app, ["data", "info", str(folder), "--dag", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["structure"] == "DAG"


HIER = """parent: None     child: Root       child-description: Root
parent: Root     child: CCAT       child-description: CORPORATE/INDUSTRIAL
parent: Root     child: ECAT       child-description: ECONOMICS
parent: CCAT     child: C15        child-description: PERFORMANCE
parent: ECAT     child: C15        child-description: PERFORMANCE
"""


def _lyrl(folder):
    write(folder / "rcv1.topics.hier.orig", HIER)
    docs = {"train": range(100, 120), "test_pt0": range(200, 210)}
    for part, ids in docs.items():
        write(folder / f"lyrl2004_tokens_{part}.dat",
              "".join(f".I {i}\n.W\nword{i} shares\n\n" for i in ids))
    write(folder / "rcv1-v2.topics.qrels",
          "".join(f"CCAT {i} 1\nC15 {i} 1\n" for ids in docs.values() for i in ids))
    return folder


def test_rcv1_topic_hierarchy_second_parent_is_refused(tmp_path):
    folder = _lyrl(tmp_path / "lyrl")
    _refused(folder, DataError, r"rcv1.topics.hier.orig, line 5: label 'C15' has two parents, "
                                r"'CCAT' \(line 4\) and 'ECAT' \(line 5\)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the partial test split
        data = load_dataset(str(folder), dag=True)
    assert data.hierarchy.parents("C15") == ["CCAT", "ECAT"]


def test_dag_formats_keep_reading_dags(tmp_path):
    """Paths (and BGC, relaclass) accept a second parent as they always did; ``dag`` is a
    no-op for them."""
    rows = [{"id": f"d{i}", "text": f"text {i}", "labels": [["A/C"], ["B/C"]][i % 2]}
            for i in range(20)]
    write(tmp_path / "p" / "data.jsonl", _jsonl(rows))
    for dag in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RepairWarning)  # C's documents get both parents
            data = load_dataset(str(tmp_path / "p"), dag=dag)
        assert data.hierarchy.parents("C") == ["A", "B"]


# ---------------------------------------------------------------------- 2. any line order
def test_taxonomy_lines_in_any_order(tmp_path):
    ordered = LabelHierarchy.from_taxonomy(write(tmp_path / "a.taxonomy", TAXONOMY))
    shuffled = LabelHierarchy.from_taxonomy(
        write(tmp_path / "b.taxonomy", "Root\tA\tB\nB\tB1\nA1\tA1x\nA\tA1\tA2\n"))
    assert shuffled.level("A1x") == 3 and shuffled.parents("A1x") == ["A1"]
    assert set(shuffled.labels) == set(ordered.labels) | {"A1x"}
    same = LabelHierarchy.from_taxonomy(write(tmp_path / "c.taxonomy",
                                              "Root\tA\tB\nB\tB1\nA\tA1\tA2\n"))
    assert set(same.to_edges()) == set(ordered.to_edges())  # same tree (label order by line)
    data = load_dataset(str(_hiagm(tmp_path / "t", "Root\tA\tB\nA1\tA1x\nB\tB1\nA\tA1\tA2\n")))
    assert data.hierarchy.depth == 3


def test_taxonomy_cycle_names_its_lines(tmp_path):
    folder = _hiagm(tmp_path / "t", "Root\tA\tB\nA1\tA2\nA2\tA1\nA\tA3\nB\tB1\n")
    _refused(folder, HierarchyError, r"toy.taxonomy, line 3: the hierarchy has a cycle: "
                                     r"A\d -> A\d -> A\d \(edges on lines [23], [23]\)")
    path = write(tmp_path / "x.taxonomy", "Root\tA\nA\tB\nX\tY\n")
    with pytest.raises(HierarchyError, match=r"x.taxonomy, line 3: unknown parent 'X'"):
        LabelHierarchy.from_taxonomy(path)


# ---------------------------------------------------------------------- 3. byte-order mark
def test_bom_is_dropped_in_every_format(tmp_path):
    plain = load_dataset(str(_hiagm(tmp_path / "plain")))
    marked = load_dataset(str(_hiagm(tmp_path / "bom", bom=True)))
    assert marked.content_hash == plain.content_hash
    rows = [{"id": f"d{i}", "text": f"text {i}", "labels": ["Sci/Physics"]} for i in range(20)]
    write(tmp_path / "j" / "data.jsonl", "\ufeff" + _jsonl(rows))
    assert load_dataset(str(tmp_path / "j")).train.ids[0].startswith("d")
    csv = "id,text,labels\n" + "".join(f"doc{i},text {i},Sci/Physics\n" for i in range(20))
    write(tmp_path / "c" / "data.csv", "\ufeff" + csv)
    data = load_dataset(str(tmp_path / "c"))
    ids = {i for s in data.splits().values() for i in s.ids}
    assert ids == {f"doc{i}" for i in range(20)}  # the id column is kept, not eaten
    write(tmp_path / "r" / "labels.txt", "\ufeff0\tScience\n1\tPhysics\n")
    write(tmp_path / "r" / "label_hierarchy.txt", "\ufeff0\t1\n")
    write(tmp_path / "r" / "docs.json", "\ufeff" + _jsonl(
        [{"id": str(i), "token": f"t {i}", "labels": [0, 1]} for i in range(20)]))
    assert load_dataset(str(tmp_path / "r")).hierarchy.labels == ("Science", "Physics")


def test_bom_inside_a_file_is_still_an_error(tmp_path):
    rows = _jsonl([{"id": f"d{i}", "text": "t", "labels": ["A"]} for i in range(3)])
    write(tmp_path / "j" / "data.jsonl", rows + "\ufeff" + rows)
    _refused(tmp_path / "j", DataError, r"data.jsonl, line 4: malformed JSON")


# ---------------------------------------------------------------------- 4. repeated ids
def test_repeated_id_in_one_file_names_both_lines(tmp_path):
    rows = [{"id": f"d{i}", "token": "w", "label": ["A"]} for i in range(10)]
    rows[7]["id"] = "d2"
    folder = _hiagm(tmp_path / "t", rows=rows)
    _refused(folder, DataError, r"all.json, line 8: document id 'd2' is given twice "
                                r"\(first at .*all.json, line 3\)")


def test_repeated_id_across_splits_is_refused(tmp_path):
    rows = [{"id": f"d{i}", "text": "t", "labels": ["A/B"]} for i in range(10)]
    write(tmp_path / "p" / "train.jsonl", _jsonl(rows))
    write(tmp_path / "p" / "test.jsonl", _jsonl(rows[4:5]))
    _refused(tmp_path / "p", DataError, r"test.jsonl, line 1: document id 'd4' is given twice "
                                        r"\(first at .*train.jsonl, line 5\)")


def test_repeated_ids_renamed_with_one_counting_warning(tmp_path):
    from hmtc_bench.data.toolkit import Records, unique_ids
    records = Records("f.jsonl")
    for line, doc_id in enumerate(["a", "b", "a", "a", "a#2"], start=1):
        records.add(line, doc_id, "text", ["A"])
    with pytest.warns(DuplicateIdWarning, match=r"3 documents repeat an earlier document id .*"
                                                r"\(first: 'a' at f.jsonl, line 3, first at "
                                                r"f.jsonl, line 1\)"):
        assert unique_ids([records], rename=True) == 3
    assert records.ids == ["a", "b", "a#2", "a#3", "a#2#2"]
    assert len(set(records.ids)) == 5


def test_shared_corpora_ship_no_repeated_ids():
    from conftest import SHARED
    if not SHARED.is_dir():
        pytest.skip("no shared corpora")
    for folder in sorted(p for p in SHARED.iterdir() if p.is_dir()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenLabelWarning)
            data = load_dataset(str(folder))  # refused if an id repeated
        ids = [i for s in data.splits().values() for i in s.ids]
        assert len(ids) == len(set(ids)), folder


# ---------------------------------------------------------------------- 5. unseen labels
def test_labels_never_in_train_are_counted_in_one_warning_and_the_card(tmp_path):
    rows = [{"id": f"tr{i}", "text": f"t {i}", "labels": ["A/B"]} for i in range(10)]
    tests = [{"id": f"te{i}", "text": f"t {i}", "labels": [f"A/N{i}", "Z/Q"]} for i in range(7)]
    write(tmp_path / "p" / "train.jsonl", _jsonl(rows))
    write(tmp_path / "p" / "test.jsonl", _jsonl(tests))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        data = load_dataset(str(tmp_path / "p"))
    unseen = [w for w in seen if issubclass(w.category, UnseenLabelWarning)]
    assert len(unseen) == 1
    text = str(unseen[0].message)
    assert "9 labels occur in dev or test but never in train" in text
    assert "'Z'" in text and "..." in text  # a few names, not all nine
    assert data.card()["labels_unseen_in_train"] == 9
    assert data.unseen_labels()[:2] == ["Z", "N0"]


def test_no_warning_when_train_has_every_label(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(str(_hiagm(tmp_path / "t")))
    assert data.card()["labels_unseen_in_train"] == 0


# ---------------------------------------------------------------------- 6. cycles in paths
def test_cycle_in_jsonl_paths_names_file_and_line(tmp_path):
    rows = [{"id": f"d{i}", "text": "t", "labels": ["A/B"]} for i in range(5)]
    rows.append({"id": "x", "text": "t", "labels": ["B/A"]})
    write(tmp_path / "p" / "data.jsonl", _jsonl(rows))
    message = _refused(tmp_path / "p", DataError,
                       r"data.jsonl, line 6: the hierarchy has a cycle: [AB] -> [AB] -> [AB] "
                       r"\(edges on lines [16], [16]\)")
    assert "<edges>" not in message


def test_cycle_across_csv_files_names_both_files(tmp_path):
    write(tmp_path / "c" / "train.csv", "id,text,labels\n" + "".join(
        f"d{i},t,Sci/Physics/Quantum\n" for i in range(5)))
    write(tmp_path / "c" / "test.csv", "id,text,labels\nq,t,Quantum/Sci\n")
    message = _refused(tmp_path / "c", DataError, r"train.csv, line 2: the hierarchy has a cycle")
    assert "test.csv, line 2; " in message and "train.csv, line 2)" in message
    assert "<edges>" not in message


# ---------------------------------------------------------------------- 7. download checksums
@pytest.fixture
def server():
    from test_download import Server
    srv = Server()
    yield srv
    srv.close()


def test_download_without_published_checksum_is_recorded_then_verified(server, tmp_path):
    from hmtc_bench.data.download import (ChecksumWarning, DownloadError, RemoteFile, Source,
                                          download, read_sums)
    data = b"first version\n" * 1000
    server.files["/f/corpus.txt"] = data
    sources = {"toy": Source("toy", "Toy", server.url, "test",
                             (RemoteFile("corpus.txt", (server.url + "/f/corpus.txt",)),))}
    digest = hashlib.sha256(data).hexdigest()
    with pytest.warns(ChecksumWarning, match=rf"no published checksum is known; its SHA-256 is "
                                             rf"{digest}, recorded in .*SHA256SUMS: later "
                                             "downloads of this file are verified against it"):
        folder = download("toy", tmp_path, sources=sources)
    assert read_sums(folder) == {"corpus.txt": digest}
    lines = []
    download("toy", tmp_path, sources=sources, force=True, progress=lines.append)  # same bytes
    assert any("SHA-256 verified (recorded in" in line for line in lines)
    server.files["/f/corpus.txt"] = b"changed at the source\n"
    with pytest.raises(DownloadError, match=rf"corpus.txt: SHA-256 mismatch: got \w+, expected "
                                            rf"{digest} \(recorded in .*SHA256SUMS at its first "
                                            r"download\); the download was deleted"):
        download("toy", tmp_path, sources=sources, force=True)
    assert (folder / "corpus.txt").read_bytes() == data  # the good copy is kept
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "corpus.txt"]
    (folder / "corpus.txt").write_bytes(b"tampered")
    with pytest.raises(DownloadError, match=r"present but its SHA-256 \w+ is not the recorded"):
        download("toy", tmp_path, sources=sources)


def test_card_lists_the_recorded_checksums(tmp_path):
    folder = _hiagm(tmp_path / "t")
    write(folder / "SHA256SUMS", f"{'a' * 64}  all.json\n")
    card = load_dataset(str(folder)).card()
    assert card["sha256"] == {"all.json": "a" * 64}
    assert card["sha256_file"].endswith("SHA256SUMS")


def test_run_and_bench_take_dag_and_strict(tmp_path):
    folder = _hiagm(tmp_path / "t", TAXONOMY + "B\tA1\n")
    uri = f"sqlite:///{tmp_path / 's.db'}"
    runner = CliRunner()
    base = ["run", "--method", "flat-svm", "--dataset", str(folder), "--tracking-uri", uri]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 1 and "has two parents" in refused.output
    strict = runner.invoke(app, base + ["--dag", "--strict"])  # a DAG, but no repairs
    assert strict.exit_code == 1 and "not closed under ancestors" in strict.output
    assert not (tmp_path / "s.db").exists()                      # nothing written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        ran = runner.invoke(app, base + ["--dag"])
    assert ran.exit_code == 0, ran.output
    grid = write(tmp_path / "g.yaml", f"datasets: [{folder}]\nmethods: [flat-svm]\n")
    dry = runner.invoke(app, ["bench", str(grid), "--dry-run", "--tracking-uri", uri])
    assert dry.exit_code == 1 and "has two parents" in dry.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        dry = runner.invoke(app, ["bench", str(grid), "--dry-run", "--dag", "--tracking-uri", uri])
    assert dry.exit_code == 0 and "0 to run, 1 skipped" in dry.output, dry.output
