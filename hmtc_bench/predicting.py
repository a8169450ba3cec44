"""Predicting labels for new texts with a fitted or saved method: the input files read as a
stream, the predictions described per text, and the output written whole or not at all.

Input (``read_inputs``), by the file's name:

* ``-``: standard input, one text per line;
* ``*.csv``: a header with a ``text`` column (and optionally ``id``);
* ``*.txt``: one text per line;
* anything else: JSON lines, one object per line with ``text`` (and optionally ``id``);
  blank lines are skipped.

A line that is not UTF-8, not JSON, not an object, without a ``text`` string, or with an
empty text raises ``InputError`` naming the file and line. The id of a text is its ``id``
field when given, else its line number.

Output (``describe``), one JSON object per text: ``id``; ``labels`` (the decoded label set,
in the hierarchy's label order); ``paths`` (for each predicted label without a predicted
child, its labels from the top level down); ``levels`` (the predicted labels of each
level, level 1 first); ``scores`` (label -> score of every predicted label); and with
``top_k`` > 0, ``top``: the k best-scored labels as [label, score], best first, predicted
or not.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hmtc_bench import progress
from hmtc_bench.errors import HMTCError, ParameterError
from hmtc_bench.evaluation.decoding import (DEFAULT_POLICY, DEFAULT_THRESHOLD, FITTED,
                                            check_policy, fitted_decoder, parse_policy)

BATCH_SIZE = 256       # texts predicted together
LONG_INPUT = 1 << 20   # bytes: inputs larger than this show their progress


class InputError(HMTCError):
    """An input text that cannot be predicted (names the file and line)."""


# ---------------------------------------------------------------------- input
def read_inputs(path: str, stream=None) -> Iterator[tuple[object, str]]:
    """(id, text) for every text of the input ``path`` (``-``: ``stream`` or standard
    input), read one line at a time."""
    if path == "-":
        yield from _plain_lines(stream if stream is not None else sys.stdin.buffer, "<stdin>")
        return
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such input file")
    with open(file, "rb") as handle:
        if file.suffix.lower() == ".csv":
            yield from _csv_rows(handle, path)
        elif file.suffix.lower() == ".txt":
            yield from _plain_lines(handle, path)
        else:
            yield from _json_lines(handle, path)


def _decoded(raw: bytes, where: str, number: int) -> str:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")   # a BOM is not text
    except UnicodeDecodeError as err:
        raise InputError(f"{where}, line {number}: not UTF-8 (byte 0x{raw[err.start]:02x} at "
                         f"column {err.start + 1})") from None


def _checked(text, where: str, number: int) -> str:
    if not isinstance(text, str):
        raise InputError(f"{where}, line {number}: \"text\" is {type(text).__name__}, "
                         "not a string")
    if not text.strip():
        raise InputError(f"{where}, line {number}: empty text")
    return text


def _binary(stream):
    return getattr(stream, "buffer", stream) if isinstance(stream, io.TextIOBase) else stream


def _plain_lines(stream, where: str):
    for number, raw in enumerate(_binary(stream), 1):
        text = _decoded(raw, where, number).rstrip("\r\n")
        yield number, _checked(text, where, number)


def _json_lines(stream, where: str):
    for number, raw in enumerate(stream, 1):
        line = _decoded(raw, where, number)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}, line {number}: not JSON ({err.msg}, column "
                             f"{err.colno})") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}, line {number}: a JSON {type(row).__name__}, not an "
                             "object with a \"text\"")
        if "text" not in row:
            raise InputError(f"{where}, line {number}: no \"text\" field")
        yield row.get("id", number), _checked(row["text"], where, number)


def _csv_rows(stream, where: str):
    lines = (_decoded(raw, where, number) for number, raw in enumerate(stream, 1))
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or "text" not in reader.fieldnames:
        raise InputError(f"{where}, line 1: no \"text\" column in the header "
                         f"({', '.join(reader.fieldnames or []) or 'empty'})")
    for row in reader:
        number = reader.line_num
        yield row.get("id") or number, _checked(row["text"], where, number)


# ---------------------------------------------------------------------- prediction
def check_decoding(policy: str, threshold: float, top_k: int = 0,
                   hierarchy=None, decode_params: dict | None = None) -> None:
    """Refuse, before any text is read, a decoding the model (of this ``hierarchy``, when
    known) cannot do, in one line naming the option: an unknown policy, one fitted on dev
    that the model carries no fitted thresholds for (``decode_params``: what its decoding
    fitted, saved with it by ``hmtc-bench train --decode tuned`` or a logged run; checked
    once the model, its ``hierarchy``, is known), one the hierarchy cannot take
    (``mandatory-leaf`` on a DAG), a threshold outside [0, 1], a ``top_k`` beyond the
    labels."""
    n_labels = None if hierarchy is None else len(hierarchy)
    try:
        name, _ = parse_policy(policy)
    except ParameterError as err:
        raise ParameterError(f"--decode: {err}") from None
    if name in FITTED and hierarchy is not None and not decode_params:
        raise ParameterError(f"--decode {policy!r}: fitted on a dev split, and this model "
                             f"carries no thresholds fitted for it (save one with "
                             f"`hmtc-bench train --decode {policy}`); or use a fixed policy")
    if hierarchy is not None:
        try:
            check_policy(policy, hierarchy)
        except ParameterError as err:
            raise ParameterError(f"--decode: {err} (the model's hierarchy)") from None
        if name in FITTED:
            try:
                fitted_decoder(policy, hierarchy, decode_params, threshold)
            except ValueError as err:
                raise ParameterError(f"--decode: {err} (the model's saved decoding)") \
                    from None
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"--threshold {threshold}: must be between 0 and 1")
    if top_k < 0 or (n_labels is not None and top_k > n_labels):
        raise ParameterError(f"--top-k {top_k}: the model has {n_labels} labels; "
                             f"choose 0 to {n_labels}" if top_k > 0 else
                             f"--top-k {top_k}: must be at least 0")


def describe(proba: np.ndarray, predicted, hierarchy, ids, top_k: int = 0) -> list[dict]:
    """One output object per row (see the module docstring)."""
    labels = hierarchy.labels
    levels = hierarchy.levels
    predicted = predicted.tocsr()
    out = []
    for i, identifier in enumerate(ids):
        columns = predicted.indices[predicted.indptr[i]:predicted.indptr[i + 1]]
        columns = np.sort(columns)
        chosen = {labels[j] for j in columns}
        row = {"id": identifier, "labels": [labels[j] for j in columns]}
        ends = [labels[j] for j in columns
                if not any(c in chosen for c in hierarchy.children(labels[j]))]
        row["paths"] = [_path(label, chosen, hierarchy) for label in ends]
        depth = int(levels[columns].max()) if len(columns) else 0
        row["levels"] = [[labels[j] for j in columns if levels[j] == level]
                         for level in range(1, depth + 1)]
        row["scores"] = {labels[j]: float(proba[i, j]) for j in columns}
        if top_k:
            best = np.argsort(-proba[i], kind="stable")[:top_k]
            row["top"] = [[labels[j], float(proba[i, j])] for j in best]
        out.append(row)
    return out


def _path(label: str, chosen: set, hierarchy) -> list[str]:
    path = [label]
    while True:
        parents = [p for p in hierarchy.parents(path[-1]) if p != hierarchy.root]
        if not parents:
            return path[::-1]
        path.append(next((p for p in parents if p in chosen), parents[0]))


def predict_rows(method, rows: Iterable[tuple[object, str]], policy: str = DEFAULT_POLICY,
                 threshold: float = DEFAULT_THRESHOLD, top_k: int = 0,
                 batch_size: int = BATCH_SIZE,
                 decode_params: dict | None = None) -> Iterator[dict]:
    """The output objects of (id, text) ``rows``, predicted ``batch_size`` at a time
    (``decode_params``: the thresholds of a policy fitted on dev, see ``check_decoding``)."""
    check_decoding(policy, threshold, top_k, method.hierarchy_, decode_params)
    decoder = fitted_decoder(policy, method.hierarchy_, decode_params, threshold)
    batch: list = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            yield from _predict_batch(method, batch, decoder, top_k)
            batch = []
    if batch:
        yield from _predict_batch(method, batch, decoder, top_k)


def _predict_batch(method, batch, decoder, top_k):
    ids = [identifier for identifier, _ in batch]
    with progress.quiet():
        proba = method.predict_proba([text for _, text in batch])
    return describe(proba, decoder(proba), method.hierarchy_, ids, top_k)


# ---------------------------------------------------------------------- output
@contextmanager
def atomic_output(path: str | None):
    """A text stream for the output ``path`` (``None`` or ``-``: standard output): a
    temporary file beside it, renamed to ``path`` only when the block ends without error
    and removed otherwise, so ``path`` never holds a partial output."""
    if path in (None, "-"):
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise ParameterError(f"--output {path}: is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yield stream
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def predict_file(method, input_path: str, output_path: str | None, policy: str,
                 threshold: float, top_k: int = 0, batch_size: int = BATCH_SIZE,
                 stdin=None, decode_params: dict | None = None) -> int:
    """Predict every text of ``input_path`` into JSON lines at ``output_path``; returns
    the number of texts. Memory stays bounded by ``batch_size`` whatever the input size."""
    check_decoding(policy, threshold, top_k, method.hierarchy_, decode_params)
    long = input_path != "-" and Path(input_path).stat().st_size >= LONG_INPUT
    count = 0
    with atomic_output(output_path) as out, progress.Progress(
            _count_lines(input_path) if long else None, f"predicting {input_path}",
            unit="texts", enabled=long) as bar:
        for row in predict_rows(method, read_inputs(input_path, stdin), policy, threshold,
                                top_k, batch_size, decode_params):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            bar.update(1)
    return count


def _count_lines(path: str) -> int:
    """Lines of a file (about its texts, for the progress's total), read in blocks."""
    lines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
    return lines


def readable(row: dict) -> str:
    """One prediction as lines for a person: the paths, then the scores."""
    lines = []
    for path in row["paths"] or [[]]:
        shown = " > ".join(f"{label} ({row['scores'][label]:.3f})" for label in path)
        lines.append(shown or "(no label)")
    for label, score in row.get("top", []):
        lines.append(f"  {score:.3f}  {label}")
    return "\n".join(lines)


__all__ = ["BATCH_SIZE", "InputError", "atomic_output", "check_decoding", "describe",
           "predict_file", "predict_rows", "read_inputs", "readable"]
