"""Progress of the long steps (vectorizing, banks of classifiers, epochs, caches), on stderr.

One helper for every step that can take more than a few seconds:

* ``track(iterable, total, desc, unit=...)`` / ``Progress``: on a terminal a tqdm bar
  (removed when done); when stderr is not a terminal (a log file, a pipe, a test runner)
  plain lines instead, at most one every ``INTERVAL`` seconds plus a last one when the step
  ends, and never a carriage return::

      fitting 103 svm scorers: 40/103 labels, 12 s elapsed, ~19 s left
      fitting 103 svm scorers: 103/103 labels, done in 31 s

  A step that ends within ``INTERVAL`` seconds prints nothing in plain mode (no noise for
  quick steps), unless ``always_end`` is set.
* ``step(desc)``: a line when a step starts and one when it ends, with its duration
  (``  vectorizing 23,149 texts ...`` then ``  vectorized in 4.1 s: 47,236 features``).
* ``quiet()``: a context in which nothing is shown (the runner's and the grid's
  ``quiet=True``); ``enabled()`` says whether progress is shown now. Methods with their own
  switch (the neural ``progress`` parameter) pass it as ``enabled``.

Lines are indented by two spaces, under the runner's ``fitting <method> ...`` line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

INTERVAL = 10.0   # seconds between two plain lines
INDENT = "  "

_QUIET: ContextVar[bool] = ContextVar("hmtc_bench_progress_quiet", default=False)


@contextmanager
def quiet(on: bool = True):
    """Within it (``on`` true), no progress is shown; ``quiet(False)`` shows it again."""
    token = _QUIET.set(bool(on))
    try:
        yield
    finally:
        _QUIET.reset(token)


def enabled() -> bool:
    """Whether progress is shown here (not inside ``quiet()``)."""
    return not _QUIET.get()


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


def _seconds(s: float) -> str:
    if s < 100:
        return f"{s:.0f} s"
    if s < 6000:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class Progress:
    """Progress of ``total`` units of work named ``desc``: ``update(n)``, ``postfix(text)``,
    ``close()`` (or use it as a context manager). Shown as described in the module
    docstring, plain lines every ``interval`` seconds (default ``INTERVAL``);
    ``enabled=False`` (or ``quiet()``) shows nothing."""

    def __init__(self, total: int | None, desc: str, unit: str = "", enabled: bool = True,
                 interval: float | None = None, stream=None, always_end: bool = False):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.interval = INTERVAL if interval is None else interval
        self.always_end = always_end
        self.n = 0
        self.extra = ""
        self.stream = sys.stderr if stream is None else stream
        self.shown = bool(enabled) and not _QUIET.get()
        self.start = self._last = time.perf_counter()
        self._lines = 0
        self._bar = None
        self._closed = False
        if self.shown and is_terminal(self.stream):
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit or "it", leave=False,
                             file=self.stream, dynamic_ncols=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(final=exc_type is None)

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.shown:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._write(self._line(now, final=False))

    def postfix(self, text: str) -> None:
        """Extra text at the end of the bar or line, e.g. ``loss 0.1234``."""
        self.extra = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self, final: bool = True) -> None:
        """The end: the bar removed, or the last plain line (not when ``final`` is false,
        as on an error)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif final and self.shown and (self._lines or self.always_end):
            self._write(self._line(time.perf_counter(), final=True))

    def _line(self, now: float, final: bool) -> str:
        elapsed = now - self.start
        unit = f" {self.unit}" if self.unit else ""
        done = f"{self.n}/{self.total}{unit}" if self.total is not None else f"{self.n}{unit}"
        if final:
            timing = f"done in {_seconds(elapsed)}"
        else:
            timing = f"{_seconds(elapsed)} elapsed"
            if self.total and 0 < self.n < self.total:
                timing += f", ~{_seconds(elapsed * (self.total - self.n) / self.n)} left"
        extra = f", {self.extra}" if self.extra else ""
        return f"{INDENT}{self.desc}: {done}, {timing}{extra}"

    def _write(self, line: str) -> None:
        self._lines += 1
        print(line, file=self.stream, flush=True)


def track(iterable: Iterable, total: int | None = None, desc: str = "", unit: str = "",
          enabled: bool = True, **kwargs) -> Iterator:
    """The items of ``iterable``, with a ``Progress`` advanced by one per item (closed at the
    end, or when the loop is left)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc, unit=unit, enabled=enabled, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update()


@contextmanager
def step(desc: str, done: str | None = None, enabled: bool = True, stream=None):
    """A line ``  <desc> ...`` when the step starts and ``  <done> in X s`` when it ends
    (``done`` defaults to ``desc``; the yielded dict's ``"note"`` is added after the time).
    Nothing on failure, nothing when not ``enabled`` or inside ``quiet()``."""
    shown = enabled and not _QUIET.get()
    stream = sys.stderr if stream is None else stream
    info = {"note": ""}
    if shown:
        print(f"{INDENT}{desc} ...", file=stream, flush=True)
    start = time.perf_counter()
    yield info
    if shown:
        note = f": {info['note']}" if info["note"] else ""
        print(f"{INDENT}{done or desc} in {time.perf_counter() - start:.1f} s{note}",
              file=stream, flush=True)


def say(message: str, enabled: bool = True, stream=None) -> None:
    """One line of progress (indented), unless not ``enabled`` or inside ``quiet()``."""
    if enabled and not _QUIET.get():
        print(f"{INDENT}{message}", file=sys.stderr if stream is None else stream, flush=True)


__all__ = ["INTERVAL", "Progress", "enabled", "is_terminal", "quiet", "say", "step", "track"]
