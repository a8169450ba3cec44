"""Readers of the standard corpora on small fixtures written in their distributed formats."""

import json
import sys
import types
import warnings

import pytest

from conftest import all_labels, labels_by_id, write, write_gz
from hmtc_bench.data import DataError, load_dataset
from hmtc_bench.data.formats import detect_format, read_folder
from test_readers_news import bgc_folder


# ---------------------------------------------------------------------- RCV1-V2 LYRL2004
HIER = """parent: None     child: Root       child-description: Root
parent: Root     child: CCAT       child-description: CORPORATE/INDUSTRIAL
parent: Root     child: ECAT       child-description: ECONOMICS
parent: CCAT     child: C15        child-description: PERFORMANCE
parent: C15      child: C151       child-description: ACCOUNTS/EARNINGS
parent: ECAT     child: E11        child-description: ECONOMIC PERFORMANCE
"""
TOPICS = [("CCAT",), ("CCAT", "C15"), ("CCAT", "C15", "C151"), ("ECAT", "E11"),
          ("CCAT", "C15", "ECAT", "E11")]


def _tokens(ids):
    return "".join(f".I {i}\n.W\nword{i} shares rose\nmore tokens {i % 5}\n\n" for i in ids)


def lyrl_folder(tmp_path, parts=(0, 1, 2, 3), gz=True):
    folder = tmp_path / "lyrl"
    write(folder / "rcv1.topics.hier.orig", HIER)
    train_ids = range(2286, 2316)
    test_ids = {p: range(3000 + 10 * p, 3010 + 10 * p) for p in parts}
    put = (lambda p, t: write_gz(p.with_name(p.name + ".gz"), t)) if gz else write
    put(folder / "lyrl2004_tokens_train.dat", _tokens(train_ids))
    for p, ids in test_ids.items():
        put(folder / f"lyrl2004_tokens_test_pt{p}.dat", _tokens(ids))
    all_ids = list(train_ids) + [i for ids in test_ids.values() for i in ids]
    qrels = "".join(f"{t} {i} 1\n" for i in all_ids for t in TOPICS[i % 5])
    put(folder / "rcv1-v2.topics.qrels", qrels)
    return folder


def test_lyrl2004_reads_the_distribution(tmp_path):
    folder = lyrl_folder(tmp_path)
    assert detect_format(folder) == "lyrl2004"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(str(folder))
    assert (len(data.train) + len(data.dev), len(data.test)) == (30, 40)
    assert len(data.dev) == 3 and data.info["split_seed"] == 0
    assert data.info["split_name"] == "LYRL2004" and data.info["test_parts"] == [0, 1, 2, 3]
    assert data.hierarchy.labels_at_level(3) == ["C151"]
    labels = all_labels(data)
    assert labels["2287"] == ("CCAT", "C15", "C151")
    assert labels["2288"] == ("ECAT", "E11")
    assert set(labels["2289"]) == {"CCAT", "C15", "ECAT", "E11"}
    text = dict(zip(data.test.ids, data.test.texts))["3000"]
    assert text == "word3000 shares rose more tokens 0"
    assert data.info["format"] == "lyrl2004" and "licence" in data.info


def test_lyrl2004_partial_test_parts_warn_and_are_recorded(tmp_path):
    from hmtc_bench.data.formats.lyrl2004 import PartialWarning
    from hmtc_bench.data.formats.lyrl2004 import read as read_lyrl2004
    folder = lyrl_folder(tmp_path, parts=(0, 2), gz=False)
    with pytest.warns(PartialWarning, match=r"only test parts \[0, 2\]"):
        data = read_folder(folder)
    assert data.info["test_parts"] == [0, 2] and len(data.test) == 20
    assert len(read_lyrl2004(folder, test_parts=[2]).test) == 10
    with pytest.raises(DataError, match=r"test part\(s\) \[3\] not found"):
        read_lyrl2004(folder, test_parts=[3])


@pytest.mark.parametrize("damage, message", [
    (lambda f: write_gz(f / "rcv1-v2.topics.qrels.gz", "CCAT 2286 1\nGZZZ 2287 1\n"),
     r"rcv1-v2.topics.qrels.gz, line 2: topic 'GZZZ' is not in the topic hierarchy"),
    (lambda f: write_gz(f / "rcv1-v2.topics.qrels.gz", "CCAT 2286 1\n2287 1\n"),
     r"qrels.gz, line 2: expected '<topic> <document id> 1'"),
    (lambda f: write_gz(f / "lyrl2004_tokens_train.dat.gz", "stray words\n.I 2286\n.W\nx\n"),
     r"lyrl2004_tokens_train.dat.gz, line 1: text outside a document"),
    (lambda f: write_gz(f / "lyrl2004_tokens_train.dat.gz", ".I 2286\n.W\nx\n\n.I\n.W\ny\n"),
     r"lyrl2004_tokens_train.dat.gz, line 5: expected '.I <document id>'"),
    (lambda f: write_gz(f / "lyrl2004_tokens_train.dat.gz", _tokens([2286, 99999])),
     r"lyrl2004_tokens_train.dat.gz, line 6: document 99999 has no topic"),
    (lambda f: write(f / "rcv1.topics.hier.orig", HIER + "CCAT C17 FUNDING\n"),
     r"rcv1.topics.hier.orig, line 7: expected 'parent: CODE child: CODE"),
    (lambda f: write(f / "rcv1.topics.hier.orig", HIER + "parent: C99 child: C991 "
                     "child-description: X\n"), r"no parent and are not under the root"),
    (lambda f: (f / "rcv1-v2.topics.qrels.gz").unlink(), r"rcv1-v2.topics.qrels\[.gz\] is missing"),
])
def test_lyrl2004_bad_input_names_file_and_line(tmp_path, damage, message):
    folder = lyrl_folder(tmp_path)
    damage(folder)
    with pytest.raises(DataError, match=message):
        read_folder(folder)


# ---------------------------------------------------------------------- WOS Data.txt / xlsx
WOS_HEADER = "Y1\tY2\tY\tDomain\tarea\tkeywords\tAbstract\n"
WOS_ROWS = [  # (Y1, Y2, Y, Domain, area)
    (0, 0, 0, "CS ", "Computer vision  "), (0, 1, 1, "CS ", "Machine learning  "),
    (1, 0, 2, "Psychology ", "Depression "), (2, 0, 3, "Medical  ", "Depression"),
    (2, 1, 4, "Medical  ", "Atrial Fibrillation"),
]


def wos_data(n=40, extra=""):
    lines = []
    for i in range(n):
        y1, y2, y, domain, area = WOS_ROWS[i % 5]
        if i == 9:  # a row of code 2-1 with a rarer area name, merged into the frequent one
            area = "Depression"
        abstract = f'"A ""quoted"" abstract {i} about {area}."' if i % 7 == 0 else \
            f"Abstract {i} about {area.strip()} and more words."
        lines.append(f"{y1}\t{y2}\t{y}\t{domain}\t{area}\tkw{i}; kw\t{abstract}\n")
    return WOS_HEADER + "".join(lines) + extra


def test_wos_data_txt(tmp_path):
    write(tmp_path / "Data.txt", wos_data())
    assert detect_format(tmp_path) == "wos-data"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = read_folder(tmp_path)
    h = data.hierarchy
    assert h.labels_at_level(1) == ["CS", "Psychology", "Medical"]
    assert h.labels_at_level(2) == ["Computer vision", "Machine learning", "Psychology/Depression",
                                    "Medical/Depression", "Atrial Fibrillation"]
    assert data.info["area_names_merged"] == {"2-1": ["Atrial Fibrillation", "Depression"]}
    labels = all_labels(data)
    assert labels["Data:2"] == ("CS", "Computer vision")  # line 2 is the first row
    assert labels["Data:11"] == ("Medical", "Atrial Fibrillation")
    texts = {i: t for s in data.splits().values() for i, t in zip(s.ids, s.texts)}
    assert texts["Data:2"] == 'A "quoted" abstract 0 about Computer vision  .'
    assert (len(data.train), len(data.dev), len(data.test)) == (26, 6, 8)
    assert "20% test" in data.info["split"] and data.info["format"] == "wos-data"


@pytest.mark.parametrize("extra, message", [
    ("0\t0\t0\tCS\tComputer vision\tkw\n", r"Data.txt, line 42: expected 7 tab-separated fields"),
    ("x\t0\t0\tCS\tComputer vision\tkw\tText\n", r"Data.txt, line 42: column Y1 must be a number"),
    ("0\t0\t0\tCS\t \tkw\tText\n", r"Data.txt, line 42: empty area"),
    ("0\t0\t0\tCS\tComputer vision\tkw\t  \n", r"Data.txt, line 42: empty text"),
])
def test_wos_data_bad_rows(tmp_path, extra, message):
    write(tmp_path / "Data.txt", wos_data(extra=extra))
    with pytest.raises(DataError, match=message):
        read_folder(tmp_path)


def test_wos_data_needs_its_header(tmp_path):
    write(tmp_path / "Data.txt", wos_data().split("\n", 1)[1])
    with pytest.raises(DataError, match=r"Data.txt, line 1: expected the header Y1 Y2 Y Domain"):
        read_folder(tmp_path)
    write(tmp_path / "Data.txt", wos_data().encode("utf-16"))
    with pytest.raises(DataError, match=r"Data.txt, line 1: the file is UTF-16"):
        read_folder(tmp_path)
    write(tmp_path / "Data.txt", "\ufeff" + wos_data())  # a byte-order mark is fine
    assert len(read_folder(tmp_path).train) == 26


def test_wos_xlsx_without_openpyxl_is_a_clear_error(tmp_path, monkeypatch):
    write(tmp_path / "Data.xlsx", b"PK\x03\x04 not really")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import fails
    assert detect_format(tmp_path) == "wos-data"
    with pytest.raises(DataError, match=r"Data.xlsx: reading .xlsx needs the optional package "
                                        r"openpyxl \(pip install openpyxl\)"):
        read_folder(tmp_path)


def test_wos_xlsx_rows_through_openpyxl(tmp_path, monkeypatch):
    rows = [tuple(WOS_HEADER.strip().split("\t"))]
    for i in range(20):
        y1, y2, y, domain, area = WOS_ROWS[i % 5]
        rows.append((y1, float(y2), y, domain, area, None, f"Abstract {i} on {area}"))
    rows.insert(5, (None,) * 7)  # an empty row is skipped

    class Book:
        worksheets = [types.SimpleNamespace(iter_rows=lambda values_only: iter(rows))]

        def close(self):
            pass

    fake = types.SimpleNamespace(load_workbook=lambda path, read_only, data_only: Book())
    monkeypatch.setitem(sys.modules, "openpyxl", fake)
    write(tmp_path / "Data.xlsx", b"PK")
    data = read_folder(tmp_path)
    assert sum(len(s) for s in data.splits().values()) == 20
    assert all_labels(data)["Data:2"] == ("CS", "Computer vision")
    rows[3] = (0, "x", 0, "CS", "Computer vision", None, "text")
    with pytest.raises(DataError, match=r"Data.xlsx, row 4: column Y2 must be a number"):
        read_folder(tmp_path)


# ---------------------------------------------------------------------- WOS X / YL1 / YL2
def wos_xy(folder, n=30, y=True):
    codes = [(0, 0), (0, 1), (1, 0), (2, 0), (2, 1)]
    write(folder / "X.txt", "".join(f"abstract number {i} words\n" for i in range(n)))
    write(folder / "YL1.txt", "".join(f"{codes[i % 5][0]}\n" for i in range(n)))
    write(folder / "YL2.txt", "".join(f"{codes[i % 5][1]}\n" for i in range(n)))
    if y:
        write(folder / "Y.txt", "".join(f"{i % 5}\n" for i in range(n)))
    return folder


def test_wos_xy_layout(tmp_path):
    folder = wos_xy(tmp_path / "WOS11967")
    assert detect_format(folder) == "wos-xy"
    data = read_folder(folder)
    assert data.hierarchy.labels_at_level(1) == ["0", "1", "2"]
    assert data.hierarchy.labels_at_level(2) == ["0-0", "0-1", "1-0", "2-0", "2-1"]
    assert all_labels(data)["WOS11967:4"] == ("2", "2-0")
    assert data.info["Y_values"] == 5 and data.name == "WOS11967"
    assert (len(data.train), len(data.dev), len(data.test)) == (19, 5, 6)


def test_wos_xy_mismatched_files(tmp_path):
    folder = wos_xy(tmp_path)
    write(folder / "YL2.txt", "0\n1\n")
    with pytest.raises(DataError, match=r"YL2.txt: 2 labels for the 30 lines of X.txt"):
        read_folder(folder)
    wos_xy(folder)
    write(folder / "YL1.txt", "0\n" * 10 + "zero\n" + "0\n" * 19)
    with pytest.raises(DataError, match=r"YL1.txt, line 11: column YL1 must be a number"):
        read_folder(folder)


# ---------------------------------------------------------------------- label-id JSON
def label_id_folder(tmp_path):
    write(tmp_path / "labels.txt", "0\tScience\n1\tArts\n2\tPhysics\n3\tBiology\n4\tMusic\n")
    write(tmp_path / "label_hierarchy.txt", "0\t2\n0\t3\n1\t4\n")
    rows = [{"id": str(i), "token": f"text {i}", "labels": [[0, 2], [0, 3], [1, 4]][i % 3]}
            for i in range(30)]
    # train and test hold different documents: an id in both is refused (test_data_faults)
    write(tmp_path / "train.json", "".join(json.dumps(r) + "\n" for r in rows[9:]))
    write(tmp_path / "test.json", "".join(json.dumps(r) + "\n" for r in rows[:9]))
    write(tmp_path / "test_sampled_1000.json", "not even read\n")
    return tmp_path


def test_label_id_json_layout(tmp_path):
    folder = label_id_folder(tmp_path)
    assert detect_format(folder) == "relaclass"
    data = read_folder(folder)
    assert data.hierarchy.labels_at_level(2) == ["Physics", "Biology", "Music"]
    assert labels_by_id(data, "test")["2"] == ("Arts", "Music")
    assert data.info["files_ignored"] == ["test_sampled_1000.json"]
    write(folder / "test.json", '{"id": "x", "token": "t", "labels": [0, 7]}\n')
    with pytest.raises(DataError, match=r"test.json, line 1: label id 7 is not in labels.txt"):
        read_folder(folder)
    write(folder / "label_hierarchy.txt", "0\t2\n0\t9\n")
    with pytest.raises(DataError, match=r"label_hierarchy.txt, line 2: label id '9' is not in"):
        read_folder(folder)


# ---------------------------------------------------------------------- refusing other formats
def test_each_reader_refuses_what_is_not_its_format(tmp_path):
    from hmtc_bench.data.formats.bgc import read as read_bgc
    from hmtc_bench.data.formats.lyrl2004 import read as read_lyrl2004
    from hmtc_bench.data.formats.nyt import read as read_nyt
    from hmtc_bench.data.formats.relaclass import read as read_label_ids_folder
    from hmtc_bench.data.formats.reuters21578 import read as read_reuters21578
    from hmtc_bench.data.formats.wos_data import read as read_wos_data
    from hmtc_bench.data.formats.wos_xy import read as read_wos_xy
    folder = label_id_folder(tmp_path / "ids")
    for reader, message in [
        (read_lyrl2004, r"rcv1.topics.hier.orig is missing"),
        (read_wos_data, r"no Data.txt or Data.xlsx"),
        (read_wos_xy, r"X.txt is missing"),
        (read_nyt, r"no NYT articles"),
        (read_reuters21578, r"no reut2-\*.sgm files and no reuters21578.tar.gz"),
        (read_bgc, r"hierarchy.txt is missing"),
    ]:
        with pytest.raises(DataError, match=message):
            reader(folder)
    with pytest.raises(DataError, match=r"labels.txt"):
        read_label_ids_folder(bgc_folder(tmp_path / "bgc"))
    write(tmp_path / "wrong" / "rcv1.topics.hier.orig", "Root\tCCAT\n")
    with pytest.raises(DataError, match=r"line 1: expected 'parent: CODE child: CODE"):
        from hmtc_bench.data.formats.lyrl2004 import read_topic_hierarchy
        read_topic_hierarchy(tmp_path / "wrong" / "rcv1.topics.hier.orig")
    write(tmp_path / "notbgc" / "BlurbGenreCollection_EN_train.txt", "just text\n")
    write(tmp_path / "notbgc" / "BlurbGenreCollection_EN_test.txt", "just text\n")
    write(tmp_path / "notbgc" / "hierarchy.txt", "A\tB\n")
    with pytest.raises(DataError, match=r"_test.txt: no <book> records"):
        read_bgc(tmp_path / "notbgc")


def test_unknown_archive_path(tmp_path):
    other = write(tmp_path / "corpus.tar.gz", b"x")
    with pytest.raises(DataError, match=r"not a folder, nor a known archive"):
        detect_format(other)
    with pytest.raises(DataError, match=r"no such file or folder"):
        detect_format(tmp_path / "absent")
