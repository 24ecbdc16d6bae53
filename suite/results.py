"""Results files: where a sweep writes, how records reach the disk, and what a resume skips.

A results file grows by whole lines, one record each, and never mixes runs by accident:

- a sweep refuses an --out that already holds records unless told what to do with them:
  `--resume` continues that sweep, skipping what it measured (its records must come from this
  host, these GPUs and this record schema), `--append` adds a new run beside them;
- a last line cut short (a sweep killed while writing it) is moved aside, to
  FILE.partial-<time>, before anything is appended: no record is ever glued onto it.

The CLI calls `prepare_output` before a sweep starts, so every refusal comes before any work.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import sys
import uuid
from pathlib import Path
from typing import Iterable

from analysis.records import SCHEMA_VERSION, Record, RecordError, dump, load, parse
from suite.errors import UsageError

# Where records were measured: (host, GPU UUID), the UUID None on the CPU (--interpret).
Identity = tuple[str | None, str | None]


def default_out(gpu_name: str, mode: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{slug}-{mode}-{stamp}.jsonl"


def new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def identity(env: dict) -> Identity:
    return env.get("host"), (env.get("gpu") or {}).get("uuid")


def recorded_keys(path: Path) -> set[tuple]:
    return {r.key for r in load(path)} if path.exists() else set()


def continue_command(argv: list[str], out: Path, *, out_given: bool, resumed: bool) -> str:
    """The whole command that continues an interrupted sweep of `argv` into `out`."""
    tokens = list(argv) + ([] if out_given else ["--out", str(out)]) + ([] if resumed else ["--resume"])
    return "python -m suite " + shlex.join(tokens)


# ---------------------------------------------------------------- before a sweep

def check_writable(path: Path) -> None:
    """Refuse, in one line, an --out that cannot take records: a directory, a path under a
    regular file, a device, a file or directory this user may not write."""
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory: name a results file, e.g. {path / 'results.jsonl'}")
    if path.exists() and not path.is_file():
        raise UsageError(f"--out {path} is not a regular file")
    blocker = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise UsageError(f"cannot write --out {path}: {blocker} is a file, not a directory")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        open(path, "ab").close()
    except OSError as e:
        raise UsageError(f"cannot write --out {path}: {e.strerror or e}") from None
    if not existed:
        path.unlink(missing_ok=True)  # only probed: a sweep refused later leaves no empty file


def prepare_output(path: Path, *, resume: bool, append: bool, machine: Iterable[Identity],
                   parts: Iterable[Path] = ()) -> set[tuple]:
    """Check `path` (and the part files of an interrupted --all-gpus sweep) before a sweep
    writes to it, set aside a cut last line, and return the keys of the measurements a resume
    skips. `machine`: the identities (host, GPU UUID) the sweep's records will carry."""
    files = [path, *parts]
    check_writable(path)
    if resume and not any(f.exists() for f in files):
        raise UsageError(f"--resume needs --out naming an existing results file; {path} does not exist")
    held = {f: recs for f in files if f.exists() and (recs := whole_records(f))}
    if held and not (resume or append):
        if path in held:
            raise UsageError(f"{path} already holds {_records(held[path])}: add --resume to continue that "
                             "sweep (skipping what it measured), --append to add this run to the file, or "
                             "name another --out")
        listed = ", ".join(f"{f} ({_records(recs)})" for f, recs in held.items())
        raise UsageError(f"{path} has part files of an interrupted --all-gpus sweep: {listed}; add --resume to "
                         "continue it, --append to keep them in this run, or name another --out")
    if resume:
        machine = set(machine)
        for f, recs in held.items():
            check_same_machine(f, recs, machine)
    # Records will be appended: only now may a cut last line move.
    for f in files:
        if f.exists():
            set_aside_cut_line(f)
    return {r.key for recs in held.values() for r in recs} if resume else set()


def check_same_machine(path: Path, records: list[Record], machine: set[Identity]) -> None:
    """--resume continues a run: refuse records of another record schema, host or GPU."""
    advice = "resume where they were measured, or name a new --out"
    older = [r for r in records if r.schema != SCHEMA_VERSION]
    if older:
        raise UsageError(f"--resume: {path} holds {_records(older)} of schema {older[0].schema}, and this "
                         f"suite writes schema {SCHEMA_VERSION}: name a new --out (report reads both)")
    hosts = sorted({str(h) for h, _ in machine})
    away = [r for r in records if r.env.get("host") not in {h for h, _ in machine}]
    if away:
        raise UsageError(f"--resume: {path} holds {_records(away)} measured on host "
                         f"{away[0].env.get('host')!r}, and this is {' / '.join(hosts)}: {advice}")
    gpus = {u for _, u in machine}
    other = [r for r in records if identity(r.env)[1] not in gpus]
    if other:
        here = ", ".join(sorted(_gpu_phrase(u) for u in gpus))
        raise UsageError(f"--resume: {path} holds {_records(other)} measured on "
                         f"{_gpu_phrase(identity(other[0].env)[1], other[0].env)}, and this sweep runs on "
                         f"{here}: {advice}")


def _records(records: list) -> str:
    return f"{len(records)} record" + ("" if len(records) == 1 else "s")


def _gpu_phrase(uuid_: str | None, env: dict | None = None) -> str:
    if uuid_ is None:
        return "the CPU (--interpret)"
    name = ((env or {}).get("gpu") or {}).get("name")
    return f"GPU {uuid_}" + (f" ({name})" if name else "")


def whole_records(path: Path) -> list[Record]:
    """The records of `path`, without a last line cut short (which `set_aside_cut_line` moves)."""
    return _split(path)[0]


def _split(path: Path) -> tuple[list[Record], int, bytes]:
    """(the whole records, where a cut last line starts, its bytes: b"" where there is none).

    A cut line is a last line, without its newline, that begins a record but does not hold a
    whole one; any other fault of the file is its reader's error (RecordError)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RecordError(f"{path}: cannot read ({e.strerror or e})") from None
    if not data or data.endswith(b"\n"):
        return parse(data, path), len(data), b""
    start = data.rfind(b"\n") + 1
    head, tail = parse(data[:start], path), data[start:]
    try:
        return head + parse(tail, path), len(data), b""  # a whole record that lacks only its newline
    except RecordError:
        if not tail.startswith(b"{"):
            raise
    return head, start, tail


def set_aside_cut_line(path: Path) -> Path | None:
    """A file whose last line has no newline was cut while a record was written: move that
    line to PATH.partial-<time> (saying so on stderr) and return where, so the next record
    starts a line of its own. A last line that is a whole record only gets its newline.
    Nothing is touched unless every line before it is a whole record."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return None
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return None
    _, start, tail = _split(path)
    if not tail:
        with open(path, "ab") as f:
            _write_all(f, b"\n")
        return None
    with _new_side_file(path) as side:  # the cut bytes are safe on disk before the file loses them
        _write_all(side, tail)
    os.truncate(path, start)
    _sync(path)
    print(f"warning: {path} ended in a line cut short ({len(tail)} bytes: a sweep stopped while writing "
          f"it); moved that line to {side.name}", file=sys.stderr)
    return Path(side.name)


def _new_side_file(path: Path):
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        side = path.with_name(f"{path.name}.partial-{stamp}" + (f"-{n}" if n else ""))
        try:
            return open(side, "xb", buffering=0)
        except FileExistsError:
            continue
    raise UsageError(f"cannot set aside the cut last line of {path}: too many {path.name}.partial-* files")


def _write_all(f, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view):]
    f.flush()
    os.fsync(f.fileno())


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- during a sweep

class RecordWriter:
    """Append-only JSONL writer: each record is written whole, flushed and synced as it is
    written; a cut line left by an earlier, killed writer is set aside first."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            set_aside_cut_line(path)
        self._f = open(path, "ab", buffering=0)
        self.count = 0

    def __call__(self, record: Record) -> None:
        try:
            _write_all(self._f, (dump(record) + "\n").encode())
        except OSError as e:
            e.filename = e.filename or str(self.path)  # a failed write names no file by itself
            raise
        self.count += 1

    def close(self) -> None:
        self._f.close()


def open_writer(path: Path) -> RecordWriter:
    """A RecordWriter on `path`, or one line saying why it cannot be opened."""
    try:
        return RecordWriter(path)
    except OSError as e:
        raise UsageError(f"cannot write --out {path}: {e.strerror or e}") from None
