"""Charts for the bulletin as SVG (matplotlib, Agg): text is drawn as paths, so a chart needs no font to view.

A suppressed value is drawn as no bar with a "—" label: its length would be the number we must not publish.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.ticker import PercentFormatter

from bureau.bulletin.cjk_font import CJK_FAMILY, cjk_font_known

POSITIVE, NEGATIVE, NEUTRAL = "#2b6cb0", "#c53030", "#4a5568"


@cache
def _style() -> None:
    plt.rcParams.update({
        "svg.fonttype": "path",
        "font.family": "sans-serif",
        "font.sans-serif": [CJK_FAMILY, "DejaVu Sans"] if cjk_font_known() else ["DejaVu Sans"],
        "axes.unicode_minus": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "font.size": 10,
    })


def _svg(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], fmt: Callable[[float], str],
              *, diverging: bool = False) -> bytes:
    """Horizontal bars, largest first as given; ``None`` values get a "—" and no bar."""
    _style()
    height = max(2.2, 0.32 * len(labels) + 0.9)
    fig, ax = plt.subplots(figsize=(7.2, height))
    positions = list(range(len(labels)))[::-1]
    drawn = [0.0 if v is None else v for v in values]
    colours = [NEUTRAL if not diverging else (POSITIVE if v >= 0 else NEGATIVE) for v in drawn]
    ax.barh(positions, drawn, color=colours, height=0.65)
    span = max((abs(v) for v in drawn), default=1.0) or 1.0
    for y, value in zip(positions, values, strict=True):
        text = "—" if value is None else fmt(value)
        x = 0.0 if value is None else value
        ax.text(x + (0.01 * span if x >= 0 else -0.01 * span), y, text, va="center",
                ha="left" if x >= 0 else "right", fontsize=9)
    ax.set_yticks(positions, labels)
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    if diverging:
        ax.axvline(0, color="#718096", linewidth=0.8)
        ax.set_xlim(-span * 1.3, span * 1.3)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        ax.set_xlim(0, span * 1.2)
    ax.tick_params(axis="x", labelsize=8)
    return _svg(fig)


def trend_chart(title: str, months: Sequence[date], values: Sequence[float | None],
                fmt: Callable[[float], str]) -> bytes:
    """A line over every month, placed by its date (not evenly by the published ones); a month not published or
    suppressed is NaN, so the line breaks there instead of running straight across. The y-axis starts at zero,
    so the line's height is proportional to output."""
    _style()
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    ys = [float("nan") if v is None else v for v in values]
    xs = mdates.date2num(list(months))
    ax.plot(xs, ys, marker="o", color=POSITIVE)
    for x, v in zip(xs, values, strict=True):
        if v is not None:
            ax.annotate(fmt(v), (x, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    top = max((v for v in values if v is not None), default=1.0)
    ax.set_ylim(0, top * 1.18)
    ax.xaxis.set_major_locator(mdates.MonthLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _svg(fig)
