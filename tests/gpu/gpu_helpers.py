"""What the GPU tests share (imported by them): a sweep context on device 0, and a checked call that,
as the runner does, lets the first call tune and compile, then verifies a fresh call on re-poisoned outputs."""
import math

import pytest
import torch

from suite import env, runner, timing, verify


@pytest.fixture(scope="module")
def ctx():
    from suite.telemetry import nvml_handle

    return runner.Context(device="cuda:0", env=env.collect(0, command="test"), interpret=False,
                          policy=timing.TimingPolicy(budget_s=0.1), run_id="gpu-test", nvml=nvml_handle(0))


def after_tuning(call, *outputs):
    """Call once (an autotuner writes every candidate's result into the outputs), poison the
    outputs with NaN, call again and return that call's result: the chosen configuration's own."""
    call()
    torch.cuda.synchronize()
    for t in outputs:
        t.fill_(math.nan)
    result = call()
    torch.cuda.synchronize()
    return result


def checked(workload, impl_name, params, dtype, seed=0):
    """(verify field, config, inputs, output) of one implementation of a workload's case, called
    the way the runner calls it."""
    inputs = workload.make_inputs(params, dtype, "cuda", torch.Generator(device="cuda").manual_seed(seed))
    impl = next(i for i in workload.impls_for(dtype) if i.name == impl_name)
    fn = impl.prepare(inputs)
    fn()
    torch.cuda.synchronize()
    verify.poison(inputs)
    out = fn()
    torch.cuda.synchronize()
    check = verify.check_output(workload, out, workload.reference(inputs, params, dtype), params, dtype)
    return check, (impl.config(inputs) if impl.config else None), inputs, out
