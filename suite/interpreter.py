"""Whether Triton's interpreter can run the suite's kernels here (`sweep --interpret`)."""
from __future__ import annotations

from suite.errors import UsageError


def interpreter_problem() -> str | None:
    """Why Triton's interpreter cannot run the suite's kernels here, or None.

    A kernel with a loop whose bound is computed in the kernel, the shape of
    the suite's own loops, runs once on the CPU. Triton 3.6's interpreter
    fails on it with numpy 2.4 and newer (it converts a one-element array to
    an index, which numpy now refuses); newer Triton releases run it."""
    import torch
    import triton
    import triton.language as tl

    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(tl.cdiv, InterpretedFunction):  # library kernels are decorated on import
        return ("Triton was imported before --interpret could choose its interpreter (TRITON_INTERPRET is "
                "read then); run the sweep as its own process: python -m suite sweep --interpret ...")

    @triton.jit
    def loop_probe(x_ptr, n):
        total = 0.0
        for i in range(0, tl.cdiv(n, 2)):
            total += tl.load(x_ptr + i)
        tl.store(x_ptr, total)

    x = torch.ones(4)
    try:
        loop_probe[(1,)](x, 4)
    except Exception as e:  # noqa: BLE001 -- any failure means the interpreter is unusable here
        import numpy
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return (f"Triton {triton.__version__}'s interpreter cannot run a kernel loop here (numpy "
                f"{numpy.__version__}): {first}; use a newer triton for --interpret")
    return None if x[0].item() == 2.0 else f"Triton {triton.__version__}'s interpreter computed a wrong sum"



def check_interpreter(args) -> None:
    """With --interpret, refuse in one line where the interpreter cannot run the kernels; called
    once the arguments are known good, before anything runs or is written."""
    if args.interpret:
        problem = interpreter_problem()
        if problem:
            raise UsageError(problem)

