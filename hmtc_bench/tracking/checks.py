"""Checks of a store before any work: reachable, writable, not corrupt, the right schema.

Each failure is a ``StoreError`` of one line naming the URI (or the file), raised before any
data is loaded or a model fitted.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from hmtc_bench.errors import StoreError

SQLITE = "sqlite:///"
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
HTTP_SCHEMES = ("http", "https")
HEALTH_TIMEOUT = 5.0  # seconds to wait for a tracking server's /health


def scheme_of(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def check_uri(uri: str, write: bool = True) -> None:
    """Refuse what cannot be a store before trying to open it (``write``: to write in)."""
    scheme = scheme_of(uri)
    if scheme not in DATABASE_SCHEMES + HTTP_SCHEMES + ("databricks",):
        known = ", ".join(f"{s}://" for s in DATABASE_SCHEMES + HTTP_SCHEMES)
        raise StoreError(f"tracking URI {uri!r}: unknown scheme {scheme or '(none)'!r}; "
                         f"use one of {known} (e.g. sqlite:///results/mlflow.db)")
    if scheme == "sqlite":
        if sqlite_path(uri) is None:
            raise StoreError(f"tracking URI {uri!r}: an sqlite store is sqlite:///PATH "
                             "(three slashes, then the file's path)")
        check_sqlite_file(uri, write)
    elif scheme in HTTP_SCHEMES:
        check_server(uri)


def check_sqlite_file(uri: str, write: bool = True) -> None:
    """The database file: its folder creatable and writable; if it exists, a readable
    SQLite database (not empty, not corrupt) holding an MLflow schema, and writable.
    Without ``write``, only that it exists and can be read."""
    path = sqlite_path(uri)
    if not write:
        if not path.is_file():
            raise StoreError(f"store {uri}: no such database file {path}")
        _check_database(uri, path, os.R_OK)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"store {uri}: cannot create the folder {path.parent} "
                         f"({err.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(f"store {uri}: the folder {path.parent} is not writable "
                         "(sqlite writes its journal beside the database)")
    if not path.exists():
        return
    if path.is_dir():
        raise StoreError(f"store {uri}: {path} is a folder, not a database file")
    _check_database(uri, path, os.R_OK | os.W_OK)


def _check_database(uri: str, path: Path, access: int) -> None:
    if path.stat().st_size == 0:
        raise StoreError(f"store {uri}: {path} is an empty file, not an MLflow store "
                         "(delete it to start a new store there)")
    if not os.access(path, access):
        wanted = "readable and writable" if access & os.W_OK else "readable"
        raise StoreError(f"store {uri}: {path} is not {wanted}")
    with path.open("rb") as handle:
        header = handle.read(16)
    if header != b"SQLite format 3\x00":
        raise StoreError(f"store {uri}: {path} is not an SQLite database")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "alembic_version" in tables and "runs" in tables:
                db.execute("SELECT count(*) FROM runs").fetchone()
                check = db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise StoreError(f"store {uri}: {path} is corrupt ({check})")
    except sqlite3.DatabaseError as err:
        raise StoreError(f"store {uri}: {path} is corrupt ({err})") from None
    if not {"alembic_version", "runs", "experiments"} <= tables:
        raise StoreError(f"store {uri}: {path} is an SQLite database but not an MLflow "
                         "store (no MLflow tables)")


def check_server(uri: str) -> None:
    """A tracking server answers its /health endpoint within a few seconds."""
    url = uri.rstrip("/") + "/health"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HEALTH_TIMEOUT) as response:
            if response.status != 200:
                raise StoreError(f"store {uri}: {url} answered {response.status}")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise StoreError(f"store {uri}: the tracking server is unreachable ({reason}); "
                         "start it (mlflow server ...) or choose another --tracking-uri") from None
