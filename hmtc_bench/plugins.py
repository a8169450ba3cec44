"""Entry-point plugins: listing reads names without importing; loading reports failures."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from hmtc_bench.errors import HMTCError


class UnknownNameError(HMTCError, ValueError):
    """A method or dataset name that is not registered; the message suggests close names."""


@dataclass(frozen=True)
class Plugin:
    name: str
    value: str  # "module:attribute"
    distribution: str

    def load(self):
        return EntryPoint(self.name, self.value, "").load()


def list_plugins(group: str) -> dict[str, Plugin]:
    """Registered plugins of an entry-point group, by name (nothing is imported)."""
    found = {}
    for ep in entry_points(group=group):
        dist = ep.dist.name if getattr(ep, "dist", None) is not None else "?"
        found.setdefault(ep.name, Plugin(ep.name, ep.value, dist))
    return dict(sorted(found.items()))


def unknown(kind: str, name: str, known) -> UnknownNameError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known))})")
