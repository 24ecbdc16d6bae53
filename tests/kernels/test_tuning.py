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


# ---------------------------------------------------------------- the store of choices

import json  # noqa: E402

import triton  # noqa: E402


def _kernel(x_ptr, n, BLOCK):  # stands for the tuned kernel: its module's source names the entries
    pass


class FakeTuner:
    """What launch_autotuned uses of triton.autotune's Autotuner; tuning picks the second candidate."""

    def __init__(self):
        self.arg_names, self.keys = ["x_ptr", "n"], ["n"]
        self.configs = [triton.Config({"BLOCK": 64}, num_warps=4), triton.Config({"BLOCK": 128}, num_warps=8)]
        self.cache, self.base_fn, self.tunings, self.best_config = {}, _kernel, 0, None

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            key = kt.autotune_key(self, args, kwargs)
            if key not in self.cache:
                self.tunings += 1
                self.configs_timings = {c: [1.0 + i] for i, c in enumerate(self.configs)}
                self.cache[key] = self.configs[1]
            self.best_config = self.cache[key]
        return run


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(kt, "_SOURCES", {})
    monkeypatch.setattr(kt, "_REMEMBERED", {})
    monkeypatch.setattr(kt, "_DECIDED", {})
    yield tmp_path
    kt.configure(None, {})


IDENTITY = {"gpu": "NVIDIA H200", "sms": 132, "driver": "580", "torch": "2.11", "triton": "3.6"}


class Tensorish:
    dtype = "torch.float16"


def test_a_choice_is_tuned_once_then_taken_from_the_store(store):
    kt.configure(store, IDENTITY)
    first = FakeTuner()
    run = kt.launch_autotuned("fake", first, None, Tensorish(), 1000, problem=(1000,))
    assert run["source"] == "tuned" and first.tunings == 1 and run["timings"] is not None
    assert run["key"] == (1000, "torch.float16")  # the size it was tuned at, and the dtype
    # A new process: a fresh tuner, the store read anew.
    kt._SOURCES.clear()
    kt._DECIDED.clear()
    kt.configure(store, IDENTITY)
    second = FakeTuner()
    again = kt.launch_autotuned("fake", second, None, Tensorish(), 1000, problem=(1000,))
    assert again["source"] == "cache" and second.tunings == 0 and again["timings"] is None
    assert again["config"].kwargs == {"BLOCK": 128} and again["config"].num_warps == 8
    # Another size is tuned, never borrowed from a neighbour.
    other = kt.launch_autotuned("fake", second, None, Tensorish(), 1001, problem=(1001,))
    assert other["source"] == "tuned" and second.tunings == 1
    # The same problem again in this process: launched directly with the decided configuration.
    launched = []
    second.fn = {None: lambda *a, **k: launched.append(k)}
    quick = kt.launch_autotuned("fake", second, None, Tensorish(), 1001, problem=(1001,))
    assert quick["fresh"] is False and launched == [{"BLOCK": 128, **{k: v for k, v in
                                                    second.configs[1].all_kwargs().items() if k != "BLOCK"}}]


def test_retune_ignores_the_store_and_another_identity_never_reads_it(store):
    kt.configure(store, IDENTITY)
    kt.launch_autotuned("fake", FakeTuner(), None, Tensorish(), 7, problem=(7,))
    kt._SOURCES.clear()
    kt._DECIDED.clear()
    kt.configure(store, IDENTITY, retune=True)
    t = FakeTuner()
    assert kt.launch_autotuned("fake", t, None, Tensorish(), 7, problem=(7,))["source"] == "tuned" and t.tunings == 1
    kt._SOURCES.clear()
    kt._DECIDED.clear()
    kt.configure(store, {**IDENTITY, "triton": "3.9"})
    t = FakeTuner()
    assert kt.launch_autotuned("fake", t, None, Tensorish(), 7, problem=(7,))["source"] == "tuned" and t.tunings == 1


def test_a_changed_kernel_module_does_not_reuse_old_choices(store, monkeypatch):
    kt.configure(store, IDENTITY)
    kt.launch_autotuned("fake", FakeTuner(), None, Tensorish(), 9, problem=(9,))
    kt._SOURCES.clear()
    kt._DECIDED.clear()
    monkeypatch.setattr(kt, "_source_digest", lambda path: "another-source")
    kt.configure(store, IDENTITY)
    t = FakeTuner()
    assert kt.launch_autotuned("fake", t, None, Tensorish(), 9, problem=(9,))["source"] == "tuned" and t.tunings == 1


def test_a_cut_store_file_is_tuned_again_not_a_crash(store):
    kt.configure(store, IDENTITY)
    kt.launch_autotuned("fake", FakeTuner(), None, Tensorish(), 5, problem=(5,))
    path = kt.store_path()
    text = open(path).read()
    open(path, "w").write(text[: len(text) // 2])
    kt._SOURCES.clear()
    kt._DECIDED.clear()
    kt.configure(store, IDENTITY)
    t = FakeTuner()
    assert kt.launch_autotuned("fake", t, None, Tensorish(), 5, problem=(5,))["source"] == "tuned"
    assert json.loads(open(path).read())["identity"] == IDENTITY  # rewritten whole


def test_remembered_choices(store):
    kt.configure(store, IDENTITY)
    calls = []
    compute = lambda: calls.append(1) or {"transpose_first": True}  # noqa: E731
    assert kt.remembered("layout", (1, 2), compute, __file__) == ({"transpose_first": True}, "tuned")
    assert kt.remembered("layout", (1, 2), compute, __file__)[1] == "tuned"  # this process: no second compute
    kt._REMEMBERED.clear()
    kt.configure(store, IDENTITY)
    assert kt.remembered("layout", (1, 2), compute, __file__) == ({"transpose_first": True}, "cache")
    assert len(calls) == 1


def test_choices_are_kept_per_launcher_and_key():
    kt.record_choice("op-a", (1,), {"BLOCK": 1})
    kt.record_choice("op-a", (2,), {"BLOCK": 2})
    assert kt.chosen("op-a", (1,))["BLOCK"] == 1 and kt.chosen("op-a")["BLOCK"] == 2  # the latest
    assert kt.chosen("op-a", (3,)) is None


class _Warmups:
    """A jit function's warmup as precompile uses it: notes each configuration, fails on one."""

    def __init__(self, fail_block=None):
        self.seen, self.fail_block = [], fail_block

    def warmup(self, *args, grid, **kwargs):
        self.seen.append((kwargs["BLOCK"], kwargs["num_warps"], kwargs.get("OP")))
        if kwargs["BLOCK"] == self.fail_block:
            raise RuntimeError("out of resources")


class _PoolMode:
    """Stands in for triton.AsyncCompileMode: records that the warmups ran inside it."""
    entered = []

    def __init__(self, pool, ignore_errors=False):
        self.ignore_errors = ignore_errors

    def __enter__(self):
        _PoolMode.entered.append(self.ignore_errors)
        return self

    def __exit__(self, *exc):
        return False


def test_precompile_submits_every_pruned_candidate_at_once(monkeypatch):
    monkeypatch.setattr(kt.triton, "AsyncCompileMode", _PoolMode, raising=False)
    _PoolMode.entered.clear()
    tuner = FakeTuner()
    tuner.fn = _Warmups(fail_block=64)  # one candidate fails to compile: left to the tuner
    tuner.configs.append(triton.Config({"BLOCK": 256}, num_warps=8))
    tuner.prune_configs = lambda kwargs: [c for c in tuner.configs if c.kwargs["BLOCK"] != 256 and tuner.nargs]
    assert kt.precompile(tuner, None, (Tensorish(), 1000), {"OP": 2}) == 2
    assert tuner.fn.seen == [(64, 4, 2), (128, 8, 2)]  # the pruned ones, with the launch's own arguments
    assert _PoolMode.entered == [True] and tuner.nargs is None


def test_precompile_does_nothing_for_one_candidate_or_without_async_compiles(monkeypatch):
    tuner = FakeTuner()
    tuner.fn = _Warmups()
    monkeypatch.setattr(kt.triton, "AsyncCompileMode", _PoolMode, raising=False)
    tuner.prune_configs = lambda kwargs: tuner.configs[:1]
    assert kt.precompile(tuner, None, (Tensorish(), 1000), {}) == 0 and tuner.fn.seen == []
    monkeypatch.delattr(kt.triton, "AsyncCompileMode", raising=False)
    tuner.prune_configs = lambda kwargs: tuner.configs
    assert kt.precompile(tuner, None, (Tensorish(), 1000), {}) == 0 and tuner.fn.seen == []
