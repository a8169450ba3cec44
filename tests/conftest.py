import gzip
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Datasets built at first use go to one cache per test session, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("HMTC_BENCH_CACHE", str(cache))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests' tiny networks gain nothing from a second thread and lose a lot when the
    other core is busy (OpenMP threads waiting for each other: 0.8 s became 44 s)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic():
    from hmtc_bench.data.synthetic import generate
    return generate()


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_gz(path: Path, text: str) -> Path:
    """``text`` gzip-compressed into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return path


def labels_by_id(data, split: str = "train") -> dict:
    """Document id -> its label tuple, for one split of a Dataset."""
    split = getattr(data, split)
    return dict(zip(split.ids, map(tuple, data.hierarchy.decode(split.Y))))


def all_labels(data) -> dict:
    """Document id -> its label tuple, over every split."""
    out = {}
    for name in ("train", "dev", "test"):
        out.update(labels_by_id(data, name))
    return out


os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
