"""One implementation against another, for the cells of a table: which records face each
other, the ratio of their speeds and the interval it carries.

Rules every table follows:
- A ratio is formed only between two measurements of the same run and the same
  timing method (the sweep times every implementation of a case one way; an older
  file may not have, and then no ratio is shown).
- Every ratio carries a 95% interval from the alternating rounds: both
  implementations were timed in each round, so each round gives one ratio;
  the spread of their logarithms (Student's t over the rounds) sets the
  interval around the ratio of the medians. A ratio whose interval holds 1.0
  is a tie, whatever its point value.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from analysis import roofline as rl
from analysis.tables import one_line

NOT_MEANINGFUL = "not meaningful (interpreter timing)"

# Two-sided 95% quantiles of Student's t, by degrees of freedom (rounds - 1).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042}


def t95(df: int) -> float:
    if df in _T95:
        return _T95[df]
    below = [d for d in _T95 if d <= df]
    return _T95[max(below)] if below else _T95[1]


@dataclass(frozen=True)
class Ratio:
    """A speed ratio with its 95% interval (low, high); None bounds where no interval exists."""
    value: float
    low: float | None = None
    high: float | None = None

    @property
    def tie(self) -> bool:
        return self.low is not None and self.low <= 1.0 <= self.high

    @property
    def verdict(self) -> str:
        if self.low is None:
            return "no interval"
        return "tie" if self.tie else ("faster" if self.value > 1 else "slower")


def method(r) -> str | None:
    return (r.timing or {}).get("method") if r is not None else None


def speed_ratio(a, b) -> Ratio | None:
    """How much faster `a` ran than `b` (b's time / a's time), with its interval; None when the
    two cannot be compared (not both meaningful, different runs or timing methods)."""
    if a is None or b is None or not (a.meaningful and b.meaningful):
        return None
    if a.run_id != b.run_id or method(a) != method(b):
        return None
    value = b.seconds / a.seconds
    ra, rb = (r.time_s.get("round_p50") for r in (a, b))
    if not (isinstance(ra, list) and isinstance(rb, list) and len(ra) == len(rb) >= 3):
        return Ratio(value)
    logs = [math.log(y / x) for x, y in zip(ra, rb) if x > 0 and y > 0]
    if len(logs) < 3:
        return Ratio(value)
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return Ratio(value, value * math.exp(-half), value * math.exp(half))


def independent_ratio(a, b) -> Ratio | None:
    """b's time over a's for two measurements that were not timed in the same rounds (two GPUs,
    two runs): the interval combines each side's round-to-round spread (Welch). None when either
    is not meaningful or the two were timed by different methods."""
    if a is None or b is None or not (a.meaningful and b.meaningful) or method(a) != method(b):
        return None
    value = b.seconds / a.seconds
    ra, rb = (r.time_s.get("round_p50") for r in (a, b))
    if not (isinstance(ra, list) and isinstance(rb, list) and len(ra) >= 3 and len(rb) >= 3):
        return Ratio(value)
    la, lb = [math.log(x) for x in ra if x > 0], [math.log(x) for x in rb if x > 0]
    if len(la) < 3 or len(lb) < 3:
        return Ratio(value)
    se = math.sqrt(statistics.variance(la) / len(la) + statistics.variance(lb) / len(lb))
    half = t95(min(len(la), len(lb)) - 1) * se
    return Ratio(value, value * math.exp(-half), value * math.exp(half))


def why_no_ratio(a, b) -> str:
    """The reason `speed_ratio(a, b)` is None, for a remark."""
    if a is None or b is None:
        return ""
    if not (a.meaningful and b.meaningful):
        return ""
    if a.run_id != b.run_id:
        return "measured in different runs: no ratio"
    if method(a) != method(b):
        return f"timed by different methods ({method(a)}, {method(b)}): no ratio"
    return ""


def best(records, figure: str):
    return rl.best_of([r for r in records if r.meaningful], figure)


def shown(records, figure: str):
    """(value for a cell, the record behind it, a remark) for one implementation's records of one case.

    The best meaningful figure; else an interpreter figure (remarked as not
    meaningful); else the status of a failed or skipped run, with its reason's
    first line (the record keeps the whole text).
    """
    top = best(records, figure)
    if top:
        return getattr(top, figure), top, ""
    timed = [r for r in records if r.status == "ok" and getattr(r, figure) and r.verify_problem is None]
    if timed:
        return getattr(timed[-1], figure), timed[-1], NOT_MEANINGFUL
    for status in ("failed", "skipped"):
        bad = [r for r in records if r.status == status]
        if bad:
            return status, bad[-1], f"{status}: {short_reason(bad[-1].reason)}" if bad[-1].reason else status
    unverified = [r for r in records if r.status == "ok" and r.verify_problem]
    if unverified:
        return "unverified", unverified[-1], f"verification does not pass: {unverified[-1].verify_problem}"
    return None, None, ""


def short_reason(reason: str, limit: int = 90) -> str:
    """A reason's first line, cut to `limit` characters (tables keep one line per row)."""
    return one_line(reason or "", limit)


def sides(records):
    """Split one case's records into Triton (non-vendor) and the fastest vendor implementation's."""
    triton = [r for r in records if not r.vendor]
    vendors: dict[str, list] = {}
    for r in records:
        if r.vendor:
            vendors.setdefault(r.impl, []).append(r)
    if not vendors:
        return triton, [], None
    # The vendor shown is the fastest meaningful one (ties and untimed ones by name).
    name = min(vendors, key=lambda n: (_best_time(vendors[n]), n))
    return triton, vendors[name], name


def _best_time(records) -> float:
    times = [r.seconds for r in records if r.meaningful]
    return min(times) if times else math.inf


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def side_remark(*notes: str) -> str:
    """One remark for a row from the notes on its cells (the same note said once)."""
    seen = []
    for note in notes:
        if note and note not in seen:
            seen.append(note)
    return "; ".join(seen)


def triton_vs_vendor(records, figure: str):
    """One row's worth for a case: (triton value, triton record, vendor name, vendor value, vendor
    record, Ratio or None, remark). The two records face each other from one run."""
    triton, vendor, vendor_name = sides(records)
    t_val, t_rec, t_note = shown(triton, figure)
    v_val, v_rec, v_note = shown(vendor, figure)
    # Pair within one run: the vendor record of the Triton record's run, when there is one.
    if t_rec is not None and v_rec is not None and t_rec.run_id != v_rec.run_id:
        same_run = [r for r in vendor if r.run_id == t_rec.run_id and r.meaningful]
        if same_run:
            v_rec = min(same_run, key=lambda r: r.seconds)
            v_val = getattr(v_rec, figure)
    r = speed_ratio(t_rec, v_rec) if not (t_note or v_note) else None
    remark = side_remark(t_note and f"Triton {t_note}", v_note and f"vendor {v_note}",
                         "" if r or t_note or v_note else why_no_ratio(t_rec, v_rec))
    return t_val, t_rec, vendor_name, v_val, v_rec, r, remark
