"""Reliability battery of the data side ("nothing lost, nothing pooled"): each case builds a
small folder, runs the reader (or the command, or a download from a local server) for real
and reports ``{case, command, expected, seen, ok}``. Paths are shown under ``T/``, the
temporary folder of the run. A refusal is ok only when its message names what is expected
and the folder is left exactly as it was.

    python benchmarks/reliability_data.py          # a table; exit 1 if a case fails

``data_battery()`` returns the list (for a reliability report). About 10 s; the shared
corpora (``../shared/datasets/``), when present, add a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
# dataset and hierarchy hashes before the data faults were fixed (they must not move)
SHARED_HASHES = {
    "20newsgroups": ("67a218011664e9d2", "16421e6227043149"),
    "amazon-sample": ("bf361b4104400774", "11d36ca7381e81c9"),
    "rcv1-v2-dev": ("d09b877324ea675a", "db4d6672482e02fe"),
    "reuters21578": ("b759b3db9a1fb973", "5c24d99efb0c62ac"),
    "wos-sample": ("e7b2035d4e17ed84", "1643b1cc4508ea4b"),
}
REGISTERED_HASHES = {"synthetic": ("adee72a8470b737e", "482caec44c4a915c"),
                     "icd10cm": ("ae746727e97f5282", "2e714bca791c27ca")}
TAXONOMY = "Root\tA\tB\nA\tA1\tA2\nB\tB1\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _hiagm(folder: Path, taxonomy: str = TAXONOMY, rows=None, bom: bool = False) -> Path:
    rows = rows or [{"token": f"word {i}", "label": [["A", "A1"], ["B", "B1"], ["A", "A2"]][i % 3]}
                    for i in range(30)]
    mark = "\ufeff" if bom else ""
    _write(folder / "toy.taxonomy", mark + taxonomy)
    _write(folder / "all.json", mark + _jsonl(rows))
    return folder


def _listing(folder: Path) -> list:
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*"))


class _Battery:
    def __init__(self, root: Path):
        self.root = root
        self.results: list[dict] = []

    def show(self, text: str) -> str:
        return str(text).replace(str(self.root) + "/", "T/")

    def add(self, case, command, expected, seen, ok):
        self.results.append({"case": case, "command": self.show(command),
                             "expected": expected, "seen": self.show(seen), "ok": bool(ok)})

    def refused(self, case, command, call, folder: Path, error: str, parts: list[str]):
        """``call()`` must raise ``error`` with every string of ``parts`` in its message,
        in one line, and leave ``folder`` as it was."""
        before = _listing(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                call()
                seen, ok = "no error", False
            except Exception as err:  # the battery reports whatever happens
                message = str(err)
                seen = f"{type(err).__name__}: {message}"
                ok = (type(err).__name__ == error and all(p in message for p in parts)
                      and "\n" not in message)
        unchanged = _listing(folder) == before
        self.add(case, command, f"{error} naming {', '.join(map(repr, parts))}; nothing written",
                 seen + ("" if unchanged else "; THE FOLDER CHANGED"), ok and unchanged)

    def loads(self, case, command, call, expected: str, check):
        """``call()`` returns a dataset; ``check(dataset, warnings)`` gives (seen, ok)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                data = call()
                seen, ok = check(data, caught)
            except Exception as err:
                seen, ok = f"{type(err).__name__}: {err}", False
        self.add(case, command, expected, seen, ok)


def _second_parent(b: _Battery) -> None:
    from typer.testing import CliRunner

    from hmtc_bench.cli import app
    from hmtc_bench.data import load_dataset
    folder = _hiagm(b.root / "two-parents", TAXONOMY + "B\tA1\n")
    b.refused("1. HiAGM taxonomy: a stray second parent", f"load_dataset('{folder}')",
              lambda: load_dataset(str(folder)), folder, "HierarchyError",
              ["toy.taxonomy, line 4", "'A1' has two parents", "'A' (line 2)", "'B' (line 4)"])
    b.loads("1. the same, declared a DAG", f"load_dataset('{folder}', dag=True)",
            lambda: load_dataset(str(folder), dag=True), "read as a DAG, A1 under A and B",
            lambda d, _: (f"{d.card()['structure']}, parents of A1: {d.hierarchy.parents('A1')}",
                          d.hierarchy.parents("A1") == ["A", "B"]))
    before = _listing(folder)
    result = CliRunner().invoke(app, ["data", "info", str(folder)])
    b.add("1. the same on the command line", f"hmtc-bench data info {folder}",
          "exit 1, one line naming both lines", f"exit {result.exit_code}: "
          + result.output.strip(),
          result.exit_code == 1 and "'A' (line 2) and 'B' (line 4)" in result.output
          and len(result.output.strip().splitlines()) == 1 and _listing(folder) == before)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["data", "info", str(folder), "--dag", "--json"])
    structure = json.loads(result.output).get("structure") if result.exit_code == 0 else None
    b.add("1. the same with --dag", f"hmtc-bench data info {folder} --dag --json",
          "exit 0, structure DAG", f"exit {result.exit_code}, structure {structure}",
          result.exit_code == 0 and structure == "DAG")

    lyrl = b.root / "lyrl"
    _write(lyrl / "rcv1.topics.hier.orig", "".join(
        f"parent: {p:<8} child: {c:<8} child-description: {c}\n"
        for p, c in [("None", "Root"), ("Root", "CCAT"), ("Root", "ECAT"), ("CCAT", "C15"),
                     ("ECAT", "C15")]))
    docs = {"train": range(100, 120), "test_pt0": range(200, 210)}
    for part, ids in docs.items():
        _write(lyrl / f"lyrl2004_tokens_{part}.dat",
               "".join(f".I {i}\n.W\nword{i} shares\n\n" for i in ids))
    _write(lyrl / "rcv1-v2.topics.qrels",
           "".join(f"CCAT {i} 1\nC15 {i} 1\n" for ids in docs.values() for i in ids))
    b.refused("1. RCV1-V2 topic hierarchy: a second parent", f"load_dataset('{lyrl}')",
              lambda: load_dataset(str(lyrl)), lyrl, "DataError",
              ["rcv1.topics.hier.orig, line 5", "'C15' has two parents", "'CCAT' (line 4)",
               "'ECAT' (line 5)"])
    paths = b.root / "paths-dag"
    _write(paths / "data.jsonl", _jsonl([{"id": f"d{i}", "text": "t",
                                          "labels": [["A/C"], ["B/C"]][i % 2]}
                                         for i in range(20)]))
    b.loads("1. a paths file with a DAG keeps loading", f"load_dataset('{paths}')",
            lambda: load_dataset(str(paths)), "C under A and B",
            lambda d, _: (f"parents of C: {d.hierarchy.parents('C')}",
                          d.hierarchy.parents("C") == ["A", "B"]))


def _line_order(b: _Battery) -> None:
    from hmtc_bench.data import load_dataset
    folder = _hiagm(b.root / "order", "Root\tA\tB\nA1\tA1x\nB\tB1\nA\tA1\tA2\n")
    b.loads("2. taxonomy lines in any order (a parent's line after its child's)",
            f"load_dataset('{folder}')", lambda: load_dataset(str(folder)),
            "read: A1x on level 3 under A1",
            lambda d, _: (f"level of A1x {d.hierarchy.level('A1x')}, parents "
                          f"{d.hierarchy.parents('A1x')}", d.hierarchy.level("A1x") == 3))
    cycle = _hiagm(b.root / "cycle", "Root\tA\tB\nA1\tA2\nA2\tA1\nA\tA3\nB\tB1\n")
    b.refused("2. a cycle in a taxonomy", f"load_dataset('{cycle}')",
              lambda: load_dataset(str(cycle)), cycle, "HierarchyError",
              ["toy.taxonomy, line 3", "has a cycle", "edges on lines"])


def _bom(b: _Battery) -> None:
    from hmtc_bench.data import load_dataset
    plain = load_dataset(str(_hiagm(b.root / "plain")))
    marked = b.root / "bom-hiagm"
    _hiagm(marked, bom=True)
    b.loads("3. BOM: HiAGM taxonomy and JSON lines", f"load_dataset('{marked}')",
            lambda: load_dataset(str(marked)), f"the same dataset as without it "
            f"({plain.content_hash})",
            lambda d, _: (d.content_hash, d.content_hash == plain.content_hash))
    csv = b.root / "bom-csv"
    _write(csv / "data.csv", "\ufeffid,text,labels\n"
           + "".join(f"doc{i},text {i},Sci/Physics\n" for i in range(20)))
    b.loads("3. BOM: CSV keeps its id column", f"load_dataset('{csv}')",
            lambda: load_dataset(str(csv)), "ids doc0 ... doc19",
            lambda d, _: (f"ids {sorted(i for s in d.splits().values() for i in s.ids)[:3]}...",
                          {i for s in d.splits().values() for i in s.ids}
                          == {f"doc{i}" for i in range(20)}))
    ids = b.root / "bom-relaclass"
    _write(ids / "labels.txt", "\ufeff0\tScience\n1\tPhysics\n")
    _write(ids / "label_hierarchy.txt", "\ufeff0\t1\n")
    _write(ids / "docs.json", "\ufeff" + _jsonl(
        [{"id": str(i), "token": f"t {i}", "labels": [0, 1]} for i in range(20)]))
    b.loads("3. BOM: relaclass labels, hierarchy and JSON lines", f"load_dataset('{ids}')",
            lambda: load_dataset(str(ids)), "labels ('Science', 'Physics')",
            lambda d, _: (str(d.hierarchy.labels), d.hierarchy.labels == ("Science", "Physics")))


def _duplicates(b: _Battery) -> None:
    from hmtc_bench.data import load_dataset
    rows = [{"id": f"d{i}", "token": "w", "label": ["A"]} for i in range(10)]
    rows[7]["id"] = "d2"
    folder = _hiagm(b.root / "dup-file", rows=rows)
    b.refused("4. a document id repeated in one file", f"load_dataset('{folder}')",
              lambda: load_dataset(str(folder)), folder, "DataError",
              ["all.json, line 8", "'d2' is given twice", "all.json, line 3"])
    split = b.root / "dup-splits"
    docs = [{"id": f"d{i}", "text": "t", "labels": ["A/B"]} for i in range(10)]
    _write(split / "train.jsonl", _jsonl(docs))
    _write(split / "test.jsonl", _jsonl(docs[4:5]))
    b.refused("4. a document in train and in test", f"load_dataset('{split}')",
              lambda: load_dataset(str(split)), split, "DataError",
              ["test.jsonl, line 1", "'d4' is given twice", "train.jsonl, line 5"])


def _unseen(b: _Battery) -> None:
    from hmtc_bench.data import UnseenLabelWarning, load_dataset
    folder = b.root / "unseen"
    _write(folder / "train.jsonl", _jsonl([{"id": f"tr{i}", "text": "t", "labels": ["A/B"]}
                                           for i in range(10)]))
    _write(folder / "test.jsonl", _jsonl([{"id": f"te{i}", "text": "t",
                                           "labels": [f"A/N{i}", "Z/Q"]} for i in range(7)]))

    def check(data, caught):
        found = [str(w.message) for w in caught if issubclass(w.category, UnseenLabelWarning)]
        field = data.card()["labels_unseen_in_train"]
        return (f"{len(found)} warning(s): {found[0] if found else '-'}; card {field}",
                len(found) == 1 and "9 labels occur in dev or test but never in train"
                in found[0] and field == 9)
    b.loads("5. labels in test but never in train", f"load_dataset('{folder}')",
            lambda: load_dataset(str(folder)),
            "one UnseenLabelWarning counting 9 with a few names; card labels_unseen_in_train 9",
            check)


def _paths_cycle(b: _Battery) -> None:
    from hmtc_bench.data import load_dataset
    folder = b.root / "paths-cycle"
    _write(folder / "data.jsonl", _jsonl([{"id": f"d{i}", "text": "t", "labels": ["A/B"]}
                                          for i in range(5)]
                                         + [{"id": "x", "text": "t", "labels": ["B/A"]}]))
    b.refused("6. a cycle in JSON-lines label paths", f"load_dataset('{folder}')",
              lambda: load_dataset(str(folder)), folder, "DataError",
              ["data.jsonl, line 6", "has a cycle", "edges on lines 1, 6"])
    csv = b.root / "paths-cycle-csv"
    _write(csv / "train.csv", "id,text,labels\n" + "".join(f"d{i},t,Sci/Physics/Quantum\n"
                                                          for i in range(5)))
    _write(csv / "test.csv", "id,text,labels\nq,t,Quantum/Sci\n")
    b.refused("6. a cycle across two CSV files", f"load_dataset('{csv}')",
              lambda: load_dataset(str(csv)), csv, "DataError",
              ["train.csv, line 2", "has a cycle", "test.csv, line 2"])


class _Server:
    def __init__(self, files: dict[str, bytes]):
        self.files = files
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _download(b: _Battery) -> None:
    from hmtc_bench.data.download import RemoteFile, Source, download, read_sums
    data = b"first version\n" * 1000
    digest = hashlib.sha256(data).hexdigest()
    server = _Server({"/f/corpus.txt": data})
    try:
        sources = {"toy": Source("toy", "Toy", server.url, "test",
                                 (RemoteFile("corpus.txt", (server.url + "/f/corpus.txt",)),))}
        dest = b.root / "downloads"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            folder = download("toy", dest, sources=sources)
        said = [str(w.message) for w in caught]
        recorded = read_sums(folder).get("corpus.txt")
        b.add("7. first download, no published checksum", "download('toy', T/downloads)",
              f"SHA-256 {digest[:12]}... recorded in SHA256SUMS, and said",
              f"recorded {str(recorded)[:12]}...; warning: {said[0] if said else '-'}",
              recorded == digest and any("later downloads of this file are verified" in s
                                         for s in said))
        lines: list[str] = []
        download("toy", dest, sources=sources, force=True, progress=lines.append)
        b.add("7. a later download of the same bytes", "download('toy', T/downloads, force=True)",
              "verified against the recorded SHA-256",
              next((line for line in lines if "verified" in line), "not verified"),
              any("SHA-256 verified (recorded in" in line for line in lines))
        server.files["/f/corpus.txt"] = b"changed at the source\n"
        b.refused("7. a later download that differs",
                  "download('toy', T/downloads, force=True)  # the source changed",
                  lambda: download("toy", dest, sources=sources, force=True), folder,
                  "DownloadError", ["SHA-256 mismatch", f"expected {digest}",
                                    "recorded in", "at its first download", "was deleted"])
    finally:
        server.close()


def _corpora(b: _Battery) -> None:
    """The shared corpora and the registered datasets load with their defaults, hashes as
    before (none has a second parent where a tree is read, none repeats an id)."""
    from hmtc_bench.data import load_dataset
    cases = [(name, name, hashes) for name, hashes in REGISTERED_HASHES.items()]
    cases += [(name, str(SHARED / name), hashes) for name, hashes in SHARED_HASHES.items()
              if (SHARED / name).exists()]
    for name, where, (data_hash, hier_hash) in cases:
        b.loads(f"hashes unchanged: {name}", f"load_dataset('{where}')",
                lambda w=where: load_dataset(w), f"{data_hash} / {hier_hash}",
                lambda d, _, a=data_hash, h=hier_hash: (
                    f"{d.content_hash} / {d.hierarchy.content_hash}, "
                    f"{d.card()['structure']}, unseen {d.card()['labels_unseen_in_train']}",
                    (d.content_hash, d.hierarchy.content_hash) == (a, h)))


def data_battery() -> list[dict]:
    """Every case run for real: a list of ``{case, command, expected, seen, ok}``."""
    with tempfile.TemporaryDirectory(prefix="hmtc-data-battery-") as tmp:
        battery = _Battery(Path(tmp).resolve())
        for part in (_second_parent, _line_order, _bom, _duplicates, _unseen, _paths_cycle,
                     _download, _corpora):
            part(battery)
        return battery.results


if __name__ == "__main__":
    from reliability import print_cases
    sys.exit(print_cases(data_battery()))
