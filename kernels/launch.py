"""Prepared launches: the Triton launches of a step recorded once, then replayed through each
compiled kernel's own launcher.

A launcher called from Python checks its arguments, allocates its outputs and looks its tuner's
choice up, and then calling the @triton.jit function (`fn[grid](*args)`) binds the arguments,
works out their specialisation (dtypes, 16-byte alignment, which integers are 1) and looks the
compiled kernel up before it launches. In a decode step that Python work, not the launch itself,
is most of the host's time, and it repeats on arguments that do not change from one step to the
next (the same buffers, the same sizes), so it can be done once:

    step = prepare(lambda: layer_step(x, ...), inputs=[x, *weights, k_cache, v_cache, out])
    step()  # the same launches, each straight into its compiled kernel

`prepare` runs the step once to compile and tune it, then once more recording every launch made
through `launch` (or reported by `record`): the compiled kernel, its grid and its bound arguments,
tensors kept and passed as their device addresses. The prepared step replays them in order on the
current stream (a CUDA graph can capture it). Under Triton's interpreter there is no compiled
kernel: a replay calls each recorded launch again the ordinary way.

What a replay assumes is what a CUDA graph of the step assumes: the same tensors, the same scalar
arguments, the same grids. A step whose arguments change (a longer context, a new output buffer)
is prepared again. Work that does not go through `launch` (a torch op, a kernel launched directly)
is not replayed; the tensors the step allocated for itself (`Prepared.scratch`: every floating
tensor argument that is not one of `inputs`) are what a verification poisons, so an intermediate
that a replay no longer writes shows up as NaN in the output instead of the recording's stale
value.
"""
from __future__ import annotations

import contextvars
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

_recording: contextvars.ContextVar[list | None] = contextvars.ContextVar("kernels_launch_recording", default=None)


def launch(fn, grid, *args, **kwargs) -> None:
    """fn[grid](*args, **kwargs); recorded when a `prepare` is recording."""
    fn[grid](*args, **kwargs)
    record(fn, grid, args, kwargs)


def record(fn, grid, args: tuple, kwargs: dict, pre_hook=None) -> None:
    """Note a launch of the @triton.jit function `fn` that was just made (by an autotuner, for
    one): a `prepare` that is recording replays it. A launch whose configuration runs a pre_hook
    first (zeroing a buffer, say) cannot be replayed without it, and a recording refuses it."""
    launches = _recording.get()
    if launches is not None:
        if pre_hook is not None:
            raise ValueError(f"prepare: {getattr(fn, '__name__', fn)} runs a configuration pre_hook, which a "
                             "replay would skip")
        launches.append(_Recorded.of(fn, grid, args, kwargs))


@dataclass
class _Recorded:
    fn: Any
    grid: Any
    args: tuple
    kwargs: dict
    run: Callable | None = None  # the compiled kernel's launcher for this grid (None: interpreted)
    values: tuple = ()  # every parameter's value in order, tensors as device addresses

    @classmethod
    def of(cls, fn, grid, args: tuple, kwargs: dict) -> "_Recorded":
        rec = cls(fn, grid, args, dict(kwargs))
        if interpreted(fn):
            return rec
        sig = inspect.signature(fn.fn)
        bound = sig.bind(*args, **{k: v for k, v in kwargs.items() if k in sig.parameters})
        bound.apply_defaults()
        named = dict(bound.arguments)
        g = grid(named) if callable(grid) else grid
        g = tuple(g) + (1,) * (3 - len(g))
        kernel = fn.warmup(*args, grid=g, **kwargs)  # the kernel the launch just ran; compiles nothing
        rec.run = kernel[g]
        rec.values = tuple(v.data_ptr() if isinstance(v, torch.Tensor) else v for v in named.values())
        return rec

    def tensors(self) -> list[torch.Tensor]:
        return [v for v in (*self.args, *self.kwargs.values()) if isinstance(v, torch.Tensor)]


def interpreted(fn) -> bool:
    """Whether `fn` is a @triton.jit function made for Triton's interpreter (no compiled kernel)."""
    return type(fn).__name__ == "InterpretedFunction"


@dataclass
class Prepared:
    """A step's launches, replayed by calling it; returns what the recorded call of the step
    returned (its output tensor, written again by every replay)."""
    launches: list[_Recorded]
    result: Any
    device: torch.device
    scratch: list[torch.Tensor] = field(default_factory=list)

    def __call__(self):
        stream = torch.cuda.current_stream(self.device).cuda_stream if self.device.type == "cuda" else None
        for rec in self.launches:
            if rec.run is not None:
                rec.run(*rec.values, stream=stream)
            else:
                rec.fn[rec.grid](*rec.args, **rec.kwargs)
        return self.result


def prepare(step: Callable[[], Any], inputs: Iterable[torch.Tensor]) -> Prepared:
    """Run `step` once (compiles and tunes), then again recording its launches (see the module
    docstring); `inputs` are the caller's tensors, every other tensor argument is the step's own."""
    step()
    launches: list[_Recorded] = []
    token = _recording.set(launches)
    try:
        result = step()
    finally:
        _recording.reset(token)
    if not launches:
        raise ValueError("prepare: the step launched nothing through kernels.launch")
    own = {t.untyped_storage().data_ptr() for t in inputs}
    scratch, seen = [], set()
    for rec in launches:
        for t in rec.tensors():
            key = t.untyped_storage().data_ptr()
            if key not in own and key not in seen and t.is_floating_point():
                seen.add(key)
                scratch.append(t)
    device = launches[0].tensors()[0].device if launches[0].tensors() else torch.device("cpu")
    return Prepared(launches, result, device, scratch)


class PrepareOnFirstCall:
    """`step` run and prepared at its first call (which compiles and tunes, as a first call does
    anyway) and replayed at every later one: an implementation the sweep verifies on its second
    call. `then(prepared)` runs once, when it is prepared."""

    def __init__(self, step: Callable[[], Any], inputs: Iterable[torch.Tensor],
                 then: Callable[[Prepared], None] | None = None):
        self.step, self.inputs, self.then = step, list(inputs), then
        self.prepared: Prepared | None = None

    def __call__(self):
        if self.prepared is not None:
            return self.prepared()
        self.prepared = prepare(self.step, self.inputs)
        if self.then is not None:
            self.then(self.prepared)
        return self.prepared.result
