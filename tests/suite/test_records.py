"""The record schema: round trip, derived figures, malformed input."""
import json

import pytest

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
