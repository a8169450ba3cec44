"""Reliability battery of the neural methods' checkpoints and training: each case is run
for real (msml on the tiny random encoder and the small synthetic data, seconds each) and
reported as ``{case, command, expected, seen, ok}``.

    python benchmarks/reliability_neural.py          # a table; exit 1 if a case fails

``neural_battery()`` returns the list (for a reliability report).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

TINY = "MSML(**MSML.get_test_params(), epochs=3, patience=5"


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _error(call) -> str:
    """``Type: message`` of what ``call()`` raises, or ``no error``."""
    try:
        call()
    except Exception as err:  # the battery reports whatever happens
        return f"{type(err).__name__}: {err}".splitlines()[0]
    return "no error"


class _Cases:
    """The data, a reference fit and the checkpoints the cases start from."""

    def __init__(self, root: Path):
        from hmtc_bench.methods.neural.msml import MSML
        from hmtc_bench.testing import _small_data
        self.MSML = MSML
        self.root = root
        self.data = _small_data()
        self.reference = self.fit(self.tiny()).predict_proba(self.data.test.texts)
        self.interrupted = root / "interrupted"
        self._interrupt(self.interrupted)
        self.finished = root / "finished"
        self.fit(self.tiny(checkpoint_dir=str(self.finished)))

    def tiny(self, **params):
        return self.MSML(**{**self.MSML.get_test_params(), "epochs": 3, "patience": 5,
                            **params})

    def fit(self, method, drop: int = 0):
        d = self.data
        return method.fit(d.train.texts[drop:], d.train.Y[drop:], d.hierarchy,
                          dev=(d.dev.texts, d.dev.Y))

    def _interrupt(self, folder: Path) -> None:
        from hmtc_bench.methods.neural import checkpoints
        original = checkpoints.Checkpoint.save_epoch

        def save_epoch(self, network, optimizer, state, improved):
            original(self, network, optimizer, state, improved)
            if state["epoch"] == 1:
                raise KeyboardInterrupt("simulated interruption after epoch 1")

        checkpoints.Checkpoint.save_epoch = save_epoch
        try:
            with contextlib.suppress(KeyboardInterrupt):
                self.fit(self.tiny(checkpoint_dir=str(folder)))
        finally:
            checkpoints.Checkpoint.save_epoch = original

    def copy(self, source: Path, name: str) -> Path:
        return Path(shutil.copytree(source, self.root / name))

    # ------------------------------------------------------------------ cases
    def other_data(self) -> dict:
        folder = self.copy(self.interrupted, "other-data")
        before = _snapshot(folder)
        seen = _error(lambda: self.fit(self.tiny(checkpoint_dir=str(folder), resume=True),
                                       drop=30))
        untouched = _snapshot(folder) == before
        return {"case": "resume on other data (same hierarchy)",
                "command": f"{TINY}, checkpoint_dir=C, resume=True).fit(train[30:], ...)",
                "expected": "CheckpointError naming C: trained on other data; C untouched",
                "seen": f"{seen}; folder {'untouched' if untouched else 'CHANGED'}",
                "ok": seen.startswith(f"CheckpointError: cannot resume from {folder}:")
                and "trained on other data" in seen and untouched}

    def damaged(self, case: str, source: Path, name: str, damage, load: str,
                expected: str) -> dict:
        folder = self.copy(source, case.split()[0] + "-" + name)
        damage(folder / name)
        before = _snapshot(folder)
        if load == "from_checkpoint":
            method = None
            seen = _error(lambda: self.MSML.from_checkpoint(folder))
        else:
            method = self.tiny(checkpoint_dir=str(folder), resume=True)
            seen = _error(lambda: self.fit(method))
        unfitted = method is None or not hasattr(method, "network_")
        untouched = _snapshot(folder) == before
        command = ("MSML.from_checkpoint(C)" if load == "from_checkpoint"
                   else f"{TINY}, checkpoint_dir=C, resume=True).fit(...)")
        return {"case": f"{case}: {name}", "command": f"{command}  # C/{name} {case}",
                "expected": f"CheckpointError: {folder / name}: {expected}; nothing loaded",
                "seen": seen,
                "ok": seen.startswith(f"CheckpointError: {folder / name}: {expected}")
                and unfitted and untouched}

    def nan_loss(self) -> dict:
        from hmtc_bench.runner import run
        from hmtc_bench.tracking import Store
        store = Store(f"sqlite:///{self.root / 'store.db'}")
        params = {**self.MSML.get_test_params(), "lr_encoder": 1e30, "lr_head": 1e30}
        seen = _error(lambda: run("msml", self.data, params=params, store=store, quiet=True))
        statuses = [r.status for r in store.records()]
        return {"case": "NaN loss (learning rate 1e30)",
                "command": "hmtc_bench.runner.run('msml', data, params={..., 'lr_head': 1e30, "
                           "'lr_encoder': 1e30}, store=Store(sqlite))",
                "expected": "TrainingError at epoch 1 (step, hint); one record, failed",
                "seen": f"{seen}; records {statuses}",
                "ok": seen.startswith("TrainingError: MSML: non-finite training loss")
                and "epoch 1, step" in seen and statuses == ["failed"]}

    def normal_resume(self) -> dict:
        folder = self.copy(self.interrupted, "resume")
        method = self.fit(self.tiny(checkpoint_dir=str(folder), resume=True))
        epochs = [r["epoch"] for r in method.train_state_["history"]]
        diff = float(np.abs(method.predict_proba(self.data.test.texts) - self.reference).max())
        return {"case": "normal resume after epoch 1 of 3",
                "command": f"{TINY}, checkpoint_dir=C, resume=True).fit(...)",
                "expected": "epochs [1, 2, 3]; probabilities of an uninterrupted fit (1e-6)",
                "seen": f"epochs {epochs}; max difference {diff:.2g}",
                "ok": epochs == [1, 2, 3] and diff <= 1e-6}

    def module_moved(self) -> dict:
        folder = self.copy(self.finished, "moved")
        config = json.loads((folder / "config.json").read_text())
        config["method"] = "moved.module:MSML"
        (folder / "config.json").write_text(json.dumps(config))
        try:
            loaded = self.MSML.from_checkpoint(folder)
            diff = float(np.abs(loaded.predict_proba(self.data.test.texts)
                                - self.reference).max())
            seen = f"{type(loaded).__name__} loaded; max difference {diff:.2g}"
            ok = type(loaded) is self.MSML and diff <= 1e-6
        except Exception as err:
            seen, ok = f"{type(err).__name__}: {err}".splitlines()[0], False
        return {"case": "module moved (method path gone, registered name 'msml' kept)",
                "command": "MSML.from_checkpoint(C)  # config.json method: moved.module:MSML",
                "expected": "loaded through the registry; same probabilities",
                "seen": seen, "ok": ok}


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def neural_battery() -> list[dict]:
    """Run every case; one dict per case: ``case``, ``command``, ``expected``, ``seen``,
    ``ok``."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="hmtc-reliability-") as tmp:
            cases = _Cases(Path(tmp))
            mismatch = "SHA-256 checksum mismatch"
            results = [
                cases.other_data(),
                cases.damaged("corrupted (a flipped byte)", cases.finished,
                              "model.safetensors", _flip, "from_checkpoint", mismatch),
                cases.damaged("corrupted (a flipped byte)", cases.interrupted,
                              "last.safetensors", _flip, "resume", mismatch),
                cases.damaged("truncated", cases.interrupted, "optimizer.safetensors",
                              _truncate, "resume", mismatch),
                cases.damaged("missing", cases.interrupted, "last.safetensors",
                              Path.unlink, "resume", "missing from the checkpoint"),
                cases.nan_loss(),
                cases.normal_resume(),
                cases.module_moved(),
            ]
    finally:
        torch.set_num_threads(threads)
    return results


if __name__ == "__main__":
    from reliability import print_cases
    sys.exit(print_cases(neural_battery()))
