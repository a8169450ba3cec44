"""The generated part of a results file that also holds a reading by hand: the text between
two markers is replaced, everything around them kept (shared by the report scripts)."""

from __future__ import annotations

from pathlib import Path


def write_section(path, text: str, start: str, end: str, title: str | None = None) -> None:
    """Put ``text`` (which begins with ``start`` and ends with ``end``) in place of the
    marked part of ``path``; a file without the markers gets it appended, a new file
    ``# title`` first when one is given."""
    path = Path(path)
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in current and end in current:
        head, rest = current.split(start, 1)
        current = head + text + rest.split(end, 1)[1]
    elif not current and title:
        current = f"# {title}\n\n{text}\n"
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current, encoding="utf-8")
