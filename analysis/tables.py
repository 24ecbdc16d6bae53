"""Tables as data, and their renderings: Markdown (github), plain text (a terminal) and CSV.

A table holds raw numbers in base units (bytes/s, FLOP/s, seconds); a column's
kind says how a cell is shown. Numbers are formatted here only, one way for
every table, so report, compare and specs look alike and the CSV keeps full
precision.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field

from analysis.errors import AnalysisError

FORMATS = ("github", "plain", "csv")

@dataclass(frozen=True)
class Col:
    key: str  # CSV column name (its unit is appended)
    title: str  # shown header (its display unit is appended)
    kind: str = "text"
    csv_only: bool = False


@dataclass(frozen=True)
class Quantity:
    """A quantity carrying its own kind, for columns that mix units (shown with its unit in the cell)."""
    value: float | None
    kind: str


@dataclass
class Table:
    title: str | None
    cols: list
    rows: list


@dataclass
class Section:
    title: str
    tables: list = field(default_factory=list)
    notes: list = field(default_factory=list)


# kind -> (unit in the header, scale for display, unit suffix of the CSV column)
_UNITS = {
    "bytes_per_s": ("GB/s", 1e-9, "bytes_per_s"), "flop_per_s": ("TFLOP/s", 1e-12, "flop_per_s"),
    "flop_per_byte": ("FLOP/B", 1.0, "flop_per_byte"), "tokens_per_s": ("tok/s", 1.0, "tokens_per_s"),
    "mhz": ("MHz", 1.0, "mhz"), "watts": ("W", 1.0, "w"), "ratio": ("", 1.0, "ratio"),
    "pct": ("", 1.0, "fraction"), "delta": ("", 1.0, "delta"), "seconds": ("", 1.0, "s"), "bytes": ("", 1.0, "bytes"),
    "int": ("", 1.0, ""), "text": ("", 1.0, ""), "speedup": ("", 1.0, "ratio"),
}
_CELL_UNIT = {"bytes_per_s": " GB/s", "flop_per_s": " TFLOP/s", "flop_per_byte": " FLOP/B", "tokens_per_s": " tok/s"}


def _number(x: float) -> str:
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.001 or a == 0:
        return f"{x:.3f}"
    return f"{x:.2e}"


def show(value, kind: str, with_unit: bool = False) -> str:
    """A raw value as it is shown in github/plain tables."""
    if isinstance(value, Quantity):
        return show(value.value, value.kind, with_unit=True)
    if value is None:
        return "—"
    if kind == "speedup" and not isinstance(value, str):
        # A ratio with its interval (analysis.versus.Ratio): "1.008 [0.995, 1.021] tie".
        if value.low is None:
            return f"{value.value:.3f} (no interval)"
        return f"{value.value:.3f} [{value.low:.3f}, {value.high:.3f}]" + (" tie" if value.tie else "")
    if isinstance(value, str) or kind == "text":
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if kind == "seconds":
        return f"{value * 1e6:.1f} us" if value < 1e-3 else f"{value * 1e3:.3f} ms" if value < 1 else f"{value:.3f} s"
    if kind == "bytes":
        return fmt_bytes(value)
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "delta":
        return f"{value:+.3f}"
    if kind == "int":
        return str(int(value))
    if kind in ("mhz", "watts"):
        return f"{value:,.0f}"
    unit, scale, _ = _UNITS.get(kind, ("", 1.0, ""))
    return _number(value * scale) + (_CELL_UNIT.get(kind, "") if with_unit else "")


def _raw(value):
    """A cell as written to CSV: raw numbers at full precision, empty for missing."""
    if isinstance(value, Quantity) or hasattr(value, "low"):
        value = value.value
    return "" if value is None else value


def _header(col: Col) -> str:
    unit = _UNITS.get(col.kind, ("",))[0]
    return f"{col.title} {unit}" if unit else col.title


def _csv_header(col: Col) -> str:
    suffix = _UNITS.get(col.kind, ("", 1.0, ""))[2]
    return f"{col.key}_{suffix}" if suffix and not col.key.endswith(suffix) else col.key


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")


def format_sections(sections: list[Section], fmt: str = "github") -> str:
    check_format(fmt)
    if fmt == "csv":
        return _format_csv(sections)
    from tabulate import tabulate

    out = []
    for s in sections:
        out.append(f"## {s.title}\n" if fmt == "github" else f"{s.title}\n{'=' * len(s.title)}\n")
        for t in s.tables:
            cols = [c for c in t.cols if not c.csv_only]
            idx = [i for i, c in enumerate(t.cols) if not c.csv_only]
            if t.title:
                out.append(f"**{t.title}**\n" if fmt == "github" else f"{t.title}\n")
            body = [[show(row[i], t.cols[i].kind) for i in idx] for row in t.rows]
            out.append(tabulate(body, headers=[_header(c) for c in cols], tablefmt=fmt, disable_numparse=True)
                       + "\n")
        out.extend(f"- {note}" for note in s.notes)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _format_csv(sections: list[Section]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for s in sections:
        w.writerow([f"# {s.title}"])
        for t in s.tables:
            if t.title:
                w.writerow([f"# {t.title}"])
            w.writerow([_csv_header(c) for c in t.cols])
            w.writerows([_raw(v) for v in row] for row in t.rows)
            w.writerow([])
        for note in s.notes:
            w.writerow([f"# {note}"])
        if s.notes:
            w.writerow([])
    return buf.getvalue()


def group(items, key) -> dict:
    """Items by key(item), in first-seen order."""
    out: dict = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def natural(text) -> tuple:
    """Sort key that orders 'M=16' before 'M=1024'."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", str(text)))


def fmt_bytes(n) -> str:
    """A byte count in binary units: '1.5 MiB', '2 GiB'."""
    if n is None:
        return "?"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n:.0f} B"
