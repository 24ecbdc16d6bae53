"""kernels/launch.py: a prepared step replays its launches in order, writes what the step writes,
and a launch that bypassed the recorder shows up as NaN once the step's scratch is poisoned.

Runs through Triton's interpreter on the CPU (each recorded launch called again) and compiled on a
GPU (each launch straight into its compiled kernel's launcher)."""
import math

import pytest
import torch
import triton
import triton.language as tl

from conftest import INTERPRETING  # noqa: F401  (sets TRITON_INTERPRET before kernels import)
from kernels import launch as kl
from suite import verify

BLOCK = 64


@triton.jit
def _axpb_kernel(x_ptr, y_ptr, n, a, b, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n
    tl.store(y_ptr + i, a * tl.load(x_ptr + i, mask=ok) + b, mask=ok)


def _two_step(x, mid, out, bypass_first=False):
    """mid = 2x + 1 and then out = 3 mid - 1 (= 6x + 2), each one launch."""
    n = x.numel()
    grid = (triton.cdiv(n, BLOCK),)
    if bypass_first:
        _axpb_kernel[grid](x, mid, n, 2.0, 1.0, BLOCK=BLOCK)  # not through kernels.launch: not recorded
    else:
        kl.launch(_axpb_kernel, grid, x, mid, n, 2.0, 1.0, BLOCK=BLOCK)
    kl.launch(_axpb_kernel, lambda meta: (triton.cdiv(n, meta["BLOCK"]),), mid, out, n, 3.0, -1.0, BLOCK=BLOCK)
    return out


def _tensors(device, n=300):
    x = torch.randn(n, generator=torch.Generator(device=device).manual_seed(0), device=device)
    return x, torch.empty_like(x), torch.empty_like(x)


def test_a_prepared_step_replays_every_launch_in_order(device):
    x, mid, out = _tensors(device)
    step = kl.prepare(lambda: _two_step(x, mid, out), inputs=[x, out])
    assert len(step.launches) == 2 and step.result is out
    assert [t.data_ptr() for t in step.scratch] == [mid.data_ptr()]  # the step's own buffer, not x or out
    assert (step.launches[0].run is None) == INTERPRETING  # compiled kernels' launchers on a GPU
    verify.poison({"out": out, "scratch": step.scratch})
    assert step() is out
    assert torch.allclose(out, 6 * x + 2, atol=1e-5) and torch.allclose(mid, 2 * x + 1, atol=1e-5)
    x.copy_(torch.arange(x.numel(), device=device, dtype=x.dtype))  # new values, same buffer: the replay reads them
    step()
    assert torch.allclose(out, 6 * x + 2, atol=1e-4)


def test_a_launch_that_bypassed_the_recorder_leaves_nan(device):
    x, mid, out = _tensors(device)
    step = kl.prepare(lambda: _two_step(x, mid, out, bypass_first=True), inputs=[x, out])
    assert len(step.launches) == 1
    assert torch.allclose(out, 6 * x + 2, atol=1e-5)  # the recorded call itself was right
    verify.poison({"out": out, "scratch": step.scratch})
    step()
    assert torch.isnan(out).all()  # the replay read the poisoned intermediate


def test_a_step_without_recorded_launches_is_refused(device):
    x, mid, out = _tensors(device)
    with pytest.raises(ValueError, match="launched nothing"):
        kl.prepare(lambda: out.copy_(x), inputs=[x, out])


def test_launches_outside_prepare_are_not_kept(device):
    x, mid, out = _tensors(device)
    _two_step(x, mid, out)  # plain calls: nothing recording
    assert kl._recording.get() is None
    step = kl.prepare(lambda: _two_step(x, mid, out), inputs=[x, out])
    assert len(step.launches) == 2  # the second of prepare's two calls only


def test_poison_fills_out_and_scratch_but_not_integers():
    out, mid, counters = torch.zeros(3), torch.zeros(2), torch.zeros(2, dtype=torch.int32)
    verify.poison({"out": out, "scratch": [mid, counters]})
    assert torch.isnan(out).all() and torch.isnan(mid).all() and counters.eq(0).all()
    assert not math.isnan(counters[0].item())


def test_a_configuration_with_a_pre_hook_is_refused_while_recording():
    token = kl._recording.set([])
    try:
        with pytest.raises(ValueError, match="pre_hook"):
            kl.record(object(), (1,), (), {}, pre_hook=lambda nargs: None)
    finally:
        kl._recording.reset(token)
    kl.record(object(), (1,), (), {}, pre_hook=lambda nargs: None)  # not recording: nothing to refuse


def test_a_decided_configuration_runs_its_pre_hook_before_each_launch(monkeypatch):
    import kernels.tuning as kt

    hooked, launched = [], []
    config = triton.Config({"BLOCK": 64}, num_warps=4, pre_hook=lambda nargs: hooked.append(nargs["n"]))

    class Tuner:
        arg_names = ["x_ptr", "n"]
        fn = {None: lambda *a, **k: launched.append(a)}

    monkeypatch.setattr(kt, "_DECIDED", {("t", (5,)): {"config": config, "source": "tuned", "fresh": False}})
    kt.launch_autotuned("t", Tuner(), None, "x", 5, problem=(5,))
    assert hooked == [5] and launched == [("x", 5)]


def test_prepare_on_first_call_prepares_once_then_replays(device):
    x, mid, out = _tensors(device)
    seen = []
    step = kl.PrepareOnFirstCall(lambda: _two_step(x, mid, out), [x, out], then=seen.append)
    assert step() is out and len(seen) == 1 and seen[0] is step.prepared
    assert [t.data_ptr() for t in seen[0].scratch] == [mid.data_ptr()]
    verify.poison({"out": out, "scratch": step.prepared.scratch})
    assert step() is out and len(seen) == 1  # replayed, not prepared again
    assert torch.allclose(out, 6 * x + 2, atol=1e-5)
