"""``download``: against a local HTTP server on 127.0.0.1 serving fixture files."""

import hashlib
import io
import threading
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hmtc_bench.data.download import (SOURCES, ChecksumWarning, DownloadError, RemoteFile,
                                      Source, download, unpack_zip)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """Files by path; ``cut[path] = n`` sends the full Content-Length but closes after n bytes
    (an interrupted transfer); ``no_range`` ignores Range headers."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.no_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                ranged = self.headers.get("Range")
                if ranged and not server.no_range:
                    start = int(ranged.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut.pop(self.path, None)
                self.wfile.write(body[:cut] if cut is not None else body)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def table(server, *files, read_from="."):
    return {"toy": Source(name="toy", title="Toy corpus", homepage=server.url, licence="test",
                          files=tuple(files), read_from=read_from)}


def remote(server, name, data, checksum="right", path=None, **kw):
    path = path or f"/files/{name}"
    server.files[path] = data
    digest = {"right": sha(data), "wrong": "0" * 64, "none": None}[checksum]
    return RemoteFile(name, (server.url + path,), sha256=digest, **kw)


def test_full_download_verified_and_renamed(server, tmp_path):
    lines = []
    sources = table(server, remote(server, "corpus.bin", PAYLOAD))
    folder = download("toy", tmp_path, sources=sources, progress=lines.append)
    assert folder == tmp_path / "toy"
    assert (folder / "corpus.bin").read_bytes() == PAYLOAD
    assert not (folder / "corpus.bin.part").exists()
    assert (folder / "SHA256SUMS").read_text() == f"{sha(PAYLOAD)}  corpus.bin\n"
    assert any("SHA-256 verified" in line for line in lines)
    n = len(server.requests)
    download("toy", tmp_path, sources=sources)  # present and verified: no request
    assert len(server.requests) == n


def test_resume_after_interrupted_transfer(server, tmp_path):
    file = remote(server, "corpus.bin", PAYLOAD)
    server.cut["/files/corpus.bin"] = 300_000
    with pytest.raises(DownloadError, match=r"interrupted after 300000 of 1048576 bytes; run the "
                                            r"same command again to resume"):
        download("toy", tmp_path, sources=table(server, file))
    part = tmp_path / "toy" / "corpus.bin.part"
    assert part.stat().st_size == 300_000 and not (tmp_path / "toy" / "corpus.bin").exists()
    lines = []
    download("toy", tmp_path, sources=table(server, file), progress=lines.append)
    assert server.requests[-1] == ("/files/corpus.bin", "bytes=300000-")
    assert (tmp_path / "toy" / "corpus.bin").read_bytes() == PAYLOAD and not part.exists()
    assert any("resuming at byte 300000" in line for line in lines)


def test_resume_of_a_whole_partial_file_and_a_server_without_ranges(server, tmp_path):
    file = remote(server, "corpus.bin", PAYLOAD)
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "corpus.bin.part").write_bytes(PAYLOAD)  # complete but not yet renamed: HTTP 416
    download("toy", tmp_path, sources=table(server, file))
    assert (folder / "corpus.bin").read_bytes() == PAYLOAD
    server.no_range = True  # the server answers 200 with everything: start again
    (folder / "corpus.bin").unlink()
    (folder / "corpus.bin.part").write_bytes(b"garbage")
    download("toy", tmp_path, sources=table(server, file))
    assert (folder / "corpus.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_nothing_kept(server, tmp_path):
    file = remote(server, "corpus.bin", PAYLOAD, checksum="wrong", checksum_source="the test")
    with pytest.raises(DownloadError, match=rf"corpus.bin: SHA-256 mismatch: got {sha(PAYLOAD)}, "
                                            rf"expected 0{{64}} \(the test\); the download was "
                                            "deleted"):
        download("toy", tmp_path, sources=table(server, file))
    assert list((tmp_path / "toy").iterdir()) == []
    # a resumed file with a bad start is caught the same way
    good = remote(server, "corpus.bin", PAYLOAD)
    (tmp_path / "toy" / "corpus.bin.part").write_bytes(b"X" * 1000)
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download("toy", tmp_path, sources=table(server, good))
    assert list((tmp_path / "toy").iterdir()) == []
    download("toy", tmp_path, sources=table(server, good))  # and a clean run then succeeds
    assert (tmp_path / "toy" / "corpus.bin").read_bytes() == PAYLOAD


def test_unknown_checksum_warns_with_the_digest(server, tmp_path):
    file = remote(server, "corpus.bin", PAYLOAD, checksum="none")
    with pytest.warns(ChecksumWarning, match=rf"no published checksum is known; its SHA-256 is "
                                             rf"{sha(PAYLOAD)}"):
        download("toy", tmp_path, sources=table(server, file))
    assert (tmp_path / "toy" / "corpus.bin").read_bytes() == PAYLOAD
    assert sha(PAYLOAD) in (tmp_path / "toy" / "SHA256SUMS").read_text()


def test_present_file_with_wrong_digest_is_not_trusted(server, tmp_path):
    file = remote(server, "corpus.bin", PAYLOAD)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "corpus.bin").write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="present but its SHA-256"):
        download("toy", tmp_path, sources=table(server, file))
    download("toy", tmp_path, sources=table(server, file), force=True)
    assert (tmp_path / "toy" / "corpus.bin").read_bytes() == PAYLOAD


def test_mirror_is_tried_when_the_original_fails(server, tmp_path):
    server.files["/mirror/corpus.bin"] = PAYLOAD
    file = RemoteFile("corpus.bin", (server.url + "/gone/corpus.bin",
                                     server.url + "/mirror/corpus.bin"), sha256=sha(PAYLOAD))
    download("toy", tmp_path, sources=table(server, file))
    assert [p for p, _ in server.requests] == ["/gone/corpus.bin", "/mirror/corpus.bin"]


def test_unreachable_and_unknown_names(server, tmp_path):
    file = RemoteFile("corpus.bin", (server.url + "/nothing/here",), sha256=None)
    with pytest.raises(DownloadError, match=r"corpus.bin: could not download \(.*HTTP 404"):
        download("toy", tmp_path, sources=table(server, file))
    closed = RemoteFile("corpus.bin", ("http://127.0.0.1:9/corpus.bin",))
    with pytest.raises(DownloadError, match="could not download.*Check the network"):
        download("toy", tmp_path, sources=table(server, closed), timeout=5)
    with pytest.raises(DownloadError, match=r"no download for 'wso'; did you mean wos\?"):
        download("wso", tmp_path)


def test_zip_is_unpacked_into_readable_folders(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("WOS11967/X.txt", "".join(f"abstract {i} text\n" for i in range(20)))
        zf.writestr("WOS11967/YL1.txt", "".join(f"{i % 2}\n" for i in range(20)))
        zf.writestr("WOS11967/YL2.txt", "".join(f"{i % 3}\n" for i in range(20)))
        zf.writestr("ReadMe.txt", "readme")
    data = buffer.getvalue()
    file = remote(server, "WebOfScience.zip", data, unpack=True)
    folder = download("toy", tmp_path, sources=table(server, file, read_from="WOS11967"))
    assert folder == tmp_path / "toy" / "WOS11967"
    from hmtc_bench.data import load_dataset
    assert sum(len(s) for s in load_dataset(str(folder)).splits().values()) == 20
    assert (tmp_path / "toy" / "ReadMe.txt").read_text() == "readme"


def test_zip_members_outside_the_folder_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DownloadError, match="refusing member '../outside.txt'"):
        unpack_zip(evil, tmp_path / "into")
    assert not (tmp_path / "outside.txt").exists()


def test_the_source_table():
    assert set(SOURCES) == {"20newsgroups", "wos", "rcv1-v2"}
    for source in SOURCES.values():
        assert source.homepage.startswith("http") and source.licence
        for file in source.files:
            assert all(url.startswith(("http://", "https://")) for url in file.urls)
            assert file.sha256 is None or len(file.sha256) == 64
    names = {f.name for f in SOURCES["rcv1-v2"].files}
    assert {"lyrl2004_tokens_train.dat.gz", "rcv1-v2.topics.qrels.gz",
            "rcv1.topics.hier.orig"} <= names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from hmtc_bench.data.formats.lyrl2004 import HIERARCHY, QRELS, TOKENS
        assert all(TOKENS.match(n) or QRELS.match(n) or HIERARCHY.match(n) for n in names)
