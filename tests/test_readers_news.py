"""Readers of the news and book corpora (NYT, BGC, Reuters-21578) on small fixtures written
in their distributed formats."""

import io
import tarfile
import warnings

import pytest

from conftest import all_labels, labels_by_id, write
from hmtc_bench.data import DataError, load_dataset
from hmtc_bench.data.formats import detect_format, read_folder


# ---------------------------------------------------------------------- NYT
def nitf(doc_id, paths, paragraphs, lead=None):
    classifiers = "".join(
        f'<classifier class="online_producer" type="taxonomic_classifier">{p}</classifier>'
        for p in paths)
    full = "".join(f"<p>{p}</p>" for p in paragraphs)
    lead_block = f'<block class="lead_paragraph"><p>{lead}</p></block>' if lead else ""
    full_block = f'<block class="full_text">{full}</block>' if paragraphs else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nitf SYSTEM "http://www.nitf.org/IPTC/NITF/3.3/specification/dtd/nitf-3-3.dtd">
<nitf change.date="June 10, 2005" change.time="19:30" version="-//IPTC//DTD NITF 3.3//EN">
  <head>
    <title>Article {doc_id}</title>
    <meta content="16" name="publication_day_of_month"/>
    <docdata>
      <doc-id id-string="{doc_id}"/>
      <doc.copyright holder="The New York Times" year="2003"/>
      <identified-content>
        <classifier class="indexing_service" type="descriptor">Economic Conditions</classifier>
        {classifiers}
        <classifier class="online_producer" type="general_descriptor">Finances</classifier>
      </identified-content>
    </docdata>
  </head>
  <body>
    <body.head><hedline><hl1>Headline {doc_id}</hl1></hedline>
      <abstract><p>Abstract of {doc_id}.</p></abstract></body.head>
    <body.content>{lead_block}{full_block}</body.content>
  </body>
</nitf>
"""


NYT_PATHS = [["Top/News/Business", "Top/News/Business/Companies"],
             ["Top/Features/Arts"], ["Top/News/Sports", "Top/News"],
             ["Top/News/Business", "Top/Features/Arts/Music"]]


def nyt_folder(tmp_path):
    folder = tmp_path / "nyt"
    ids = list(range(1480100, 1480140))
    archive = {}
    for k, doc_id in enumerate(ids):
        xml = nitf(doc_id, NYT_PATHS[k % 4], [f"Paragraph one of {doc_id} &amp; more.",
                                              "Paragraph <b>two</b>."])
        if k % 5 == 4:  # some articles only in a monthly archive, as LDC distributes them
            archive[f"01/{10 + k % 3:02d}/{doc_id}.xml"] = xml.encode()
        else:
            write(folder / "Nytimes" / "2003" / f"{doc_id}.xml", xml)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in archive.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    write(folder / "nyt_corpus" / "data" / "2003" / "01.tgz", buffer.getvalue())
    lines = [f"Nytimes/2003/{i}.xml\n" for i in ids]
    write(folder / "idnewnyt_train.json", "".join(lines[:28]))
    write(folder / "idnewnyt_val.json", "".join(lines[28:32]))
    write(folder / "idnewnyt_test.json", "".join(lines[32:]))
    return folder, ids


def test_nyt_articles_by_id_lists(tmp_path):
    folder, ids = nyt_folder(tmp_path)
    assert detect_format(folder) == "nyt"
    data = read_folder(folder)
    assert (len(data.train), len(data.dev), len(data.test)) == (28, 4, 8)
    assert data.info["split"] == "given train/dev/test files"
    h = data.hierarchy
    assert h.labels_at_level(1) == ["Top/Features", "Top/News"]
    assert h.level("Top/Features/Arts/Music") == 3
    labels = all_labels(data)
    assert labels[str(ids[0])] == ("Top/News", "Top/News/Business", "Top/News/Business/Companies")
    assert labels[str(ids[2])] == ("Top/News", "Top/News/Sports")  # "Top/News" alone ignored
    assert labels[str(ids[9])] == ("Top/Features", "Top/Features/Arts")  # from the archive
    text = dict(zip(data.train.ids, data.train.texts))[str(ids[0])]
    assert text == f"Paragraph one of {ids[0]} & more.\nParagraph two."


def test_nyt_vocab_restricts_labels_and_skips_are_counted(tmp_path):
    from hmtc_bench.data.formats.nyt import SkippedWarning
    folder, ids = nyt_folder(tmp_path)
    write(folder / "nyt_label.vocab", "Top/News\nTop/News/Business\nTop/News/Sports\n")
    write(folder / "Nytimes" / "2003" / f"{ids[1]}.xml", nitf(ids[1], NYT_PATHS[0], []))
    with pytest.warns(SkippedWarning, match="left out 10 articles"):
        data = read_folder(folder)
    assert set(data.hierarchy.labels) == {"Top/News", "Top/News/Business", "Top/News/Sports"}
    assert data.info["articles_left_out"] == {"no kept label": 9, "no text": 1}


def test_nyt_bad_input(tmp_path):
    folder, ids = nyt_folder(tmp_path)
    with open(folder / "idnewnyt_test.json", "a") as handle:
        handle.write("Nytimes/2003/9999999.xml\n")
    with pytest.raises(DataError, match=r"idnewnyt_test.json, line 9: article 9999999.xml not "
                                        r"found"):
        read_folder(folder)
    folder, ids = nyt_folder(tmp_path / "again")
    write(folder / "Nytimes" / "2003" / f"{ids[0]}.xml", "<nitf><head>\n<title>x</head></nitf>")
    with pytest.raises(DataError, match=rf"{ids[0]}.xml, line 2: not well-formed XML"):
        read_folder(folder)
    write(folder / "idnewnyt_val.json", "Nytimes/2003/not-an-id.txt\n")
    with pytest.raises(DataError, match=r"idnewnyt_val.json, line 1: expected an article path"):
        read_folder(folder)


def test_nyt_without_id_lists_reads_every_article(tmp_path):
    folder = tmp_path / "plain"
    for k in range(20):
        write(folder / f"{1000 + k}.xml", nitf(1000 + k, NYT_PATHS[k % 4], ["text"]))
    assert detect_format(folder) == "nyt"
    data = read_folder(folder)
    assert sum(len(s) for s in data.splits().values()) == 20
    assert data.info["selection"] == "every article found"


# ---------------------------------------------------------------------- BGC
BGC_HIERARCHY = ("Fiction\tMystery & Suspense\nMystery & Suspense\tCozy Mysteries\n"
                 "Children’s Books\tChildren’s Picture Books\nFiction\tRomance\n")
BGC_TOPICS = [
    "<d0>Fiction</d0><d1>Mystery & Suspense</d1><d2>Cozy Mysteries</d2>",
    "<d0>Humor</d0>",
    ("<d0>Children’s Books</d0><d0>Fiction</d0><d1>Children’s Picture Books</d1>"
     "<d1>Romance</d1>"),
]


def book(i, topics=None, body=None):
    body = body if body is not None else f"Blurb {i}: a story of love &amp; loss & more."
    return (f'<book date="2018-03-2{i % 10}" xml:lang="en">\n<title>Title {i}</title>\n'
            f"<body>{body}\nSecond line.</body>\n<copyright>(c) Penguin Random House</copyright>\n"
            f"<metadata>\n<topics>{topics or BGC_TOPICS[i % 3]}</topics>\n"
            f"<author>A. Writer</author>\n"
            f"<published>2012-08-07</published>\n<page_num>288 Pages</page_num>\n"
            f"<isbn>97806063{i:05d}</isbn>\n<url>https://www.penguinrandomhouse.com/books/{i}/</url>\n"
            f"</metadata>\n</book>\n")


def bgc_folder(tmp_path, extra_test=""):
    write(tmp_path / "hierarchy.txt", BGC_HIERARCHY)
    write(tmp_path / "BlurbGenreCollection_EN_train.txt", "".join(book(i) for i in range(24)))
    write(tmp_path / "BlurbGenreCollection_EN_dev.txt", "".join(book(i) for i in range(24, 30)))
    write(tmp_path / "BlurbGenreCollection_EN_test.txt",
          "".join(book(i) for i in range(30, 39)) + extra_test)
    return tmp_path


def test_bgc_records_and_hierarchy(tmp_path):
    folder = bgc_folder(tmp_path)
    assert detect_format(folder) == "bgc"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = read_folder(folder)
    assert (len(data.train), len(data.dev), len(data.test)) == (24, 6, 9)
    h = data.hierarchy
    assert set(h.labels_at_level(1)) == {"Fiction", "Children’s Books", "Humor"}
    assert h.level("Cozy Mysteries") == 3
    labels = labels_by_id(data)
    assert labels["9780606300000"] == ("Fiction", "Mystery & Suspense", "Cozy Mysteries")
    assert set(labels["9780606300002"]) == {"Fiction", "Children’s Books", "Romance",
                                            "Children’s Picture Books"}
    assert data.train.texts[0] == "Blurb 0: a story of love & loss & more.\nSecond line."
    assert data.card()["multi_path_share"] > 0


def test_bgc_bad_records(tmp_path):
    folder = bgc_folder(tmp_path, extra_test=book(99, topics="<d0>Fiction</d0><d1>Sagas</d1>"))
    with pytest.raises(DataError, match=r"BlurbGenreCollection_EN_test.txt, line 127: genre "
                                        r"'Sagas' \(d1\) is not in hierarchy.txt"):
        read_folder(folder)
    folder = bgc_folder(tmp_path, extra_test=book(99).replace("</book>", ""))
    with pytest.raises(DataError, match=r"_test.txt, line 127: <book> record without </book>"):
        read_folder(folder)
    folder = bgc_folder(tmp_path)
    write(folder / "hierarchy.txt", BGC_HIERARCHY + "Fiction\n")
    with pytest.raises(DataError, match=r"hierarchy.txt, line 5: expected 'parent<TAB>child'"):
        read_folder(folder)


# ---------------------------------------------------------------------- Reuters-21578
CATEGORIES = """
Some notes on the Reuters Categories

****Subject Codes (135)

Money/Foreign Exchange (MONEY-FX)
Shipping (SHIP)

**Currency Codes (1)

U.S. Dollar (DLR)

**Commodity Codes (3)

COCOA
COTTON\x20
GRAIN

**Energy Codes (1)

Crude Oil (CRUDE)

________________________________________________________________

@heading[Organization Codes (56)]
African Development Bank (ADB-AFRICA)@*
"""


def reuters_doc(newid, split, topics, body, topics_attr="YES", kind=""):
    ds = "".join(f"<D>{t}</D>" for t in topics)
    text = (f'<TEXT TYPE="BRIEF">&#2;\n<TITLE>BRIEF {newid} &lt;AB&gt;</TITLE>\n&#3;</TEXT>'
            if kind == "BRIEF" else
            f"<TEXT>&#2;\n<TITLE>TITLE {newid}</TITLE>\n<DATELINE>    NEW YORK, March 3 - "
            f"</DATELINE><BODY>{body}\n Reuter\n&#3;</BODY></TEXT>")
    return (f'<REUTERS TOPICS="{topics_attr}" LEWISSPLIT="{split}" CGISPLIT="TRAINING-SET" '
            f'OLDID="{5000 + newid}" NEWID="{newid}">\n<DATE>26-FEB-1987 15:01:01.79</DATE>\n'
            f"<TOPICS>{ds}</TOPICS>\n<PLACES><D>usa</D></PLACES>\n<PEOPLE></PEOPLE>\n"
            f"<ORGS></ORGS>\n<EXCHANGES></EXCHANGES>\n<COMPANIES></COMPANIES>\n"
            f"<UNKNOWN> \n&#5;&#5;&#5;C T\n&#22;&#22;&#1;f0704&#31;reute\n</UNKNOWN>\n"
            f"{text}\n</REUTERS>\n")


REUTERS_TOPICS = [["cocoa"], ["grain", "ship"], ["money-fx", "dlr"], ["crude"], []]


def reuters_sgml(first, n, extra=""):
    docs = []
    for k in range(first, first + n):
        split = "TEST" if k % 4 == 3 else "TRAIN"
        kind = "BRIEF" if k % 10 == 7 else ""
        docs.append(reuters_doc(k, split, REUTERS_TOPICS[k % 5], f"Body of {k} &amp; co.",
                                kind=kind))
    docs.append(reuters_doc(first + n, "NOT-USED", ["cocoa"], "unused"))
    docs.append(reuters_doc(first + n + 1, "TRAIN", ["cocoa"], "no topics flag", topics_attr="NO"))
    return '<!DOCTYPE lewis SYSTEM "lewis.dtd">\n' + "".join(docs) + extra


def reuters_tarball(path, files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return write(path, buffer.getvalue())


def reuters_files(extra=""):
    return {"reut2-000.sgm": reuters_sgml(1, 40), "reut2-001.sgm": reuters_sgml(43, 40, extra),
            "cat-descriptions_120396.txt": CATEGORIES, "README.txt": "Reuters-21578 readme\n"}


def test_reuters_sgml_modapte(tmp_path):
    tarball = reuters_tarball(tmp_path / "reuters21578.tar.gz", reuters_files())
    assert detect_format(tarball) == "reuters21578"
    assert detect_format(tmp_path) == "reuters21578"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(str(tarball))
    # 80 documents, TRAIN / TEST by k % 4, every fifth without topics (left out)
    n_train = sum(1 for k in [*range(1, 41), *range(43, 83)] if k % 4 != 3 and k % 5 != 0)
    n_test = sum(1 for k in [*range(1, 41), *range(43, 83)] if k % 4 == 3 and k % 5 != 0)
    assert (len(data.train) + len(data.dev), len(data.test)) == (n_train, n_test)
    assert data.info["modapte_documents"] == {"train": 60, "test": 20}
    assert data.info["documents_without_topics_left_out"] == {"train": 12, "test": 4}
    h = data.hierarchy
    assert h.labels_at_level(1) == ["Other subject", "Currency", "Commodity", "Energy"]
    assert data.info["topics_in_grouping"] == 7 and data.info["topics_kept"] == 6
    labels = all_labels(data)
    assert labels["1"] == ("Other subject", "Commodity", "ship", "grain")
    assert labels["2"] == ("Other subject", "Currency", "money-fx", "dlr")
    texts = {i: t for s in data.splits().values() for i, t in zip(s.ids, s.texts)}
    assert texts["1"] == "TITLE 1\nBody of 1 & co.\n Reuter"
    assert texts["17"] == "BRIEF 17 <AB>"
    extracted = tmp_path / "extracted"
    for name, text in reuters_files().items():
        write(extracted / name, text.encode("latin-1"))
    assert detect_format(extracted) == "reuters21578"
    assert read_folder(extracted).content_hash == data.content_hash


def test_reuters_topic_choices(tmp_path):
    from hmtc_bench.data.formats.reuters21578 import read as read_reuters21578
    tarball = reuters_tarball(tmp_path / "reuters21578.tar.gz", reuters_files())
    assert len(read_reuters21578(tarball, topics="all").hierarchy) == 7 + 4
    r90 = read_reuters21578(tarball, topics="r90")
    assert r90.info["topics_kept"] == 6  # every topic has training and test documents here
    with pytest.raises(DataError, match="topics='most'"):
        read_reuters21578(tarball, topics="most")


@pytest.mark.parametrize("damage, message", [
    (lambda f: {**f, "reut2-001.sgm": reuters_sgml(43, 40, reuters_doc(99, "TRAIN", ["tea"], "x"))},
     r"reuters21578.tar.gz:reut2-001.sgm, line 750: topic 'tea' is not in cat-descriptions"),
    (lambda f: {**f, "reut2-001.sgm": reuters_sgml(43, 40, reuters_doc(99, "TRAIN", ["cocoa"], "x")
                                                   .replace("</REUTERS>", ""))},
     r"reut2-001.sgm, line 750: <REUTERS> record without </REUTERS>"),
    (lambda f: {**f, "reut2-001.sgm": reuters_sgml(43, 3).replace(' NEWID="44"', "")},
     r"reut2-001.sgm, line 20: <REUTERS> without a NEWID attribute"),
    (lambda f: {k: v for k, v in f.items() if not k.startswith("cat-")},
     r"cat-descriptions_120396.txt is missing"),
    (lambda f: {**f, "cat-descriptions_120396.txt": CATEGORIES.replace("COCOA", "Cocoa beans!")},
     r"cat-descriptions_120396.txt, line 15: expected a topic code"),
    (lambda f: {**f, "cat-descriptions_120396.txt": CATEGORIES.replace("(3)", "(4)")},
     r"'Commodity Codes \(4\)' announces 4 codes but 3 are listed"),
    (lambda f: {**f, "reut2-001.sgm": "<html>not reuters</html>"},
     r"reut2-001.sgm: no <REUTERS> records"),
])
def test_reuters_bad_input_names_file_and_line(tmp_path, damage, message):
    tarball = reuters_tarball(tmp_path / "reuters21578.tar.gz", damage(reuters_files()))
    with pytest.raises(DataError, match=message):
        read_folder(tarball)


def test_reuters_not_a_tarball(tmp_path):
    bad = write(tmp_path / "reuters21578.tar.gz", b"this is not gzip")
    with pytest.raises(DataError, match=r"reuters21578.tar.gz: not a readable tar archive"):
        read_folder(bad)
