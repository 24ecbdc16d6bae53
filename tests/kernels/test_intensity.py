"""kernels/intensity.py and the intensity workloads: exact results on ragged sizes, what the
verification catches, the records a sweep writes, and (offline, for sm_90) that every requested
multiply-add survives compilation as one FMA instruction of the dtype, packed two-wide in 16 bits."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import interpreted_here, interpreter_bf16_broken
from kernels import intensity as ki
from suite import verify
from suite.dtypes import element_size
from suite.workloads import all_workloads
from suite.workloads import intensity as wi

ROOT = Path(__file__).resolve().parents[2]
TORCH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPES = ["fp32", "fp16", pytest.param("bf16", marks=interpreter_bf16_broken)]


def _x(n, dtype, device, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    return (torch.rand(n, generator=g, device=device) + 0.5).to(TORCH[dtype])


def _chain(x, k, a=wi.A, b=wi.B):
    """k steps of y = a * y + b on every element, one at a time, in float64."""
    y = x.double()
    for _ in range(k):
        y = y * a + b
    return y


def _run(x, k):
    out = torch.full_like(x, math.nan)  # poisoned: an unwritten element shows
    return ki.fma_chain(x, out, k, wi.A, wi.B)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [0, 1, 5, ki.UNROLL, 2 * ki.UNROLL + 7])
def test_every_step_is_exact(dtype, k, device):
    x = _x(3001, dtype, device)  # not a multiple of any block
    out = _run(x, k)
    assert torch.equal(out.double(), _chain(x, k))
    assert torch.equal(out, x if k % 2 == 0 else 1 - x)


def test_the_reference_composes_the_same_steps():
    x = torch.rand(257, dtype=torch.float64) + 0.5
    for a, b in ((wi.A, wi.B), (0.75, 0.3), (-0.5, 2.0)):
        for k in (0, 1, 2, 7, 200):
            scale, shift = wi.affine_power(k, a, b)
            assert torch.allclose(x * scale + shift, _chain(x, k, a, b), rtol=1e-12, atol=1e-12)


class TestVerification:
    """The declaration's check (suite.verify): the float64 reference and a tolerance of 0."""

    P = {"k": 2 * ki.UNROLL + 7, "array_bytes": 4 * 700}

    def case(self, device):
        w = all_workloads()["intensity-fp32"]
        inp = w.make_inputs(self.P, "fp32", device, torch.Generator(device=device).manual_seed(1))
        return w, inp, verify.as_expected(w.reference(inp, self.P, "fp32"))

    def problem(self, w, out, expected):
        return verify.problem(verify.check_output(w, out, expected, self.P, "fp32"))

    def test_the_kernel_passes_with_no_error_at_all(self, device):
        w, inp, expected = self.case(device)
        assert w.tolerance == {"fp32": 0.0}
        verify.poison(inp)
        check = verify.check_output(w, w.impls[0].prepare(inp)(), expected, self.P, "fp32")
        assert verify.problem(check) is None and check["rel_err"] == 0.0 == check["max_excess"]
        assert check["checked"] == check["elements"] == 700

    def test_a_chain_one_step_short_fails(self, device):
        w, inp, expected = self.case(device)
        short = ki.fma_chain(inp["x"], torch.empty_like(inp["x"]), self.P["k"] - 1)
        assert "its tolerance" in self.problem(w, short, expected)

    def test_two_steps_short_pass_so_the_compile_test_counts_the_steps(self, device):
        # The check sees the parity of k only: the FMA count is held below, in the compiled code.
        w, inp, expected = self.case(device)
        short = ki.fma_chain(inp["x"], torch.empty_like(inp["x"]), self.P["k"] - 2)
        assert self.problem(w, short, expected) is None

    def test_an_unwritten_misplaced_or_rounded_element_fails(self, device):
        w, inp, expected = self.case(device)
        out = w.impls[0].prepare(inp)()
        unwritten = out.clone()
        unwritten[-1] = math.nan
        assert "NaN" in self.problem(w, unwritten, expected)
        assert "its tolerance" in self.problem(w, out.roll(1), expected)
        rounded = out.clone()
        rounded[350] = torch.nextafter(rounded[350], torch.tensor(math.inf, device=device))
        assert "its tolerance" in self.problem(w, rounded, expected)


@pytest.mark.parametrize("bad, message", [
    (lambda x: (x.double(), torch.empty_like(x.double()), 3), "float32, float16 and bfloat16"),
    (lambda x: (x, torch.empty(x.numel() - 1, device=x.device), 3), "must match"),
    (lambda x: (x[::2], torch.empty_like(x[::2]), 3), "contiguous"),
    (lambda x: (x, torch.empty_like(x), -1), "non-negative integer"),
    (lambda x: (x, torch.empty_like(x), True), "non-negative integer"),
    (lambda x: (x, torch.empty_like(x), 2.0), "non-negative integer"),
])
def test_bad_arguments_are_refused(bad, message, device):
    with pytest.raises(ValueError, match=message):
        ki.fma_chain(*bad(_x(64, "fp32", device)))


def test_declarations():
    workloads = {n: w for n, w in all_workloads().items() if w.family == "intensity"}
    assert set(workloads) == {"intensity-fp32", "intensity-fp16", "intensity-bf16"}
    for name, w in workloads.items():
        (dtype,) = w.dtypes
        assert w.view_name == "intensity" and w.roof == "traced" and w.tolerance == {dtype: 0.0}
        (impl,) = w.impls
        assert (impl.name, impl.vendor, impl.role, impl.backend, impl.launches) == ("triton", False, "fused",
                                                                                    "triton", 1)
        ks = [p["k"] for p in w.cases["quick"]]
        assert ks == sorted(ks) and ks[-1] == 1024 and len(ks) <= 6
        assert max(p["k"] for p in w.cases["full"]) >= 1024
        # Arrays far beyond any L2 on the GPU; tiny ones in the interpreter.
        assert all(p["array_bytes"] >= 1 << 30 for m in ("quick", "full") for p in w.cases[m])
        assert all(p["array_bytes"] <= 1 << 14 for p in w.cases["interpret"])
        esize = element_size(dtype)
        for p in w.cases["full"]:
            n = p["array_bytes"] // esize
            assert w.flops(p, dtype) == 2 * p["k"] * n and w.bytes(p, dtype) == 2 * n * esize
            assert w.flops(p, dtype) / w.bytes(p, dtype) == p["k"] / esize
    assert [p["k"] for p in workloads["intensity-fp32"].cases["quick"]] == [0, 4, 16, 64, 256, 1024]
    assert wi.FULL_K[:8] == (0, 1, 2, 3, 4, 6, 8, 12) and wi.FULL_K[-3:] == (1024, 1536, 2048)


@interpreted_here
def test_interpret_cases_through_the_runner_and_the_report(tmp_path, working_interpreter):
    from analysis import report
    from analysis.records import load
    from suite import env, runner, timing

    ctx = runner.Context(device="cpu", env=env.collect(None, interpret=True, command="test"), interpret=True,
                         policy=timing.TimingPolicy(), run_id="test-run")
    workloads = [w for w in all_workloads().values() if w.family == "intensity"]
    runner.run_sweep(runner.plan(workloads, "interpret"), ctx, tmp_path / "r.jsonl", resume=False, progress=False)
    recs = load(tmp_path / "r.jsonl")
    assert len(recs) == 3 * len(wi.INTERPRET)
    ok = [r for r in recs if r.dtype in ("fp32", "fp16")]
    assert all(r.status == "ok" and r.verify["rel_err"] == 0.0 == r.verify["tolerance"] for r in ok), \
        [(r.dtype, r.label, r.reason) for r in ok if r.status != "ok"]
    assert all(r.view == "intensity" and r.roof == "traced" and r.role == "fused" and r.backend == "triton"
               and r.launches == 1 and r.config["UNROLL"] == ki.UNROLL for r in ok)
    assert {r.intensity for r in ok if r.dtype == "fp16"} == {p["k"] / 2 for p in wi.INTERPRET}
    assert all(r.status == "skipped" and "interpreter" in r.reason for r in recs if r.dtype == "bf16")
    text = report.render(recs)
    assert "arithmetic-intensity sweep" in text and "No meaningful intensity measurement" in text


# --- the compiled code, for sm_90 without a GPU ------------------------------------------------
# The installed Triton compiles the kernel for an H100/H200 and its own nvdisasm shows the machine
# code. This process decorated the kernels for the interpreter (tests/conftest.py), so the compile
# runs in a fresh one.

_COMPILE = r"""
import json, os, subprocess, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from kernels import intensity as ki

tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
out = {}
for name, dtype, k, folded, aligned in json.loads(sys.argv[1]):
    esize = 4 if dtype == "fp32" else 2
    signature = {"x_ptr": "*" + dtype, "y_ptr": "*" + dtype, "n": "i32", "a": "fp32", "b": "fp32",
                 "K": "constexpr", "UNROLL": "constexpr", "BLOCK": "constexpr"}
    constexprs = {"K": k, "UNROLL": ki.UNROLL, "BLOCK": ki.block(esize)}
    if folded:  # a and b known to the compiler: the variant whose chain it may fold
        signature.update(a="constexpr", b="constexpr")
        constexprs.update(a=folded[0], b=folded[1])
    # As the launch specialises them: 16-byte aligned pointers and, where it is, an element count
    # divisible by 16 (every GPU case's is).
    source = ASTSource(fn=ki._fma_chain_kernel, signature=signature, constexprs=constexprs,
                       attrs={(i,): [["tt.divisibility", 16]] for i in ((0, 1, 2) if aligned else (0, 1))})
    # Contraction off: the FMAs must come from tl.fma itself, not from fusing a multiply and an add.
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                              options={"num_warps": ki.NUM_WARPS, "enable_fp_fusion": False})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        out[name] = subprocess.run([os.path.join(tools, "nvdisasm"), "-c", f.name], capture_output=True,
                                   text=True, check=True).stdout
print(json.dumps(out))
"""

LONG = 16 * ki.UNROLL + 37  # a loop of 16 bodies and a remainder
# name -> (dtype, k, (a, b) made compile-time constants or None, element count divisible by 16)
VARIANTS = {f"{d}-{k}": (d, k, None, True) for d, ks in (("fp32", (0, 16, 256, LONG)), ("fp16", (16, LONG)),
                                                           ("bf16", (16, LONG))) for k in ks}
# Broken on purpose: chains the compiler can fold, and an element count of unknown alignment.
VARIANTS["fp32-64-a1-b-0"] = ("fp32", 64, (1.0, -0.0), True)  # y * 1 + -0 is y: nothing left to compute
VARIANTS["fp32-64-a1-b0"] = ("fp32", 64, (1.0, 0.0), True)  # y * 1 + 0 is y + 0: an add, no multiply
VARIANTS["fp32-16-ragged"] = ("fp32", 16, None, False)


@pytest.fixture(scope="module")
def sass():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    spec = json.dumps([[name, *v] for name, v in VARIANTS.items()])
    p = subprocess.run([sys.executable, "-c", _COMPILE, spec], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _instructions(text: str) -> tuple[dict, list]:
    """(label -> index of the next instruction, [(opcode, operands)]) of a disassembly."""
    labels, ops = {}, []
    for line in text.splitlines():
        line = re.sub(r"/\*[0-9a-f]+\*/", "", line)
        if m := re.match(r"^(\.L_x_\d+):", line):
            labels[m.group(1)] = len(ops)
        elif m := re.match(r"\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);", line):
            ops.append((m.group(1), m.group(2).strip()))
    return labels, ops


def _is_fma(op: str, args: str) -> bool:
    # HFMA2.MMA Rx, -RZ, RZ, 0, 0 is how ptxas zeroes a register, not arithmetic.
    return op.split(".")[0] in ("FFMA", "HFMA2") and "-RZ, RZ" not in args


def _is_dtype_fma(op: str, args: str, dtype: str) -> bool:
    if not _is_fma(op, args):
        return False
    return {"fp32": op.startswith("FFMA"), "fp16": op.startswith("HFMA2") and "BF16" not in op,
            "bf16": op.startswith("HFMA2") and "BF16" in op}[dtype]


def _loops(labels, ops) -> list[tuple[int, int]]:
    """(first, last) instruction of every loop: a branch back to a label before it."""
    found = []
    for i, (op, args) in enumerate(ops):
        m = re.search(r"(\.L_x_\d+)", args) if op == "BRA" else None
        if m and labels.get(m.group(1), i + 1) <= i:
            found.append((labels[m.group(1)], i))
    return found


def _trip_count(ops, first: int, last: int) -> int | None:
    """How often a loop runs, where its counter register steps by one between an immediate and
    zero (ptxas counts down) or from an immediate up to one it compares with; None otherwise."""
    body = ops[first:last + 1]
    for op, args in body:
        m = re.fullmatch(r"(U?R\d+), \1, (-?)0x1, U?RZ", args) if op in ("IADD3", "UIADD3") else None
        if not m:
            continue
        reg, down = m.group(1), m.group(2) == "-"
        start = _initial_value(ops[:first], reg)
        if start is None:
            return None
        for op, args in body:
            if not op.startswith("ISETP.NE"):
                continue
            if down and re.search(rf"\bU?RZ, {reg}\b|\b{reg}, U?RZ\b", args):
                return start
            if not down and (m := re.search(rf"\b{reg}, (0x[0-9a-f]+)\b", args)):
                return int(m.group(1), 16) - start
    return None


def _initial_value(before, reg: str) -> int | None:
    """The immediate the last instruction writing `reg` before a loop sets it to."""
    for op, args in reversed(before):
        if args.startswith(f"{reg},"):
            m = re.fullmatch(rf"{reg}, (0x[0-9a-f]+|U?RZ)", args) if op in ("MOV", "UMOV") else None
            return None if m is None else 0 if m.group(1).endswith("RZ") else int(m.group(1), 16)
    return None


def _per_step(dtype: str) -> int:
    """FMA instructions per thread and step: one per element, one per two in 16 bits."""
    return ki.ELEMENTS_PER_THREAD[element_size(dtype)] // (1 if dtype == "fp32" else 2)


def fma_problems(text: str, dtype: str, k: int) -> list[str]:
    """Why the code does not do exactly k multiply-adds per element, each one FMA instruction of the
    dtype (two elements to one in 16 bits), from 16-byte loads and stores; [] when it does."""
    labels, ops = _instructions(text)
    per_step = _per_step(dtype)
    problems = []
    executed, in_loops = 0, set()
    for first, last in _loops(labels, ops):
        body = ops[first:last + 1]
        fmas = sum(_is_dtype_fma(op, args, dtype) for op, args in body)
        if not fmas:
            continue
        trips = _trip_count(ops, first, last)
        if trips is None:
            problems.append(f"cannot read the trip count of the loop at instruction {first}")
            continue
        executed += fmas * trips
        in_loops.update(range(first, last + 1))
        others = [op for op, args in body if not _is_dtype_fma(op, args, dtype)]
        if len(others) > 4:
            problems.append(f"the loop body holds {len(others)} instructions besides its FMAs: {others}")
    executed += sum(_is_dtype_fma(op, args, dtype) for i, (op, args) in enumerate(ops) if i not in in_loops)
    if executed != k * per_step:
        problems.append(f"{executed} FMAs executed per thread, not k x {per_step} = {k * per_step}")
    stray = sorted({op for op, args in ops if (_is_fma(op, args) and not _is_dtype_fma(op, args, dtype))
                    or op.split(".")[0] in ("FMUL", "FADD", "HMUL2", "HADD2", "F2F")})
    if stray:
        problems.append(f"arithmetic other than the dtype's FMA: {stray}")
    memory = sorted(op for op, _ in ops if op.startswith(("LDG", "STG")))
    if memory != ["LDG.E.128"] * 2 + ["STG.E.128"] * 2:
        problems.append(f"loads and stores are not two 16-byte vectors each: {memory}")
    if any(op.startswith(("STL", "LDL")) for op, _ in ops):
        problems.append("registers spilled to local memory")
    return problems


@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if v[2] is None and v[3]])
def test_every_multiply_add_is_one_fma_instruction(sass, name):
    dtype, k, _, _ = VARIANTS[name]
    assert fma_problems(sass[name], dtype, k) == []


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_a_long_chain_stays_a_small_loop(sass, dtype):
    labels, ops = _instructions(sass[f"{dtype}-{LONG}"])
    per_step = _per_step(dtype)
    assert per_step == 8  # eight independent FMA instructions per step, whatever the dtype
    loops = [(f, l) for f, l in _loops(labels, ops) if any(_is_dtype_fma(*o, dtype) for o in ops[f:l + 1])]
    assert len(loops) == 1
    first, last = loops[0]
    assert _trip_count(ops, first, last) == LONG // ki.UNROLL
    assert sum(_is_dtype_fma(*o, dtype) for o in ops[first:last + 1]) == ki.UNROLL * per_step
    # Written out, the chain would be LONG x 8 FMA instructions; the code holds one body and the rest.
    assert sum(_is_dtype_fma(*o, dtype) for o in ops) == (ki.UNROLL + LONG % ki.UNROLL) * per_step


def test_a_chain_the_compiler_can_fold_fails_the_count(sass):
    assert fma_problems(sass["fp32-64-a1-b-0"], "fp32", 64) == ["0 FMAs executed per thread, not k x 8 = 512"]
    problems = fma_problems(sass["fp32-64-a1-b0"], "fp32", 64)
    assert problems[0] == "0 FMAs executed per thread, not k x 8 = 512" and "FADD" in problems[1]


def test_a_cut_loop_fails_the_count(sass):
    # The same code with its trip count changed from 16 to 8 runs half the chain.
    text = re.sub(r"(UMOV UR\d+, )0x10\b", r"\g<1>0x8", sass[f"fp32-{LONG}"], count=1)
    assert text != sass[f"fp32-{LONG}"]
    assert fma_problems(text, "fp32", LONG) == [f"{(8 * ki.UNROLL + 37) * 8} FMAs executed per thread, "
                                                f"not k x 8 = {LONG * 8}"]


def test_accesses_of_unknown_alignment_fail_the_vector_check(sass):
    # An element count the launch cannot prove divisible by 16 masks each element on its own.
    (problem,) = fma_problems(sass["fp32-16-ragged"], "fp32", 16)
    assert problem.startswith("loads and stores are not two 16-byte vectors each") and "'LDG.E'" in problem


def test_the_trip_count_is_read_counting_up_too():
    up = """
        /*0100*/                   MOV R4, RZ ;
.L_x_0:
        /*0110*/                   FFMA R8, R8, R2, R3 ;
        /*0120*/                   IADD3 R4, R4, 0x1, RZ ;
        /*0130*/                   ISETP.NE.AND P0, PT, R4, 0xc, PT ;
        /*0140*/               @P0 BRA `(.L_x_0) ;
"""
    labels, ops = _instructions(up)
    assert _loops(labels, ops) == [(1, 4)] and _trip_count(ops, 1, 4) == 12
    assert _trip_count(_instructions(up.replace("MOV R4, RZ", "IMAD R4, R5, R6, RZ"))[1], 1, 4) is None
