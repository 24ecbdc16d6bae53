"""Overhead family: what a launch costs outside the device's work.

launch-empty: an empty Triton kernel (kernels.overhead.empty) and the smallest torch op
(fill_ of one element), one launch per call. The sweep times every implementation both
as back-to-back launches and as a CUDA graph replay and records both estimates
(timing's eager_estimate_s and graph_estimate_s): for a kernel that does nothing, the
back-to-back figure is the host's time per launch (the device waits on it), the graph
figure the device-side cost of one kernel launch.

launch-args12: the same with a Triton kernel of twelve arguments (three more pointers,
four ints, four floats): a Triton launcher's host work grows with its arguments.

Both have a "triton-prepared" implementation too: the same launch prepared once
(kernels.launch) and replayed through the compiled kernel's own launcher, which
skips the binding, specialisation and cache lookup of a call from Python: the
floor of a Triton launch on this host.

launch-sync: one launch, then torch.cuda.synchronize: the round trip a call pays when it
waits for its result (launch, wait, return). A synchronisation cannot be captured in a
graph, so the sweep times it as plain calls and records why.

FLOPs and bytes are 0: these cases are never placed on the roofline. Their figures
depend on the host as much as on the GPU; every record carries the host's CPU model and
the Python, torch and triton versions (env). In Triton's interpreter the calls are
verified (each writes one checkable value) and their timings are not meaningful.
"""
from __future__ import annotations

import torch

from kernels import launch
from kernels import overhead as ko
from suite.registry import Impl, Workload, register


def _flag_inputs(params, dtype, device, gen):
    return {"out": torch.empty(1, device=device, dtype=torch.float32)}


def _flag_reference(inp, params, dtype):
    return torch.ones(1, dtype=torch.float64)


def _sync(device: torch.device):
    # The interpreter runs on the CPU, where there is nothing to wait for.
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _triton_empty(inp):
    out = inp["out"]
    return lambda: ko.empty(out)


def _prepared(inp, call):
    """`call` with its launch prepared once (kernels.launch): the compiled kernel's own launcher,
    without the binding, specialisation and cache lookup of a call from Python."""
    return launch.PrepareOnFirstCall(call, [t for t in inp.values() if isinstance(t, torch.Tensor)])


def _triton_empty_prepared(inp):
    return _prepared(inp, _triton_empty(inp))


def _torch_empty(inp):
    out = inp["out"]
    return lambda: out.fill_(1.0)


def _triton_round_trip(inp):
    out, sync = inp["out"], _sync(inp["out"].device)

    def call():
        ko.empty(out)
        sync()
        return out
    return call


def _torch_round_trip(inp):
    out, sync = inp["out"], _sync(inp["out"].device)

    def call():
        out.fill_(1.0)
        sync()
        return out
    return call


def _args12_inputs(params, dtype, device, gen):
    def one():
        return torch.rand(1, generator=gen, device=device) + 0.5

    # Distinct integers (2..14) and floats in [0.5, 1.5): two arguments swapped change the sum.
    ints = (torch.randperm(13, generator=gen, device=device)[:4] + 2).tolist()
    floats = (torch.rand(4, generator=gen, device=device) + 0.5).tolist()
    return {"a": one(), "b": one(), "c": one(), "ints": tuple(ints), "floats": tuple(floats),
            "out": torch.empty(1, device=device, dtype=torch.float32)}


def _args12_reference(inp, params, dtype):
    args = [inp[n].double().item() for n in ("a", "b", "c")] + list(inp["ints"]) + list(inp["floats"])
    return torch.tensor([sum(w * v for w, v in zip(ko.WEIGHTS, args, strict=True))], dtype=torch.float64)


def _triton_args12(inp):
    out, a, b, c, (i0, i1, i2, i3), (f0, f1, f2, f3) = (inp[n] for n in ("out", "a", "b", "c", "ints", "floats"))
    return lambda: ko.twelve_args(out, a, b, c, i0, i1, i2, i3, f0, f1, f2, f3)


def _triton_args12_prepared(inp):
    return _prepared(inp, _triton_args12(inp))


def _overhead(name, description, args, make_inputs, reference, impls, label):
    case = [{"args": args}]
    return register(Workload(
        name=name, family="overhead", view="overhead", roof="", description=description, dtypes=("fp32",),
        cases={"quick": case, "full": case, "interpret": case}, make_inputs=make_inputs, impls=impls,
        reference=reference, flops=lambda p, d: 0, bytes=lambda p, d: 0, label=lambda p: label))


_overhead("launch-empty", "an empty Triton kernel and a one-element torch op: host and device cost of a launch", 1,
          _flag_inputs, _flag_reference,
          (Impl("triton", vendor=False, prepare=_triton_empty, launches=1),
           Impl("triton-prepared", vendor=False, prepare=_triton_empty_prepared, launches=1),
           Impl("torch", vendor=True, prepare=_torch_empty, backend="torch", launches=1)),
          "empty kernel")
_overhead("launch-args12", "a Triton kernel of twelve arguments that writes one element: a launch's cost per "
          "argument", 12, _args12_inputs, _args12_reference,
          (Impl("triton", vendor=False, prepare=_triton_args12, launches=1),
           Impl("triton-prepared", vendor=False, prepare=_triton_args12_prepared, launches=1)),
          "twelve arguments")
_overhead("launch-sync", "one launch then torch.cuda.synchronize: launch, wait and return", 1,
          _flag_inputs, _flag_reference,
          (Impl("triton", vendor=False, prepare=_triton_round_trip, launches=1),
           Impl("torch", vendor=True, prepare=_torch_round_trip, backend="torch", launches=1)),
          "launch + synchronize")
