"""The tuning helpers' logic, with the device timer replaced by a model (no GPU needed)."""
import pytest

import kernels.tuning as kt


def _heating_timer(cost, heat_per_call, log):
    """A fake device timer: each call reads its candidate's cost plus the heat so far within a round."""
    state = {"calls": 0}

    def timer(fn, rep=25):
        name = fn()
        log.append(name)
        t = cost[name] + heat_per_call * (state["calls"] % len(cost))
        state["calls"] += 1
        return t
    return timer


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_candidate_is_timed_once_in_every_position(monkeypatch, n):
    log = []
    names = [f"c{i}" for i in range(n)]
    monkeypatch.setattr(kt, "device_time_ms", _heating_timer({k: 1.0 for k in names}, 0.0, log))
    kt.interleaved_times_ms({k: (lambda k=k: k) for k in names})
    assert len(log) == n * n
    rounds = [log[r * n:(r + 1) * n] for r in range(n)]
    for r in rounds:
        assert sorted(r) == names  # each round times every candidate once
    for pos in range(n):
        assert sorted(r[pos] for r in rounds) == names  # and each candidate sits in every position once


@pytest.mark.parametrize("n", [2, 3, 4])
def test_a_drift_with_position_does_not_pick_the_first_candidate(monkeypatch, n):
    # The last candidate is truly fastest by 0.05, but each later position in a
    # round reads 0.1 slower: timed once in order, it would lose to the first.
    names = [f"c{i}" for i in range(n)]
    cost = {k: 1.0 for k in names}
    cost[names[-1]] = 0.95
    log = []
    monkeypatch.setattr(kt, "device_time_ms", _heating_timer(cost, 0.1, log))
    sequential = {k: kt.device_time_ms(lambda k=k: k) for k in names}
    assert min(sequential, key=sequential.get) == names[0]
    times = kt.interleaved_times_ms({k: (lambda k=k: k) for k in names})
    assert min(times, key=times.get) == names[-1]
    assert times[names[0]] - times[names[-1]] == pytest.approx(0.05)
