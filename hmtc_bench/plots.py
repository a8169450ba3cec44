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


PALETTE = "tab20"
MAX_WIDTH = 12.5  # inches: 1,125 px at the report's 90 dpi, inside a 1,200 px page


def method_colours(methods) -> dict:
    """One colour per method name, the same in every figure (methods in sorted order; the
    ten distinct hues of tab20 first, then their lighter shades)."""
    plt = _pyplot()
    cmap = plt.get_cmap(PALETTE)
    order = list(range(0, cmap.N, 2)) + list(range(1, cmap.N, 2))
    return {m: cmap(order[i % len(order)]) for i, m in enumerate(sorted(set(methods)))}


def level_f1_figure(groups: list[tuple[str, dict]], title: str | None = None,
                    ylabel: str = "F1", colours: dict | None = None,
                    hatched=()):
    """Per-level F1 bars: for each level, one bar per entry of ``groups`` (its label and a
    dict level -> value or (mean, std)), error bars where a std is given. ``colours``: label
    -> colour (default: one per label); labels in ``hatched`` are drawn hatched. The legend
    sits beside the axes; the figure is never wider than ``MAX_WIDTH``."""
    plt = _pyplot()
    levels = sorted({level for _, values in groups for level in values})
    colours = colours or method_colours(label for label, _ in groups)
    n = max(1, len(groups))
    width = min(MAX_WIDTH, 4.5 + 0.18 * n * max(1, len(levels)))
    fig, ax = plt.subplots(figsize=(width, 3.4))
    bar = 0.8 / n
    for i, (label, values) in enumerate(groups):
        pairs = [_pair(values.get(level, 0.0)) for level in levels]
        ax.bar([k + i * bar for k in range(len(levels))], [v[0] for v in pairs], bar,
               yerr=[v[1] for v in pairs], label=label, color=colours.get(label),
               hatch="//" if label in hatched else None, edgecolor="white", linewidth=0.3)
    ax.set_xticks([k + bar * (n - 1) / 2 for k in range(len(levels))])
    ax.set_xticklabels([f"level {level}" for level in levels], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=9)
    if groups and levels:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                  ncol=1 if n <= 14 else 2)
    fig.tight_layout()
    return fig


def threshold_figure(curves: list[tuple[str, dict]], title: str | None = None,
                     colours: dict | None = None):
    """Micro-F1 against the decision threshold: one line per entry of ``curves`` (its label
    and a dict threshold -> micro-F1), 0.5 marked."""
    plt = _pyplot()
    colours = colours or method_colours(label for label, _ in curves)
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, 7.5), 3.4))
    for label, curve in curves:
        points = sorted((float(t), v) for t, v in curve.items())
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label,
                color=colours.get(label), linewidth=1.2)
    ax.axvline(0.5, color="#999", linewidth=0.8, linestyle="--")
    ax.set_xlabel("threshold")
    ax.set_ylabel("micro-F1 (test)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=9)
    if curves:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def speed_figure(points: list[tuple[str, float, float]], colours: dict | None = None,
                 marked=()):
    """macro-F1 against fit seconds (log): one point per (label, seconds, F1), named in a
    legend beside the axes (no labels over the points); labels in ``marked`` as triangles."""
    plt = _pyplot()
    colours = colours or method_colours(label for label, _, _ in points)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for label, seconds, score in points:
        ax.scatter(seconds, score, color=colours.get(label), label=label, s=28,
                   marker="^" if label in marked else "o")
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds (log)")
    ax.set_ylabel("macro-F1")
    if points:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                  ncol=1 if len(points) <= 14 else 2)
    fig.tight_layout()
    return fig


def cd_figure(names: list[str], ranks: list[float], cd: float, title: str = ""):
    """A critical-difference diagram (Demšar 2006): methods on an axis of average ranks
    (1 = best, on the left), the critical difference as a bar, and a thick line under each
    group of methods whose ranks differ by less than it (not significantly different)."""
    plt = _pyplot()
    k = len(names)
    order = sorted(range(k), key=lambda i: ranks[i])
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, 7.0), 1.2 + 0.28 * k))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(k + 1), 2.2)
    ax.axhline(0, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.15], color="black", linewidth=1)
        ax.text(r, 0.3, str(r), ha="center", fontsize=8)
    ax.plot([1, 1 + cd], [1.4, 1.4], color="black", linewidth=2)
    ax.text(1 + cd / 2, 1.6, f"CD = {cd:.2f}", ha="center", fontsize=8)
    for row, i in enumerate(order):
        y = -(row + 1) * 0.8
        ax.plot([ranks[i], ranks[i]], [0, y], color="grey", linewidth=0.8)
        left = row < (k + 1) // 2
        x_text = 0.55 if left else k + 0.45
        ax.plot([ranks[i], x_text], [y, y], color="grey", linewidth=0.8)
        ax.text(x_text, y, f" {names[i]} ({ranks[i]:.2f}) ", va="center", fontsize=8,
                ha="left" if left else "right")
    cliques, level = [], 0
    for a in range(k):
        b = max(j for j in range(a, k) if ranks[order[j]] - ranks[order[a]] < cd)
        if b > a and not any(a >= s and b <= e for s, e in cliques):
            cliques.append((a, b))
    for s, e in cliques:
        level += 1
        ax.plot([ranks[order[s]] - 0.03, ranks[order[e]] + 0.03], [-0.25 * level] * 2,
                color="black", linewidth=3)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
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
