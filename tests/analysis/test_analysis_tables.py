"""Rendering of the table model: plain text within 120 columns (wrapped notes and cells, wide
tables split with their key columns repeated), one line per cell, no column empty in every row,
no table whose every row did not run, one number format, Markdown that stays one valid table."""
import csv
import io
import re
from pathlib import Path

import pytest

from analysis import report, tables
from analysis.records import load
from analysis.tables import EMPTY, WIDTH, Col, Quantity, Section, Table, format_sections, one_line, wrap

ROOT = Path(__file__).resolve().parents[2]
FULL_SWEEP = ROOT / "benchmarks" / "results" / "h200" / "full.jsonl"
LONG_REASON = ("SDPA efficient backend does not run this case: " + "Memory efficient kernel not used because: "
               "(Triggered internally at /pytorch/aten/src/ATen/native/transformers/cuda/sdp_utils.cpp:986.); " * 8)


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in `text` (escaped pipes stay inside their cell)."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in text.splitlines()
            if line.startswith("|")]


def wide_table(rows=6) -> Table:
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Implementation")]
    cols += [Col(f"f{i}", f"Figure number {i}", "flop_per_s") for i in range(12)]
    cols += [Col("remark", "Remark")]
    body = [[f"workload-{i % 2}", f"B={i} H=32/8 ctx=4096", "bf16" if i % 3 else "fp16", f"impl-{i}",
             *(1e12 * (i + 1) * (j + 1) for j in range(12)), "a remark long enough to need a line of its own, "
             "and then some more words"] for i in range(rows)]
    return Table("A wide table", cols, body)


def test_one_line_is_the_first_line_cut():
    assert one_line("first\nsecond") == "first"
    cut = one_line(LONG_REASON)
    assert len(cut) == tables.CELL_CHARS and cut.endswith("…") and cut.startswith("SDPA efficient backend")
    assert one_line("short") == "short" and one_line("") == ""


def test_wrap_breaks_between_words_never_inside_a_unit():
    assert wrap("Measured/spec-predicted TFLOP/s", 10) == ["Measured/", "spec-", "predicted", "TFLOP/s"]
    assert wrap("B=1 H=32/8 ctx=512", 12) == ["B=1 H=32/8", "ctx=512"]
    assert wrap("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]  # a word wider than the column is cut
    assert " ".join(wrap("a remark long enough to wrap twice", 12)) == "a remark long enough to wrap twice"


def test_plain_fits_the_width_and_repeats_the_key_columns_in_each_part():
    text = format_sections([Section("Wide", [wide_table()], ["a note " * 40])], "plain")
    assert widest(text) <= WIDTH
    parts = [block for block in text.split("\n\n") if "----" in block]
    assert len(parts) >= 2
    for part in parts:  # every part names its rows: workload, case, dtype and implementation
        assert all(word in part.splitlines()[0] for word in ("Workload", "Case", "Dtype", "Implementation"))
        assert "B=5 H=32/8 ctx=4096" in part
    for j in range(12):  # every figure column is printed, in one of the parts
        assert tables.show(6e12 * (j + 1), "flop_per_s") in text
    note = [line for line in text.splitlines() if line.startswith(("- a note", "  a note"))]
    assert len(note) > 1 and note[0].startswith("- ") and all(line.startswith("  ") for line in note[1:])


def test_plain_wraps_a_long_text_column_rather_than_splitting_a_narrow_table():
    cols = [Col("case", "Case"), Col("value", "Value", "flop_per_s"), Col("remark", "Remark")]
    rows = [["n=1", 1e12, "timed by different methods (cuda-graph, cuda-events): no ratio " * 2], ["n=2", 2e12, ""]]
    text = format_sections([Section("S", [Table(None, cols, rows)])], "plain")
    assert widest(text) <= WIDTH and text.count("Case") == 1  # one part
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("n=1"))
    assert lines[first + 1].startswith(" ")  # the remark's second line sits under its column


def test_headers_and_numbers_align():
    cols = [Col("case", "Case"), Col("bw", "Triton", "bytes_per_s")]
    text = format_sections([Section("S", [Table(None, cols, [["a", 4.4e12], ["bb", 12e9]])])], "plain")
    lines = text.splitlines()
    assert lines[3].split() == ["Case", "Triton"] and lines[4].split() == ["GB/s"]  # the unit stays whole
    rows = [line for line in lines if line.startswith(("a ", "bb "))]
    assert rows[0].endswith("4,400") and rows[1].endswith(" 12.0")  # numbers right-aligned, one format


def test_a_column_empty_in_every_row_is_left_out_but_csv_keeps_it():
    cols = [Col("case", "Case"), Col("value", "Value", "ratio"), Col("spec", "Spec", "ratio"), Col("remark", "Remark")]
    rows = [["n=1", 1.5, None, ""], ["n=2", 2.0, None, ""]]
    sections = [Section("S", [Table(None, cols, rows)])]
    for fmt in ("github", "plain"):
        text = format_sections(sections, fmt)
        assert "Value" in text and "Spec" not in text and "Remark" not in text and EMPTY not in text
    header = next(csv.reader(io.StringIO(format_sections(sections, "csv").split("\n", 1)[1])))
    assert header == ["case", "value_ratio", "spec_ratio", "remark"]


def test_a_table_whose_rows_all_did_not_run_goes_away_with_its_section():
    cols = [Col("case", "Case"), Col("triton", "Triton", "flop_per_s"), Col("remark", "Remark")]
    skipped = Table("fp8", cols, [["n=1", "skipped", "skipped: time budget"], ["n=2", "failed", "failed: oom"]])
    one_ok = Table("bf16", cols, [["n=1", "skipped", "skipped: time budget"], ["n=2", 5e14, ""]])
    unmeasured = Table("ceilings", [Col("name", "Ceiling"), Col("value", "Measured", "bytes_per_s"),
                                    Col("why", "Set by")], [["HBM", None, "not measured: no streaming case"]])
    sections = [Section("Mixed", [skipped, one_ok], ["mixed note"]), Section("Gone", [skipped], ["gone note"]),
                Section("Notes only", [], ["kept note"]), Section("Unmeasured", [unmeasured])]
    assert [s.title for s in tables.visible(sections)] == ["Mixed", "Notes only", "Unmeasured"]
    for fmt in ("github", "plain"):
        text = format_sections(sections, fmt)
        assert "bf16" in text and "fp8" not in text and "gone note" not in text and "kept note" in text
        assert "not measured: no streaming case" in text  # a row that states why nothing was measured stays
    assert "fp8" in format_sections(sections, "csv")  # the CSV keeps every table
    blank = Table("blank", [Col("a", "A"), Col("b", "B", "ratio")], [[None, None], ["", None]])
    assert [s.title for s in tables.visible([Section("Blank", [blank])])] == []  # nothing left to show


def test_a_constant_text_column_is_said_once_in_plain():
    cols = [Col("gpu", "GPU"), Col("case", "Case"), Col("value", "Value", "ratio")]
    rows = [["H200 #0 on node0", f"n={i}", float(i)] for i in range(3)]
    plain = format_sections([Section("S", [Table(None, cols, rows)])], "plain")
    assert "GPU: H200 #0 on node0" in plain and plain.count("H200 #0") == 1
    github = format_sections([Section("S", [Table(None, cols, rows)])], "github")
    assert github.count("H200 #0 on node0") == 3  # Markdown keeps the whole table
    two = format_sections([Section("S", [Table(None, cols, rows[:2])])], "plain")
    assert "GPU: " not in two and two.count("H200 #0") == 2  # two rows alike are no pattern


def test_markdown_stays_one_valid_table_per_table():
    cols = [Col("case", "Case"), Col("what", "What"), Col("value", "Measured", "bytes_per_s"),
            Col("q", "Achieved"), Col("reason", "Reason")]
    rows = [["a|b", "x", 4.4e12, Quantity(4e14, "flop_per_s"), LONG_REASON], ["c", "y\nsecond line", 1e9, None, ""]]
    text = format_sections([Section("S", [Table("T", cols, rows)], ["a note"])], "github")
    table = markdown_rows(text)
    assert len(table) == 4 and len({len(r) for r in table}) == 1  # header, rule, two rows: same cell count
    assert table[0] == ["Case", "What", "Measured GB/s", "Achieved", "Reason"]
    assert table[1][2].endswith(":")  # numbers right-aligned
    assert table[2][0] == r"a\|b" and table[2][3] == "400.0 TFLOP/s" and table[2][2] == "4,400"
    assert table[2][4] == one_line(LONG_REASON) and table[3][1] == "y"
    assert "second line" not in text


def test_plain_report_of_the_full_sweep_fits_120_columns():
    records = load(FULL_SWEEP)
    assert len(records) > 1000
    text = report.render(records, fmt="plain")
    assert widest(text) <= WIDTH, max(text.splitlines(), key=len)
    # Skip reasons that paste whole warnings are one cut line in tables; the records keep the text.
    longest = max((r.reason for r in records), key=len)
    assert len(longest) > 1000 and longest not in text and "…" in text
    # No table without a row that ran, and no column empty in every row (the github tables show it).
    for s in tables.visible(report.build(records)):
        for t in s.tables:
            assert not all(tables.nothing_ran(row, [c.kind for c in t.cols]) for row in t.rows), s.title
    github = report.render(records)
    for block in re.split(r"\n\n+", github):
        rows = markdown_rows(block)
        if rows:
            assert len({len(r) for r in rows}) == 1, block[:200]  # one valid table: as many cells in every row
            body = rows[2:]
            assert body and all(any(r[j] not in (EMPTY, "") for r in body) for j in range(len(rows[0]))), block[:200]


def test_plain_fits_even_a_cell_wider_than_the_terminal():
    cols = [Col("name", "Name"), Col("url", "URL")]
    text = format_sections([Section("S", [Table(None, cols, [["a", "https://" + "x" * 300]])])], "plain")
    assert widest(text) <= WIDTH


@pytest.mark.parametrize("name", ["quick-warm.jsonl", "quick-cold.jsonl", "sustain.jsonl", "counters.jsonl", "full.jsonl"])
def test_plain_report_of_each_committed_h200_file_fits_120_columns(name):
    text = report.render(load(ROOT / "benchmarks" / "results" / "h200" / name), fmt="plain")
    assert widest(text) <= WIDTH, max(text.splitlines(), key=len)


def test_seconds_show_a_zero_as_seconds_and_small_times_in_us():
    assert tables.show(0.0, "seconds") == "0 s"
    assert tables.show(12e-6, "seconds") == "12.0 us" and tables.show(1.733, "seconds") == "1.733 s"
