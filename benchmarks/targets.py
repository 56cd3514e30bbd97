"""The figures that have a target, collected while the benchmarks run and printed as one table at the end.

Each benchmark module prints its own detailed lines as before and also calls `record(...)` for every
figure the issues set a target for, so `make bench` ends with one table: figure, value, target, met.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    target: float
    unit: str
    higher_is_better: bool = True
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def shown(self, number: float) -> str:
        return f"{number:,.0f}" if abs(number) >= 100 else f"{number:,.2f}"


FIGURES: list[Figure] = []


def record(
    name: str, value: float, *, target: float, unit: str, higher_is_better: bool = True, note: str = ""
) -> Figure:
    """Keep a figure for the closing table; returns it so callers can print from it too."""
    figure = Figure(name, float(value), float(target), unit, higher_is_better, note)
    FIGURES.append(figure)
    return figure


def machine_note() -> str:
    """Load on the (shared) machine when the figure was taken: wall-clock figures move with it."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def table(figures: list[Figure], missing: list[str]) -> str:
    """The closing table: one row per figure, then the benchmarks that produced none (failed or skipped)."""
    rows = [
        (
            f.name,
            f"{f.shown(f.value)} {f.unit}",
            f"{'>=' if f.higher_is_better else '<='} {f.shown(f.target)} {f.unit}",
            "met" if f.met else "MISSED",
            f.note,
        )
        for f in figures
    ]
    header = ("figure", "value", "target", "", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header[:4], widths, strict=True)) + "  note"]
    lines.append("  ".join("-" * width for width in widths) + "  ----")
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + f"  {row[4]}")
    met = sum(1 for f in figures if f.met)
    lines.append(f"{met} of {len(figures)} targets met")
    lines.extend(f"no figures from {name} (failed or skipped: see its section above)" for name in missing)
    return "\n".join(lines)
