"""The record schema: round trip, derived figures, malformed input."""
import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.records import Record, RecordError, dump, load


def _rec(**kw):
    base = dict(workload="stream-copy", family="streaming", impl="triton", vendor=False, dtype="fp32",
                params={"array_bytes": 1024}, case="array_bytes=1024", label="1 KiB", status="ok",
                flops=100, bytes=2048, time_s={"p50": 1e-6}, timing={"meaningful": True},
                verify={"rel_err": 0.0, "tolerance": 1e-5, "max_excess": 0.0, "finite": True},
                env={"gpu": {"uuid": "GPU-1"}})
    base.update(kw)
    return Record(**base)


def test_round_trip_keeps_full_precision(tmp_path):
    r = _rec(time_s={"p50": 1.234567890123e-6, "samples": [1.234567890123e-6]})
    f = tmp_path / "r.jsonl"
    f.write_text(dump(r) + "\n\n" + dump(_rec(status="failed", reason="x")) + "\n")
    back = load(f)
    assert back[0] == r and back[1].status == "failed"
    assert back[0].time_s["p50"] == 1.234567890123e-6


def test_derived_figures_come_from_the_median():
    r = _rec()
    assert r.bytes_per_s == pytest.approx(2048 / 1e-6)
    assert r.flop_per_s == pytest.approx(100 / 1e-6)
    assert r.intensity == pytest.approx(100 / 2048)
    assert r.moved_bytes_per_s == r.bytes_per_s
    assert _rec(moved_bytes=4096).moved_bytes_per_s == pytest.approx(4096 / 1e-6)
    assert json.loads(dump(r))["derived"]["bytes_per_s"] == pytest.approx(2048 / 1e-6)


def test_meaningful_excludes_interpreter_and_failures():
    assert _rec().meaningful
    assert not _rec(timing={"meaningful": False}).meaningful
    assert not _rec(status="failed").meaningful
    assert not _rec(time_s=None).meaningful


@pytest.mark.parametrize("verify, problem", [
    (None, "no verification recorded"),
    ({"rel_err": 2e-5, "tolerance": 1e-5}, "does not pass tolerance"),
    ({"rel_err": float("nan"), "tolerance": 1e-5}, "does not pass tolerance"),
    ({"rel_err": 0.0, "tolerance": 1e-5, "max_excess": 1.5}, "exceeds its tolerance"),
    ({"rel_err": 0.0, "tolerance": 1e-5, "finite": False}, "NaN or inf"),
])
def test_verification_is_rechecked_on_read(verify, problem, tmp_path):
    # A record marked ok whose own verification fields fail is no result, whatever its status says.
    f = tmp_path / "r.jsonl"
    f.write_text(dump(_rec(verify=verify)) + "\n")
    back = load(f)[0]
    assert back.status == "ok" and not back.meaningful and problem in back.verify_problem


def test_resume_key_includes_the_gpu():
    assert _rec().key != _rec(env={"gpu": {"uuid": "GPU-2"}}).key
    assert _rec(env={"host": "h", "gpu": {"index": 3}}).gpu_key == "h:3"


@pytest.mark.parametrize("line, needle", [
    ("{oops", "malformed record"),
    ("[1, 2]", "not a JSON object"),
    ('{"workload": "w"}', "missing field(s) family"),
    (json.dumps({**_rec().to_dict(), "status": "great"}), "status 'great'"),
    (json.dumps({**_rec().to_dict(), "schema": 99}), "newer than this reader"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, needle):
    f = tmp_path / "r.jsonl"
    f.write_text(dump(_rec()) + "\n" + line + "\n")
    with pytest.raises(RecordError) as e:
        load(f)
    assert str(e.value).startswith(f"{f}:2: ") and needle in str(e.value)


@pytest.mark.parametrize("data, needle", [
    (gzip.compress(b"{}\n"), "gzip-compressed, not a JSONL results file"),
    (b'{"workload": "caf\xe9"}\n', "not a text results file (byte 17 is not UTF-8)"),
    (b"\0\0\0\0", "not a text results file (character 0 is NUL)"),
])
def test_files_that_are_not_text_are_named_in_one_line(tmp_path, data, needle):
    f = tmp_path / "r.jsonl"
    f.write_bytes(data)
    with pytest.raises(RecordError) as e:
        load(f)
    assert str(e.value).startswith(f"{f}: {needle}")


@pytest.mark.parametrize("field, value, needle", [
    ("flops", "many", "field 'flops' is a string, not an integer"),
    ("flops", 1.5, "field 'flops' is a number, not an integer"),
    ("bytes", True, "field 'bytes' is true or false, not an integer"),
    ("vendor", 1, "field 'vendor' is an integer, not true or false"),
    ("params", [1], "field 'params' is an array, not an object"),
    ("launches", "one", "field 'launches' is a string, not an integer or null"),
    ("time_s", {"p50": None}, "time_s.p50 is null, not a number"),
    ("time_s", {}, "time_s.p50 is null, not a number"),
    ("env", {"gpu": "H200"}, "env.gpu is a string, not an object"),
    ("env", {"gpu": {"uuid": ["GPU-1"]}}, "env.gpu.uuid is an array, not a string or null"),
])
def test_a_wrong_typed_field_names_file_and_line(tmp_path, field, value, needle):
    f = tmp_path / "r.jsonl"
    f.write_text(dump(_rec()) + "\n" + json.dumps({**_rec().to_dict(), field: value}) + "\n")
    with pytest.raises(RecordError) as e:
        load(f)
    assert str(e.value) == f"{f}:2: malformed record: {needle}"


def test_lines_end_at_newlines_only(tmp_path):
    # U+2028 and \x1c are line breaks to str.splitlines, but JSON strings may hold them raw.
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(_rec(reason="a\u2028b\x1cc").to_dict(), ensure_ascii=False) + "\n{oops\n",
                 encoding="utf-8")
    with pytest.raises(RecordError, match=rf"^{f}:2: malformed record"):
        load(f)


def test_deep_nesting_is_a_malformed_record(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text("[" * 100_000 + "\n")
    with pytest.raises(RecordError, match=rf"^{f}:1: malformed record"):
        load(f)


def test_a_cut_last_line_says_so(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(dump(_rec()) + "\n" + dump(_rec())[:40])
    with pytest.raises(RecordError, match=rf"^{f}:2: malformed record: .*it is the last line and cut short"):
        load(f)


def test_schema_1_records_read_as_schema_1(tmp_path):
    d = {k: v for k, v in _rec().to_dict().items() if k not in ("schema", "view", "roof", "role")}
    f = tmp_path / "old.jsonl"
    f.write_text(json.dumps(d) + "\n")
    r = load(f)[0]
    assert r.schema == 1 and r.view == "streaming" and r.roof == "memory"


# ---------------------------------------------------------------- whatever the bytes: records or RecordError

def _use(records) -> None:
    """What every reader of a record relies on must work on whatever `load` returned."""
    for r in records:
        _ = (r.key, r.gpu_key, r.seconds, r.flop_per_s, r.bytes_per_s, r.moved_bytes_per_s, r.intensity,
             r.verify_problem, r.meaningful, dump(r))
    set(r.key for r in records)


def _load_bytes(tmp_path, data: bytes):
    f = tmp_path / "fuzz.jsonl"
    f.write_bytes(data)
    try:
        records = load(f)
    except RecordError as e:
        assert str(e).startswith(str(f)) and "\n" not in str(e)
        return None
    _use(records)
    return records


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                     max_leaves=8)
_FIELDS = sorted(_rec().to_dict())


@st.composite
def _mangled_line(draw) -> bytes:
    d = _rec(time_s={"p50": 1e-6, "samples": [1e-6]}).to_dict()
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["set", "drop", "nest"]))
        key = draw(st.sampled_from(_FIELDS))
        if how == "set":
            d[key] = draw(_json)
        elif how == "drop":
            d.pop(key, None)
        elif isinstance(d.get(key), dict) and d[key]:
            d[key][draw(st.sampled_from(sorted(d[key])))] = draw(_json)
    line = json.dumps(d).encode()
    if draw(st.booleans()):  # cut, or with bytes spliced in
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.binary(max_size=4)) + line[at + draw(st.integers(0, 8)):]
    return line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_are_records_or_one_clear_error(tmp_path, data):
    _load_bytes(tmp_path, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_mangled_line(), min_size=1, max_size=3), newline_at_end=st.booleans())
def test_mangled_lines_are_records_or_one_clear_error(tmp_path, lines, newline_at_end):
    _load_bytes(tmp_path, b"\n".join(lines) + (b"\n" if newline_at_end else b""))


def test_the_fuzzing_reaches_both_outcomes(tmp_path):
    # A property that only ever saw errors (or only records) would check little.
    assert _load_bytes(tmp_path, (dump(_rec()) + "\n").encode()) == [_rec()]
    assert _load_bytes(tmp_path, b"\x1f\x8b\x08") is None
