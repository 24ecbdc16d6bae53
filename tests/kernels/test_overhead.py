"""kernels/overhead.py: the launch-cost kernels run and write what their arguments say."""
import math

import pytest
import torch

from kernels import overhead as ko


def _poisoned(device):
    return torch.full((1,), math.nan, device=device)  # unwritten shows as NaN


def _expected(a, b, c, ints, floats):
    args = [a.double().item(), b.double().item(), c.double().item(), *ints, *floats]
    return sum(w * v for w, v in zip(ko.WEIGHTS, args, strict=True))


def test_empty_kernel_sets_its_flag(device):
    flag = _poisoned(device)
    assert ko.empty(flag) is flag
    assert flag.item() == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twelve_argument_kernel_writes_the_weighted_sum(device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    a, b, c = (torch.rand(1, generator=g, device=device) + 0.5 for _ in range(3))
    ints = tuple(int(i) for i in torch.randperm(13, generator=g, device=device)[:4] + 2)
    floats = tuple(float(f) for f in torch.rand(4, generator=g, device=device) + 0.5)
    out = ko.twelve_args(_poisoned(device), a, b, c, *ints, *floats)
    assert out.item() == pytest.approx(_expected(a, b, c, ints, floats), rel=1e-6)


def test_a_swapped_argument_writes_another_sum(device):
    # The check above must be able to fail: ints 3 and 5 swapped (weights 4 and 5) give a sum 2 lower.
    a, b, c = (torch.full((1,), v, device=device) for v in (0.5, 0.75, 1.25))
    ints, floats = (3, 5, 7, 9), (0.5, 0.625, 0.75, 1.5)
    swapped = ko.twelve_args(_poisoned(device), a, b, c, 5, 3, 7, 9, *floats).item()
    assert swapped == pytest.approx(_expected(a, b, c, ints, floats) - 2.0, rel=1e-6)
    assert swapped != pytest.approx(_expected(a, b, c, ints, floats), rel=1e-3)
    assert len(ko.WEIGHTS) == 11 and len(set(ko.WEIGHTS)) == 11  # each argument after the output weighed apart
