"""`report --format csv`: every record as one row of one table, with fixed columns.

A spreadsheet, pandas or csv.DictReader reads it as it is: one header line,
one line per record, the same columns whatever the file holds (a missing
value is an empty cell), numbers in base units at full precision.
"""
from __future__ import annotations

import csv
import io

from analysis.records import Record


def _p50(r: Record, name: str):
    stat = (r.telemetry or {}).get(name)
    return stat.get("p50") if isinstance(stat, dict) else None


def _first_line(text: str) -> str:
    text = (text or "").strip()
    return text.splitlines()[0] if text else ""


# (column, value of a record); units are in the names.
COLUMNS = (
    ("host", lambda r: r.env.get("host")),
    ("gpu_name", lambda r: (r.env.get("gpu") or {}).get("name")),
    ("gpu_index", lambda r: (r.env.get("gpu") or {}).get("index")),
    ("gpu_uuid", lambda r: (r.env.get("gpu") or {}).get("uuid")),
    ("run_id", lambda r: r.run_id),
    ("timestamp", lambda r: r.timestamp),
    ("workload", lambda r: r.workload),
    ("family", lambda r: r.family),
    ("view", lambda r: r.view),
    ("roof", lambda r: r.roof),
    ("case", lambda r: r.case),
    ("label", lambda r: r.label),
    ("dtype", lambda r: r.dtype),
    ("impl", lambda r: r.impl),
    ("vendor", lambda r: r.vendor),
    ("role", lambda r: r.role),
    ("backend", lambda r: r.backend),
    ("status", lambda r: r.status),
    ("reason", lambda r: _first_line(r.reason)),
    ("meaningful", lambda r: r.meaningful),
    ("verify_problem", lambda r: r.verify_problem if r.status == "ok" else None),
    ("method", lambda r: (r.timing or {}).get("method")),
    ("inner", lambda r: (r.timing or {}).get("inner")),
    ("rounds", lambda r: (r.timing or {}).get("rounds")),
    ("input_sets", lambda r: (r.timing or {}).get("input_sets")),
    ("time_p50_s", lambda r: (r.time_s or {}).get("p50")),
    ("time_p20_s", lambda r: (r.time_s or {}).get("p20")),
    ("time_p80_s", lambda r: (r.time_s or {}).get("p80")),
    ("time_min_s", lambda r: (r.time_s or {}).get("min")),
    ("samples", lambda r: (r.time_s or {}).get("n")),
    ("eager_estimate_s", lambda r: (r.timing or {}).get("eager_estimate_s")),
    ("graph_estimate_s", lambda r: (r.timing or {}).get("graph_estimate_s")),
    ("launches", lambda r: r.launches),
    ("flops", lambda r: r.flops),
    ("bytes", lambda r: r.bytes),
    ("moved_bytes", lambda r: r.moved_bytes),
    ("flop_per_s", lambda r: r.flop_per_s),
    ("bytes_per_s", lambda r: r.bytes_per_s),
    ("intensity_flop_per_byte", lambda r: r.intensity),
    ("rel_err", lambda r: (r.verify or {}).get("rel_err")),
    ("tolerance", lambda r: (r.verify or {}).get("tolerance")),
    ("max_excess", lambda r: (r.verify or {}).get("max_excess")),
    ("sm_clock_mhz_p50", lambda r: _p50(r, "sm_clock_mhz")),
    ("mem_clock_mhz_p50", lambda r: _p50(r, "mem_clock_mhz")),
    ("power_w_p50", lambda r: _p50(r, "power_w")),
    ("temp_c_p50", lambda r: _p50(r, "temp_c")),
    ("throttle", lambda r: " ".join((r.telemetry or {}).get("throttle") or [])),
    ("joules_per_call", lambda r: (r.energy or {}).get("joules_per_call")),
    ("watts", lambda r: (r.energy or {}).get("watts")),
    ("case_wall_s", lambda r: (r.wall or {}).get("case_s")),
)


def records_csv(records) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([name for name, _ in COLUMNS])
    for r in records:
        w.writerow(["" if v is None else v for v in (get(r) for _, get in COLUMNS)])
    return buf.getvalue()
