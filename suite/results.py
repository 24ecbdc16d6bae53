"""Results files: where a sweep writes, how records reach the disk, and what a resume skips."""
from __future__ import annotations

import datetime as _dt
import os
import re
import uuid
from pathlib import Path

from analysis.records import Record, dump, load


def default_out(gpu_name: str, mode: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{slug}-{mode}-{stamp}.jsonl"


def new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def recorded_keys(path: Path) -> set[tuple]:
    return {r.key for r in load(path)} if path.exists() else set()


class RecordWriter:
    """Append-only JSONL writer: each record is flushed and synced as it is written."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")
        self.count = 0

    def __call__(self, record: Record) -> None:
        self._f.write(dump(record) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.count += 1

    def close(self) -> None:
        self._f.close()

