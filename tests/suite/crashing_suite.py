"""`python -m suite` with one rank made to fail: a stand-in for the distributed tests.

CRASH_RANK names the rank and CRASH_HOW the way: "kill" (SIGKILL, as the
out-of-memory killer would) or "raise" (an error that no case handler
catches: the disk filling up) when the rank is about to write its third
sweep record, or to measure its third collective point, so some records are
already on disk; or "wrong": the rank's collectives return a wrong output.
Workers that torchrun starts run this script again (distributed.ENTRY), so
the fault reaches them.
"""
import errno
import os
import signal
import sys

from suite import cli, collectives, distributed, results, runner

distributed.ENTRY = (os.path.abspath(__file__),)


def _strike_if_due(count: int) -> None:
    if os.environ.get("RANK") != os.environ.get("CRASH_RANK") or count != 2:
        return
    if os.environ["CRASH_HOW"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, "No space left on device (injected)")


_write = results.RecordWriter.__call__


def _faulty_write(self, record):
    _strike_if_due(self.count)
    _write(self, record)


_point = collectives._point
_points_done = [0]


def _faulty_point(*args, **kwargs):
    _strike_if_due(_points_done[0])
    _points_done[0] += 1
    return _point(*args, **kwargs)


_make_call = collectives.make_call


def _wrong_call(lay, send, recv, rank):
    call = _make_call(lay, send, recv, rank)
    if str(rank) != os.environ.get("CRASH_RANK"):
        return call

    def off_by_one():
        call()
        recv.add_(1)
    return off_by_one


if os.environ.get("CRASH_HOW") == "wrong":
    collectives.make_call = _wrong_call
else:
    results.RecordWriter.__call__ = _faulty_write
    collectives._point = _faulty_point

if __name__ == "__main__":
    sys.exit(cli.main())
