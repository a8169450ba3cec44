"""The figures of runs and leaderboards (the only module drawing with matplotlib)."""

from __future__ import annotations

import base64
import io


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def levels_of(keys, prefix: str = "macro_f1_level_") -> list[int]:
    """The levels named by metric keys such as ``macro_f1_level_3``, ascending."""
    return sorted({int(k.rsplit("_", 1)[1]) for k in keys if k.startswith(prefix)})


def level_f1_figure(groups: list[tuple[str, dict]], title: str | None = None,
                    ylabel: str = "F1"):
    """Per-level F1 bars: one group of bars per entry of ``groups`` (its label and a dict
    level -> value or (mean, std)), one bar per level, error bars where a std is given."""
    plt = _pyplot()
    levels = sorted({level for _, values in groups for level in values})
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(groups)), 3.2))
    width = 0.8 / max(1, len(levels))
    for j, level in enumerate(levels):
        values = [_pair(values.get(level, 0.0)) for _, values in groups]
        ax.bar([i + j * width for i in range(len(groups))], [v[0] for v in values], width,
               yerr=[v[1] for v in values], label=f"level {level}")
    ax.set_xticks([i + width * (len(levels) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels([label for label, _ in groups], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=9)
    if levels:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def speed_figure(points: list[tuple[str, float, float]]):
    """macro-F1 against fit seconds (log), one labelled point per (label, seconds, F1)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, seconds, score in points:
        ax.scatter(seconds, score)
        ax.annotate(label, (seconds, score), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds (log)")
    ax.set_ylabel("macro-F1")
    fig.tight_layout()
    return fig


def _pair(value) -> tuple[float, float]:
    return tuple(value) if isinstance(value, (tuple, list)) else (float(value), 0.0)


def save_png(fig, path) -> None:
    plt = _pyplot()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def png_data_uri(fig) -> str:
    """The figure as an embedded PNG (``data:`` URI); the same figure gives the same bytes."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
