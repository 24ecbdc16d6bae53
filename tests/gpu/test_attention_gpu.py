"""Attention on a real GPU: bf16 at realistic sizes, every configuration the fused
kernel tunes over, the SDPA backends' availability handling, and the target
case (B=4, H=32, S=4096, D=128, bf16) end to end through the runner.

Run on the device with `-s` to see the target case's TFLOP/s table (lines
starting "attention-target").
"""
import math

import pytest
import torch

from conftest import HAS_CUDA
from kernels import attention as ka
from suite import env, runner, timing, verify
from suite.dtypes import DTYPES
from suite.registry import Skip
from suite.workloads import all_workloads
from suite.telemetry import nvml_handle

pytestmark = pytest.mark.gpu

W = all_workloads()["attention-fwd"]
BF16_TOL = DTYPES["bf16"].tolerance
SDPA = ("sdpa-flash", "sdpa-cudnn", "sdpa-efficient")


def _candidates(head_dim):
    """(config, causal) pairs: every candidate the tuner may pick for each masking."""
    if not HAS_CUDA:
        return []
    cap = torch.cuda.get_device_capability()
    return [pytest.param(c, causal, id=f"{c.name}-{'causal' if causal else 'full'}")
            for causal in (False, True) for c in ka.flash_candidates(head_dim, cap)]


def _case(B, H, S, D, causal):
    return {"B": B, "H": H, "S": S, "D": D, "causal": causal}


def _inputs(params, dtype="bf16", seed=0):
    return W.make_inputs(params, dtype, "cuda", torch.Generator(device="cuda").manual_seed(seed))


def _err(out, inputs, params, dtype="bf16"):
    return verify.rel_error(W.check_view(out, params), W.reference(inputs, params, dtype))


def _impl(name):
    return next(i for i in W.impls if i.name == name)


@pytest.mark.parametrize("cfg, causal", _candidates(128))
def test_every_fused_config_bf16(cfg, causal):
    params = _case(2, 8, 2048, 128, causal)
    inp = _inputs(params)
    inp["out"].fill_(math.nan)
    out = ka.flash_attention(inp["q"], inp["k"], inp["v"], causal, out=inp["out"], config=cfg)
    assert _err(out, inp, params) <= BF16_TOL


@pytest.mark.parametrize("cfg, causal", _candidates(64))
def test_every_fused_config_ragged(cfg, causal):
    """S = 1000: not a multiple of any block; TMA zero-fills the tail reads and clips the writes."""
    params = _case(1, 4, 1000, 64, causal)
    inp = _inputs(params, seed=1)
    inp["out"].fill_(math.nan)
    out = ka.flash_attention(inp["q"], inp["k"], inp["v"], causal, out=inp["out"], config=cfg)
    assert _err(out, inp, params) <= BF16_TOL


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_tuned_fused_and_naive_bf16(causal):
    params = _case(2, 8, 2048, 128, causal)
    inp = _inputs(params, seed=2)
    for name in ("triton-fused", "triton-naive", "torch-naive"):
        fn = _impl(name).prepare(inp)
        verify.poison(inp)
        assert _err(fn(), inp, params) <= BF16_TOL, name
    cfg = ka.flash_attention_config(inp["q"], causal)
    assert cfg["name"] in cfg["tuning_ms"], cfg  # the choice was timed, and agreed with the baseline
    print(f"\nattention-tuning causal={causal}: {cfg}")


@pytest.mark.parametrize("name", SDPA)
def test_sdpa_backend_runs_or_skips_with_a_reason(name):
    params = _case(2, 8, 2048, 128, True)
    inp = _inputs(params, seed=3)
    try:
        fn = _impl(name).prepare(inp)
    except Skip as e:
        assert str(e).startswith("SDPA") and len(str(e)) > 40, str(e)
        pytest.skip(f"{name}: {e}")
    assert _err(fn(), inp, params) <= BF16_TOL


@pytest.mark.parametrize("name", ("sdpa-flash", "sdpa-cudnn"))
def test_sdpa_refusal_is_a_recorded_skip(name):
    """The flash and cuDNN backends take only fp16/bf16: fp32 must skip, not fall back to another backend."""
    q = torch.randn(1, 2, 256, 64, device="cuda")
    with pytest.raises(Skip, match="SDPA"):
        _impl(name).prepare({"q": q, "k": q, "v": q, "out": torch.empty_like(q), "causal": False})


def test_sdpa_backends_launch_their_own_kernels():
    """Each backend row runs different CUDA kernels: the restriction to one backend is real."""
    params = _case(1, 8, 1024, 128, False)
    inp = _inputs(params, seed=4)
    kernels = {}
    for name in SDPA:
        try:
            fn = _impl(name).prepare(inp)
        except Skip:
            continue
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        kernels[name] = frozenset(e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
        print(f"\n{name}: {sorted(kernels[name])}")
    assert len(kernels) >= 2, f"fewer than two SDPA backends ran: {sorted(kernels)}"
    assert len(set(kernels.values())) == len(kernels), kernels


def test_naive_paths_skip_when_the_scores_do_not_fit():
    params = _case(4, 32, 16384, 128, True)  # S and P: 2 x 64 GiB in bf16
    q = torch.empty((4, 32, 16384, 128), dtype=torch.bfloat16, device="cuda")
    inp = {"q": q, "k": q, "v": q, "out": q, "causal": True}
    for name in ("triton-naive", "torch-naive"):
        with pytest.raises(Skip, match="GiB"):
            _impl(name).prepare(inp)
    assert params in W.cases["quick"]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_target_case_end_to_end(causal):
    """The issue's bar: fused >= 0.85x SDPA cuDNN here (asserted loosely; the sweep records it)."""
    ctx = runner.Context(device="cuda:0", env=env.collect(0, command="test"), interpret=False,
                         policy=timing.TimingPolicy(budget_s=0.1), run_id="gpu-test", nvml=nvml_handle(0))
    params = _case(4, 32, 4096, 128, causal)
    recs = []
    runner.run_task(runner.Task(W, params, "bf16"), ctx, recs.append)
    by = {r.impl: r for r in recs}
    for r in recs:
        rate = f"{r.flop_per_s / 1e12:7.1f} TFLOP/s {r.moved_bytes_per_s / 1e12:6.2f} TB/s moved" if r.seconds else ""
        print(f"\nattention-target causal={causal} {r.impl:15s} {r.status:7s} {rate} {r.reason[:120]}")
    assert by["triton-fused"].status == "ok", by["triton-fused"].reason
    assert by["triton-naive"].status == "ok", by["triton-naive"].reason
    for r in recs:
        assert r.status in ("ok", "skipped"), (r.impl, r.reason)
    print(f"\nattention-target causal={causal} config: {by['triton-fused'].config}")
    cudnn = by.get("sdpa-cudnn")
    if cudnn is not None and cudnn.status == "ok":
        ratio = by["triton-fused"].flop_per_s / cudnn.flop_per_s
        print(f"\nattention-target causal={causal} fused / cuDNN = {ratio:.3f} (issue bar: 0.85)")
        assert ratio >= 0.5, f"fused at {ratio:.2f}x cuDNN: far off the tuned kernel's expected speed"
    # The naive path is memory-bound: its real traffic rate must be a possible one.
    assert by["triton-naive"].moved_bytes_per_s < 6e12
