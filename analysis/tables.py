"""Tables as data, and their renderings: Markdown (github), plain text (a terminal) and CSV.

A table holds raw numbers in base units (bytes/s, FLOP/s, seconds); a column's
kind says how a cell is shown. Numbers are formatted here only, one way for
every table, so report, compare and specs look alike and the CSV keeps full
precision.

What a reader sees (github and plain) is shaped here too, the same for every
table:
- a cell is one line: a text's first line, cut to CELL_CHARS (the CSV and the
  records keep the whole text);
- a column that is empty ("—" or blank) in every row is left out;
- a table none of whose rows holds a measured figure (every row skipped or
  failed) is left out, and so is a section left with no table; the report's
  failures section lists those records;
- plain text fits WIDTH columns: headers and notes wrap, a text column with one
  value in every row is said once above its table, text cells wrap, and a table
  that would wrap too much is split into parts that repeat its key columns
  (whichever layout takes fewer lines);
- numbers align right, text left.
Markdown stays one valid table per table, as wide as it needs.
"""
from __future__ import annotations

import csv
import io
import math
import re
import textwrap
from dataclasses import dataclass, field

from analysis.errors import AnalysisError

FORMATS = ("github", "plain", "csv")
WIDTH = 120  # plain: the widest line, a terminal's width
CELL_CHARS = 120  # github/plain: the longest text a cell shows
TEXT_MIN = 20  # plain: text columns wrap down to this width before a table is split
KEY_SHARE = 2 / 3  # plain: a split table repeats the columns naming a row, up to this share of WIDTH
HOIST_ROWS = 3  # plain: a text column with one value in this many rows or more is said once
EMPTY = "—"


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
# Kinds that hold a measurement (not a property of the case or the spec sheet's promise alone):
# a row with a number in none of them measured nothing.
_MEASURED = ("bytes_per_s", "flop_per_s", "seconds", "tokens_per_s", "speedup")
_KEY_KINDS = ("text", "int")  # leading columns of these kinds name a row


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
        return EMPTY
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
        if value == 0:
            return "0 s"
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


def one_line(text: str, limit: int = CELL_CHARS) -> str:
    """A text's first line, cut to `limit` characters ('…' marks the cut)."""
    text = str(text).strip()
    first = text.splitlines()[0].rstrip() if text else ""
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


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


# ---------------------------------------------------------------- what a reader sees

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _measured(value, kind: str) -> bool:
    """Whether a cell of a column of `kind` holds a measured figure."""
    if isinstance(value, Quantity):
        return value.kind in _MEASURED and _is_number(value.value)
    return kind in _MEASURED and (_is_number(value) or _is_number(getattr(value, "value", None)))


def nothing_ran(row, kinds) -> bool:
    """Whether a row only reports that its case did not run: no measured figure, and a status
    ("skipped", "failed", ...) where a figure would stand."""
    cells = [(v, k) for v, k in zip(row, kinds) if k in _MEASURED or isinstance(v, Quantity)]
    return not any(_measured(v, k) for v, k in cells) and any(isinstance(v, str) for v, _ in cells)


def visible(sections: list[Section]) -> list[Section]:
    """The sections as a reader sees them: tables without rows or shown cells, or whose every row
    only says its case did not run, left out; and a section left with no table (that had one)."""
    out = []
    for s in sections:
        tables = [t for t in s.tables if t.rows and _cells(t)[0]
                  and not all(nothing_ran(row, [c.kind for c in t.cols]) for row in t.rows)]
        if s.tables and not tables:
            continue
        out.append(Section(s.title, tables, list(s.notes)))
    return out


def _cells(table: Table) -> tuple[list[Col], list[list[str]]]:
    """The shown columns and cells: one line per cell, columns empty in every row left out."""
    idx = [i for i, c in enumerate(table.cols) if not c.csv_only]
    body = [[one_line(show(row[i], table.cols[i].kind)) for i in idx] for row in table.rows]
    keep = [j for j in range(len(idx)) if any(row[j] not in (EMPTY, "") for row in body)]
    return [table.cols[idx[j]] for j in keep], [[row[j] for j in keep] for row in body]


def _align(col: Col) -> str:
    return "left" if col.kind == "text" else "right"


# ---------------------------------------------------------------- github (Markdown)

def _markdown(table: Table) -> str:
    from tabulate import tabulate

    cols, body = _cells(table)
    escape = lambda s: s.replace("|", r"\|")  # noqa: E731  a bare pipe would end the cell
    return tabulate([[escape(c) for c in row] for row in body], headers=[escape(_header(c)) for c in cols],
                    tablefmt="pipe", disable_numparse=True, colalign=[_align(c) for c in cols])


# ---------------------------------------------------------------- plain (a terminal)

# Spaces, and words cut after a '/' or '-' that joins two words ("Measured/spec", "spec-predicted"),
# never inside a unit ("TFLOP/s") or a number ("H=32/8").
_PIECES = re.compile(r"\s+|\S+?(?:(?<=[/-])(?=[A-Za-z(\[]{2})|(?=\s)|$)")


def wrap(text: str, width: int) -> list[str]:
    """Greedy wrap at spaces and between joined words (see _PIECES); a piece longer than `width` is cut."""
    lines, line = [], ""
    for piece in _PIECES.findall(text):
        if piece.isspace():
            if line:
                line += " "
            continue
        while len(piece) > width:
            if line.strip():
                lines.append(line.rstrip())
            lines.append(piece[:width])
            piece, line = piece[width:], ""
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = ""
        line += piece
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


@dataclass
class _Layout:
    """Some columns of a table, their text cells wrapped: what one printed table holds."""
    js: list  # column indices
    columns: list  # per column, its cells (wrapped lines joined by newlines)
    headers: list  # per column, its header (wrapped)
    widths: list  # per column, its width
    width: int  # of the widest line printed
    lines: int  # printed lines, header and rule included


class _Plain:
    """One table laid out within a width: text cells wrap (widest columns first); a table that
    would need text columns narrower than TEXT_MIN may instead print as parts that repeat its
    key columns. Of the layouts that fit, the one with fewer lines is chosen."""

    def __init__(self, cols: list[Col], body: list[list[str]]):
        self.cols = cols
        self.columns = [[row[j] for row in body] for j in range(len(cols))]
        self.data = [max((len(c) for c in col), default=0) for col in self.columns]
        self._wrapped: dict = {}

    def _column(self, j: int, cap: int | None) -> list[str]:
        if cap is None or cap >= self.data[j]:
            return self.columns[j]
        if (j, cap) not in self._wrapped:
            self._wrapped[j, cap] = ["\n".join(wrap(c, cap)) for c in self.columns[j]]
        return self._wrapped[j, cap]

    def layout(self, js: list[int], cap: int | None = None) -> _Layout:
        columns = [self._column(j, cap if self.cols[j].kind == "text" else None) for j in js]
        headers, widths = [], []
        for j, col in zip(js, columns):
            data = max((len(line) for c in col for line in c.split("\n")), default=0)
            # A header wraps to its column's data width, never inside a word.
            title = _header(self.cols[j])
            head = wrap(title, max([data] + [len(w) for w in _PIECES.findall(title)]))
            headers.append("\n".join(head))
            widths.append(max([data] + [len(h) for h in head]))
        rows = sum(max((c.count("\n") + 1 for c in cells), default=1) for cells in zip(*columns))
        return _Layout(js, columns, headers, widths, sum(widths) + 2 * (len(js) - 1),
                       rows + 1 + max(h.count("\n") + 1 for h in headers))

    def fit(self, js: list[int], width: int, floor: int) -> _Layout | None:
        """Columns `js` within `width`, text wrapped as little as it takes (not below `floor`)."""
        whole = self.layout(js)
        if whole.width <= width:
            return whole
        text = [self.data[j] for j in js if self.cols[j].kind == "text" and self.data[j] > floor]
        if not text or self.layout(js, floor).width > width:
            return None
        lo, hi = floor, max(text)  # the widest cap that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.layout(js, mid).width <= width:
                lo = mid
            else:
                hi = mid - 1
        return self.layout(js, lo)

    def keys(self, width: int) -> tuple[list[int], bool]:
        """The columns a part of a split table repeats: its leading text and integer columns (what
        names a row), as many as fit in KEY_SHARE of the width; and whether that is all of them."""
        keys: list[int] = []
        for j in range(len(self.cols) - 1):
            if self.cols[j].kind not in _KEY_KINDS:
                return keys or [0], True
            if self.layout(keys + [j]).width > KEY_SHARE * width:
                return keys or [0], False
            keys.append(j)
        return keys or [0], True

    def split(self, keys: list[int], width: int) -> list[_Layout] | None:
        """Parts that each repeat `keys`: each takes the columns that fit beside them unwrapped; a
        column too wide for that alone gets a part of its own and wraps there."""
        groups, current = [], []
        for j in (j for j in range(len(self.cols)) if j not in keys):
            if current and self.layout(keys + current + [j]).width > width:
                groups.append(current)
                current = []
            current.append(j)
        groups.append(current)
        parts = [self.fit(keys + g, width, TEXT_MIN) for g in groups]
        return parts if len(parts) > 1 and all(parts) else None

    def choose(self, width: int) -> list[_Layout]:
        every = list(range(len(self.cols)))
        options = [[p] for p in (self.fit(every, width, TEXT_MIN), self.fit(every, width, 1)) if p]
        keys, complete = self.keys(width)
        # Parts that repeat only some of what names a row are read by position alone: the last resort.
        if complete or not options:
            options += [p for p in (self.split(keys, width),) if p]
        if not options:  # a single column wider than the terminal: the narrowest wrap there is
            return [self.layout(every, 1)]
        return min(options, key=lambda ps: sum(p.lines for p in ps))

    def render(self, width: int) -> str:
        from tabulate import tabulate

        blocks = []
        for p in self.choose(width):
            # The header and its rule go in as rows: tabulate's own headers would widen every
            # column to its header plus two spaces.
            rows = [p.headers, ["-" * w for w in p.widths], *(list(r) for r in zip(*p.columns))]
            text = tabulate(rows, tablefmt="plain", disable_numparse=True,
                            colalign=[_align(self.cols[j]) for j in p.js])
            blocks.append("\n".join(line.rstrip() for line in text.splitlines()))
        return "\n\n".join(blocks)


def _hoist(cols: list[Col], body: list[list[str]]) -> tuple[list[str], list[Col], list[list[str]]]:
    """Text columns that hold one value in every row (of HOIST_ROWS rows or more) said once, as
    'Title: value' lines above the table, instead of in every row."""
    if len(body) < HOIST_ROWS or len(cols) < 2:
        return [], cols, body
    same = [j for j, c in enumerate(cols) if c.kind == "text" and len({row[j] for row in body}) == 1]
    same = same[:len(cols) - 1]  # a table keeps one column
    lines = [f"{_header(cols[j])}: {body[0][j]}" for j in same]
    keep = [j for j in range(len(cols)) if j not in same]
    return lines, [cols[j] for j in keep], [[row[j] for j in keep] for row in body]


def _plain(table: Table, width: int = WIDTH) -> str:
    lines, cols, body = _hoist(*_cells(table))
    said = "".join(f"{line}\n" for line in lines)
    return said + ("\n" if said else "") + _Plain(cols, body).render(width)


def _plain_note(note: str, width: int = WIDTH) -> str:
    return "\n".join(textwrap.wrap(note, width, initial_indent="- ", subsequent_indent="  ",
                                   break_long_words=True, break_on_hyphens=False))


def _plain_title(title: str, underline: str, width: int = WIDTH) -> str:
    lines = textwrap.wrap(title, width) or [""]
    return "\n".join(lines) + "\n" + underline * max(len(line) for line in lines)


# ---------------------------------------------------------------- all formats

def format_sections(sections: list[Section], fmt: str = "github") -> str:
    check_format(fmt)
    if fmt == "csv":
        return _format_csv(sections)
    out = []
    for s in visible(sections):
        out.append(f"## {s.title}\n" if fmt == "github" else _plain_title(s.title, "=") + "\n")
        for t in s.tables:
            if t.title:
                out.append(f"**{t.title}**\n" if fmt == "github" else "\n".join(textwrap.wrap(t.title, WIDTH)) + "\n")
            out.append((_markdown(t) if fmt == "github" else _plain(t)) + "\n")
        out.extend(f"- {note}" if fmt == "github" else _plain_note(note) for note in s.notes)
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
