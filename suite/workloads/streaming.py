"""Streaming family: copy, scale, add, triad, read-only (sum) and write-only (fill).

Swept over the bytes of one array, from well inside L2 to far beyond it, so the
working-set curve shows the L2 plateau and the HBM plateau; analysis takes the
HBM ceiling only from working sets far beyond L2. Vendor rows are the torch
calls a user would write instead.
"""
from __future__ import annotations

import torch

from kernels import streaming as ks
from suite.dtypes import DTYPES, element_size
from suite.registry import Impl, Workload, register

MiB = 1 << 20

# Bytes of one array. Quick: the two points the ceilings are read from: 8 MiB arrays (working sets
# of 16-24 MiB, where the L2 plateau peaks, well under half of a 50-60 MB L2) and 2 GiB arrays
# (4-6 GiB working sets, far beyond any L2). Full: 2^k and 1.5*2^k from 1 MiB to 2 GiB.
QUICK = (8 * MiB, 2048 * MiB)
FULL = tuple(sorted(int(m * MiB) << k for k in range(12) for m in (1, 1.5) if m * (1 << k) <= 2048))
# Interpreter: tiny, and not multiples of the block (odd byte counts too).
INTERPRET = (4 * 1031, 2 * 4099 + 2, 6 * 1000)


def _label(p) -> str:
    b = p["array_bytes"]
    return f"{b / MiB:g} MiB" if b >= MiB else f"{b} B"


def _inputs(kernel: str):
    reads = ks.KERNELS[kernel].reads

    def make(params, dtype, device, gen):
        n = params["array_bytes"] // element_size(dtype)
        tdt = DTYPES[dtype].torch_dtype

        def rand():
            # Uniform in [0.5, 1.5): never zeros, no cancellation in the sum.
            return (torch.rand(n, device=device, generator=gen, dtype=torch.float32) + 0.5).to(tdt)

        inp = {"a": rand() if reads >= 1 else None, "b": rand() if reads >= 2 else None,
               "s": float(torch.rand((), generator=gen, device=device).item()) + 0.5}
        if kernel == "read":
            inp["out"] = torch.empty(1, device=device, dtype=torch.float32)
        else:
            inp["out"] = torch.empty(n, device=device, dtype=tdt)
        return inp

    return make


def _reference(kernel: str):
    def ref(inp, params, dtype):
        a = inp["a"].double() if inp["a"] is not None else None
        b = inp["b"].double() if inp["b"] is not None else None
        s = inp["s"]
        if kernel == "copy":
            return a
        if kernel == "scale":
            return s * a
        if kernel == "add":
            return a + b
        if kernel == "triad":
            return a + s * b
        if kernel == "read":
            return a.sum().reshape(1)
        return torch.full_like(inp["out"], s, dtype=torch.float64)  # fill

    return ref


# The path a user takes instead, per kernel of the traffic table: the torch call's name and the call.
TORCH_PATHS = {
    "copy": ("torch.copy_", lambda a, b, out, s: out.copy_(a)),
    "scale": ("torch.mul", lambda a, b, out, s: torch.mul(a, s, out=out)),
    "add": ("torch.add", lambda a, b, out, s: torch.add(a, b, out=out)),
    "triad": ("torch.add(alpha)", lambda a, b, out, s: torch.add(a, b, alpha=s, out=out)),
    # The sum's fp32 result as a view: no extra kernel.
    "read": ("torch.sum", lambda a, b, out, s: torch.sum(a, dtype=torch.float32).reshape(1)),
    "fill": ("torch.fill_", lambda a, b, out, s: out.fill_(s)),
}
assert set(TORCH_PATHS) == set(ks.KERNELS), "every streaming kernel has its torch path"


def _torch_path(kernel: str):
    call = TORCH_PATHS[kernel][1]

    def prepare(inp):
        a, b, out, s = inp["a"], inp["b"], inp["out"], inp["s"]
        return lambda: call(a, b, out, s)

    return prepare


def _triton_config(kernel: str):
    def config(inp):
        t = inp["a"] if kernel == "read" else inp["out"]
        return ks.config(kernel, t.numel(), t.dtype)
    return config


for _k, _kernel in ks.KERNELS.items():
    register(Workload(
        name=f"stream-{_k}",
        family="streaming",
        roof="memory",
        description=_kernel.formula,
        dtypes=("fp32", "bf16"),  # fp16 streams exactly like bf16: same bytes
        quick_dtypes=("fp32",),  # bandwidth does not depend on the element type
        cases={
            "quick": [{"array_bytes": b} for b in QUICK],
            "full": [{"array_bytes": b} for b in FULL],
            "interpret": [{"array_bytes": b} for b in INTERPRET],
        },
        make_inputs=_inputs(_k),
        impls=(
            Impl("triton", vendor=False,
                 prepare=lambda inp, k=_k: (lambda: ks.stream(k, inp["a"], inp["b"], inp["out"], inp["s"])),
                 config=_triton_config(_k),
                 launches=2 if _k == "read" else 1),  # read: zeroing the result, then the sum
            Impl(TORCH_PATHS[_k][0], vendor=True, prepare=_torch_path(_k), backend="torch", launches=1),
        ),
        reference=_reference(_k),
        flops=lambda p, d, k=_k: ks.stream_flops(k, p["array_bytes"] // element_size(d)),
        bytes=lambda p, d, k=_k: ks.stream_bytes(k, p["array_bytes"] // element_size(d), element_size(d)),
        label=_label,
        # The sum is one fp32 value whatever the input type (inputs are exact in
        # float64), so its tolerance is set by fp32 accumulation: about
        # sqrt(8192 partials) * 6e-8 ~ 5e-6 expected; dropping one of the
        # 8192 blocks of a 2 GiB array would be 1.2e-4.
        tolerance={"bf16": 5e-5, "fp16": 5e-5, "fp32": 5e-5} if _k == "read" else {},
    ))
