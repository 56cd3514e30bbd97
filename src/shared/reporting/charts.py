"""PNG charts for reports, drawn with matplotlib's object API (no pyplot state, Agg only).

Every run writes a report, so charts must be cheap: one axes per chart, no tight_layout, 80 dpi.
Score distributions are one heat strip per metric (each scaled to its own range) rather than a
grid of histograms, which took seconds to lay out.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DPI = 80
BINS = 20


def available() -> bool:
    """Charts are a bonus: without matplotlib, or with EVALMON_REPORT_CHARTS=0 (a host where nobody
    opens report.html, a test suite), the tables still carry every number."""
    if os.environ.get("EVALMON_REPORT_CHARTS", "1").strip().lower() in ("0", "false", "no"):
        return False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def distribution_strips(names: Sequence[str], samples: Sequence[Sequence[float]]) -> bytes:
    """One row per metric: how its scores spread over its own min..max (darker: more items)."""
    figure = _figure(8, 0.45 * len(names) + 1.0)
    axis = figure.add_axes((0.32, 0.9 / (len(names) + 2.2), 0.64, 1 - 1.6 / (len(names) + 2.2)))
    matrix, labels = [], []
    for name, values in zip(names, samples, strict=True):
        low, high = min(values), max(values)
        width = (high - low) or 1.0
        counts = [0] * BINS
        for value in values:
            counts[min(BINS - 1, int((value - low) / width * BINS))] += 1
        peak = max(counts) or 1
        matrix.append([count / peak for count in counts])
        labels.append(f"{name}  [{low:.3g} .. {high:.3g}]")
    axis.imshow(matrix, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.set_xticks([0, BINS - 1], ["min", "max"], fontsize=8)
    axis.set_title("score distribution per metric (each over its own range)", fontsize=9)
    return png_bytes(figure)


@dataclass(frozen=True)
class Interval:
    label: str
    value: float
    low: float
    high: float
    band: tuple[float, float] | None = None  # the baseline's usual range, drawn in grey


def interval_chart(rows: Sequence[Interval], title: str, *, unit_range: bool = True) -> bytes:
    """A dot with its interval per row, over an optional grey baseline band."""
    figure = _figure(8, 0.42 * len(rows) + 1.0)
    axis = figure.add_axes((0.32, 0.9 / (len(rows) + 2.2), 0.64, 1 - 1.6 / (len(rows) + 2.2)))
    for y, row in enumerate(rows):
        if row.band is not None:
            axis.plot(list(row.band), [y, y], color="#bdbdbd", linewidth=7, solid_capstyle="butt")
        below, above = max(0.0, row.value - row.low), max(0.0, row.high - row.value)  # float noise at 0% and 100%
        axis.errorbar([row.value], [y], xerr=[[below], [above]], fmt="o", color="#3949ab")
    axis.set_yticks(range(len(rows)), [row.label for row in rows], fontsize=8)
    axis.set_ylim(-0.7, len(rows) - 0.3)
    if unit_range:
        axis.set_xlim(min(0.5, *(row.low for row in rows)) - 0.02, 1.02)
    axis.set_title(title, fontsize=9)
    return png_bytes(figure)


def series_chart(
    labels: Sequence[str], values: Sequence[float], lows: Sequence[float], highs: Sequence[float], title: str
) -> bytes:
    """A line over time with its interval band."""
    figure = _figure(8, 2.8)
    axis = figure.add_axes((0.08, 0.3, 0.9, 0.6))
    xs = list(range(len(values)))
    axis.fill_between(xs, lows, highs, color="#c5cae9", label="95% interval")
    axis.plot(xs, values, marker="o", color="#3949ab")
    axis.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
    axis.set_title(title, fontsize=9)
    return png_bytes(figure)


def volume_chart(labels: Sequence[str], evaluated: Sequence[int], alerted: Sequence[bool], title: str) -> bytes:
    """Items per point, with a red marker where alerts fired."""
    figure = _figure(8, 2.6)
    axis = figure.add_axes((0.08, 0.3, 0.9, 0.6))
    xs = list(range(len(evaluated)))
    axis.bar(xs, evaluated, color="#90a4ae", label="evaluated")
    fired = [x for x, alert in zip(xs, alerted, strict=True) if alert]
    axis.scatter(fired, [0] * len(fired), marker="^", color="#d32f2f", s=60, label="alerts fired", zorder=3)
    axis.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
    axis.legend(fontsize=7)
    axis.set_title(title, fontsize=9)
    return png_bytes(figure)
