"""Kernels that do next to nothing, so that a call measures what launching one costs.

Two kernels, each on a grid of one program:

    empty        flag[0] = 1                                   one pointer argument
    twelve_args  out[0] = sum_k WEIGHTS[k] * argument k        twelve arguments: the output,
                 (a[0], b[0], c[0], then i0..i3, then f0..f3)  three input pointers, four ints and
                                                               four floats

Each stores one value so that a launch can be verified: a kernel that did not run
leaves its output as it was, and a launcher that drops or swaps an argument writes
another sum (the weights are distinct). Neither does work worth counting: a call
has no FLOPs and no bytes, and the launchers below do nothing but launch, so their
host time per call is the launch path itself (Triton's argument handling and the
driver call). A Triton launcher's host work grows with its arguments (each pointer
is read from its tensor, each integer is checked for the specialisations Triton
compiles for), hence the two.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import launch

# The sum's weight of each argument after the output, in order.
WEIGHTS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0)

_ONE = (1,)  # the grid: one program


@triton.jit
def _empty_kernel(flag_ptr):
    tl.store(flag_ptr, 1.0)


@triton.jit
def _twelve_args_kernel(out_ptr, a_ptr, b_ptr, c_ptr, i0, i1, i2, i3, f0, f1, f2, f3):
    v = tl.load(a_ptr).to(tl.float32) + 2.0 * tl.load(b_ptr).to(tl.float32) + 3.0 * tl.load(c_ptr).to(tl.float32)
    v += 4.0 * i0 + 5.0 * i1 + 6.0 * i2 + 7.0 * i3
    v += 8.0 * f0 + 9.0 * f1 + 10.0 * f2 + 11.0 * f3
    tl.store(out_ptr, v)


def empty(flag: torch.Tensor) -> torch.Tensor:
    """Launch the empty kernel once; it sets flag[0] (a float32 tensor) to 1. No checks: the
    launch is what is measured."""
    launch(_empty_kernel, _ONE, flag)
    return flag


def twelve_args(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                i0: int, i1: int, i2: int, i3: int, f0: float, f1: float, f2: float, f3: float) -> torch.Tensor:
    """Launch the twelve-argument kernel once; out[0] (float32) = the weighted sum of a[0], b[0],
    c[0], the ints and the floats (WEIGHTS). No checks: the launch is what is measured."""
    launch(_twelve_args_kernel, _ONE, out, a, b, c, i0, i1, i2, i3, f0, f1, f2, f3)
    return out
