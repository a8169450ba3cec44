"""Download the publicly available corpora from their original sources.

``download(name, dest)`` fetches every file of a source into ``dest/<name>/``: it resumes a
partial download (``<file>.part``, HTTP ``Range``), verifies its SHA-256, and only then
renames the file into place (atomically), so a file under its final name is always complete.
Every digest is written to ``SHA256SUMS`` beside the files (``sha256sum -c SHA256SUMS``
re-checks them; the dataset card of the folder lists them, ``sha256``).

Which SHA-256 a file is verified against: the published one where the source (or a trusted
copy) publishes one; otherwise the one recorded in ``SHA256SUMS`` when the file was first
fetched (trust on first use). A first download without a published checksum is kept with a
``ChecksumWarning`` that gives its digest and says it was recorded; every later download or
re-check of that file (``force``, a deleted file fetched again, a file already present) is
verified against the record, and a mismatch is refused with the download deleted. Archives
that the readers cannot read packed (the WOS zip) are unpacked after verification.

Sources (``SOURCES``):

``20newsgroups``
    ``20news-bydate.tar.gz`` from Jason Rennie's page (read packed by the 20 Newsgroups reader).
``wos``
    ``WebOfScience.zip`` from Mendeley Data (doi:10.17632/9rw3vkcfy4.6), unpacked: the folders
    ``WOS5736/``, ``WOS11967/``, ``WOS46985/`` (format ``wos-xy``) and ``Meta-data/``
    (``Data.xlsx``, format ``wos-data``).
``rcv1-v2``
    The LYRL2004 appendices from JMLR: the five token files, ``rcv1-v2.topics.qrels.gz`` and
    ``rcv1.topics.hier.orig`` (format ``lyrl2004``). About 250 MB.

NYT (LDC licence), BGC (download page with terms) and Reuters-21578 (UCI archive) are not
fetched here; see their dataset cards.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path, PurePosixPath

from hmtc_bench.errors import HMTCError

CHUNK = 1 << 20
USER_AGENT = "Mozilla/5.0 (compatible; hmtc-bench dataset downloader)"
SUMS_FILE = "SHA256SUMS"


class DownloadError(HMTCError, RuntimeError):
    """A download that failed or was refused; the message says what to do."""


class ChecksumWarning(UserWarning):
    """A file was downloaded for which no published checksum is known."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a source: its name on disk, its URLs (the original first, then mirrors
    tried when it cannot be reached) and its SHA-256 (``None`` where none is published)."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    checksum_source: str = ""
    unpack: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    homepage: str
    licence: str
    files: tuple[RemoteFile, ...]
    read_from: str = "."  # the folder under dest/<name>/ that the reader takes
    notes: tuple[str, ...] = field(default_factory=tuple)


_MENDELEY_WOS = ("https://data.mendeley.com/public-files/datasets/9rw3vkcfy4/files/"
                 "c9ea673d-5542-44c0-ab7b-f1311f7d61df/file_downloaded")
_JMLR = ("https://www.jmlr.org/papers/volume5/lewis04a/",
         "http://www.ai.mit.edu/projects/jmlr/papers/volume5/lewis04a/")


def _jmlr(path: str, name: str) -> RemoteFile:
    return RemoteFile(name, tuple(base + path + name for base in _JMLR))


SOURCES: dict[str, Source] = {
    "20newsgroups": Source(
        name="20newsgroups",
        title="20 Newsgroups, 'bydate' version (J. Rennie)",
        homepage="http://qwone.com/~jason/20Newsgroups/",
        licence="no formal licence; widely redistributed research corpus (Usenet posts, 1993)",
        files=(RemoteFile(
            "20news-bydate.tar.gz",
            ("http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz",),
            sha256="8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610",
            checksum_source="scikit-learn's fetch_20newsgroups metadata for this archive"),),
    ),
    "wos": Source(
        name="wos",
        title="Web of Science (Kowsari et al. 2017, HDLTex): WOS-5736, WOS-11967, WOS-46985",
        homepage="https://data.mendeley.com/datasets/9rw3vkcfy4/6",
        licence="Mendeley Data doi:10.17632/9rw3vkcfy4; cite the HDLTex paper",
        files=(RemoteFile(
            "WebOfScience.zip",
            (_MENDELEY_WOS,),
            unpack=True),),
        read_from="WOS46985",
        notes=(("WOS46985/, WOS11967/, WOS5736/: format wos-xy; Meta-data/Data.xlsx: format "
                "wos-data (needs openpyxl)"),),
    ),
    "rcv1-v2": Source(
        name="rcv1-v2",
        title="RCV1-V2, LYRL2004 token files, topic qrels and topic hierarchy (JMLR appendices)",
        homepage="https://www.jmlr.org/papers/volume5/lewis04a/lyrl2004_rcv1v2_README.htm",
        licence="Reuters copyright; research use under the Reuters / NIST agreement",
        files=(
            _jmlr("a12-token-files/", "lyrl2004_tokens_train.dat.gz"),
            _jmlr("a12-token-files/", "lyrl2004_tokens_test_pt0.dat.gz"),
            _jmlr("a12-token-files/", "lyrl2004_tokens_test_pt1.dat.gz"),
            _jmlr("a12-token-files/", "lyrl2004_tokens_test_pt2.dat.gz"),
            _jmlr("a12-token-files/", "lyrl2004_tokens_test_pt3.dat.gz"),
            _jmlr("a08-topic-qrels/", "rcv1-v2.topics.qrels.gz"),
            _jmlr("a02-orig-topics-hierarchy/", "rcv1.topics.hier.orig"),
        ),
    ),
}


def list_sources(sources: Mapping[str, Source] | None = None) -> dict[str, Source]:
    return dict(SOURCES if sources is None else sources)


def _say(progress, message: str) -> None:
    if progress is not None:
        progress(message)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(folder: str | Path) -> dict[str, str]:
    """File name -> SHA-256 from the ``SHA256SUMS`` file in ``folder`` (empty if none)."""
    sums = Path(folder) / SUMS_FILE
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def _expected(remote: RemoteFile, folder: Path) -> tuple[str | None, str]:
    """The SHA-256 to verify ``remote`` against and where it comes from: the published one,
    else the one recorded at its first download, else none."""
    if remote.sha256:
        return remote.sha256, remote.checksum_source or "published checksum"
    recorded = read_sums(folder).get(remote.name)
    if recorded:
        return recorded, f"recorded in {folder / SUMS_FILE} at its first download"
    return None, ""


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: Path, timeout: float, progress) -> None:
    """Fetch ``url`` into ``part``, continuing after the bytes already there when the server
    honours ``Range``. Raises DownloadError (the partial file stays for a resume) or
    ``_Unreachable`` when the server could not be reached at all."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing after offset
            total = (err.headers.get("Content-Range") or "").rpartition("/")[2]
            if total == str(offset):
                _say(progress, f"{part.name}: already complete ({offset} bytes)")
                return
            _say(progress, f"{part.name}: the partial file does not match; starting again")
            part.unlink()
            return _transfer(url, part, timeout, progress)
        raise _Unreachable(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError, HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise _Unreachable(f"{url}: {reason}") from None
    with response:
        status = getattr(response, "status", 200)
        mode = "wb"
        if offset and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(f"{url}: the server answered the resume request at byte "
                                    f"{offset} with range {content_range!r}; delete {part} "
                                    "and run again")
            mode = "ab"
            _say(progress, f"{part.name}: resuming at byte {offset}")
        elif offset:
            _say(progress, f"{part.name}: the server does not resume; starting again")
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        written = offset
        try:
            with open(part, mode) as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    written += len(block)
        except (OSError, HTTPException, TimeoutError) as err:
            raise DownloadError(f"{url}: interrupted after {written} bytes ({err}); run the "
                                f"same command again to resume from {part}") from None
    if expected is not None and written != expected:
        raise DownloadError(f"{url}: interrupted after {written} of {expected} bytes; run the "
                            f"same command again to resume from {part}")


class _Unreachable(DownloadError):
    pass


def fetch(remote: RemoteFile, folder: str | Path, *, force: bool = False, verify: bool = True,
          timeout: float = 60.0, progress: Callable[[str], None] | None = None) -> Path:
    """Download one file into ``folder`` (resume, verify, atomic rename); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / remote.name
    part = folder / (remote.name + ".part")
    expected, origin = _expected(remote, folder)
    if final.exists() and not force:
        digest = sha256_of(final)
        if expected and verify:
            if digest != expected:
                kind = "published" if remote.sha256 else "recorded"
                raise DownloadError(
                    f"{final}: present but its SHA-256 {digest} is not the {kind} "
                    f"{expected} ({origin}); delete it, or pass force to download it again")
            _say(progress, f"{remote.name}: present, SHA-256 verified"
                           + ("" if remote.sha256 else f" ({origin})"))
        elif not expected:
            _say(progress, f"{remote.name}: present; no published checksum, its SHA-256 "
                           f"{digest} is recorded in {folder / SUMS_FILE} (later downloads "
                           "are verified against it)")
        else:
            _say(progress, f"{remote.name}: present (not re-checked)")
        _record_sum(folder, remote.name, digest)
        return final
    if force:
        part.unlink(missing_ok=True)
    failures = []
    for url in remote.urls:
        _say(progress, f"{remote.name}: fetching {url}")
        try:
            _transfer(url, part, timeout, progress)
            break
        except _Unreachable as err:
            failures.append(str(err))
    else:
        raise DownloadError(
            f"{remote.name}: could not download ({'; '.join(failures)}). Check the network, "
            f"or fetch it by hand into {folder}" + (f" (partial file kept: {part})"
                                                    if part.exists() else ""))
    digest = sha256_of(part)
    if expected and verify:
        if digest != expected:
            part.unlink(missing_ok=True)
            if not remote.sha256:
                hint = (f"if the file at the source has really changed, delete its line in "
                        f"{folder / SUMS_FILE} (or pass verify=False / --no-verify)")
            else:
                hint = ("if it persists the file at the source has changed (pass "
                        "verify=False / --no-verify to keep it anyway)")
            raise DownloadError(
                f"{remote.name}: SHA-256 mismatch: got {digest}, expected {expected} "
                f"({origin}); the download was deleted. Run again; {hint}")
        _say(progress, f"{remote.name}: SHA-256 verified"
                       + ("" if remote.sha256 else f" ({origin})"))
    elif not expected:
        warnings.warn(f"{remote.name}: no published checksum is known; its SHA-256 is {digest}, "
                      f"recorded in {folder / SUMS_FILE}: later downloads of this file are "
                      "verified against it (compare it with a trusted copy)",
                      ChecksumWarning, stacklevel=2)
    else:
        warnings.warn(f"{remote.name}: verification was off; its SHA-256 is {digest}, not "
                      f"checked against {expected} ({origin}), and is now the one recorded in "
                      f"{folder / SUMS_FILE}", ChecksumWarning, stacklevel=2)
    os.replace(part, final)
    _record_sum(folder, remote.name, digest)
    return final


def _record_sum(folder: Path, name: str, digest: str) -> None:
    sums = folder / SUMS_FILE
    lines = []
    if sums.exists():
        lines = [line for line in sums.read_text().splitlines()
                 if line.strip() and line.split(None, 1)[-1].lstrip("*") != name]
    lines.append(f"{digest}  {name}")
    tmp = sums.with_name(SUMS_FILE + ".tmp")
    tmp.write_text("\n".join(sorted(lines, key=lambda x: x.split(None, 1)[-1])) + "\n")
    os.replace(tmp, sums)


def unpack_zip(archive: str | Path, into: str | Path, *, force: bool = False) -> list[str]:
    """Unpack a zip archive into ``into``; refuses members outside it. Returns the top-level
    entries. A marker file records the archive digest, so unpacking is done once."""
    archive, into = Path(archive), Path(into)
    marker = into / f".{archive.name}.unpacked"
    digest = sha256_of(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [m for m in zf.infolist() if not m.is_dir()]
            top = sorted({PurePosixPath(m.filename).parts[0] for m in names})
            if marker.exists() and marker.read_text().strip() == digest and not force:
                return top
            for member in names:
                parts = PurePosixPath(member.filename).parts
                if member.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                    raise DownloadError(f"{archive}: refusing member {member.filename!r} "
                                        "outside the destination folder")
            tmp = into / f".{archive.name}.unpacking"
            shutil.rmtree(tmp, ignore_errors=True)
            zf.extractall(tmp, members=names)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive}: not a zip archive ({err}); delete it and run "
                            "again") from None
    for entry in top:
        target = into / entry
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(tmp / entry, target)
    shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(digest + "\n")
    return top


def download(name: str, dest: str | Path = "data", *, force: bool = False, verify: bool = True,
             timeout: float = 60.0, sources: Mapping[str, Source] | None = None,
             progress: Callable[[str], None] | None = None) -> Path:
    """Fetch the source ``name`` into ``dest/<name>/`` and return the folder to read.

    Resumes partial files, verifies SHA-256 sums, published or recorded at a file's first
    download (``verify=False`` keeps a file whose sum differs), warns (``ChecksumWarning``)
    when a file without a published sum is first recorded, renames a file into place only
    when complete, and unpacks archives. ``force`` downloads again. ``progress``
    receives one line per step (the CLI passes ``typer.echo``)."""
    table = list_sources(sources)
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DownloadError(f"no download for {name!r}{hint} (available: "
                            f"{', '.join(sorted(table))}; NYT, BGC and Reuters-21578 are "
                            "obtained by hand, see their dataset cards)")
    source = table[name]
    folder = Path(dest) / source.name
    _say(progress, f"{source.title}\n  from {source.homepage}\n  licence: {source.licence}")
    for remote in source.files:
        path = fetch(remote, folder, force=force, verify=verify, timeout=timeout,
                     progress=progress)
        if remote.unpack:
            entries = unpack_zip(path, folder, force=force)
            _say(progress, f"{remote.name}: unpacked {', '.join(entries)}")
    for note in source.notes:
        _say(progress, note)
    target = folder / source.read_from
    _say(progress, f"done: hmtc-bench data info {target}")
    return target


__all__ = ["download", "fetch", "unpack_zip", "list_sources", "sha256_of", "read_sums", "SOURCES",
           "Source", "RemoteFile", "DownloadError", "ChecksumWarning", "SUMS_FILE"]
