"""The rules of the static sm_90 report (bench/static_report.py): the H100 it judges for, the excuses and the CUDA
launch shapes, the parsers of cuobjdump / ptxas output, the occupancy estimate and the verdict. Pure functions and
data: no compiler, no GPU (tests/test_static_report.py runs them on captured output).

Occupancy estimate (per SM of an H100 SXM: 132 SMs, 65536 registers, 228 KiB shared memory, 2048 threads, 32 CTAs):
CTAs/SM = min(by registers: floor(65536 / (warps x per-warp registers)), per-warp registers = 32 x regs rounded up to
256; by shared memory: floor(228 KiB / (smem + 1 KiB reserved per CTA)); by threads: floor(2048 / threads); 32).
waves = programs / (132 x CTAs/SM): a full wave puts the most CTAs the SM can hold on every SM.

Verdict of a hot variant (a forward or first-order launch of a training step): FAIL when it spills or launches fewer
programs than the GPU has SMs (132: one wave in the sense of every SM busy) at its benchmark shape, unless REASONS
(variant name -> why) excuses it; the reason is then printed in the report. The occupancy waves are reported beside
(a value below 1 leaves room for more resident CTAs per SM, not an idle SM). The exit status is 1 when any hot
variant FAILs (--no-fail: always 0 unless a compilation breaks).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

SM_COUNT = 132
REGS_PER_SM = 65536
SMEM_PER_SM = 228 * 1024
SMEM_RESERVED_PER_CTA = 1024
THREADS_PER_SM = 2048
CTAS_PER_SM = 32

# Hot variants that may launch less than one wave (or spill) at their benchmark shape, and why. Keys are variant
# names (exact) or regular expressions matched against "kernel: variant".
REASONS = {
    r"bias_act (fwd|bwd\+db)( bf16)? @ 128x1024 ":
        "128x1024 is 131,072 elements (0.5 MB fp32): at 256 elements a program it is 512 programs; a full wave of "
        "4-warp programs needs 2,112, i.e. 62 elements each: latency-bound, every SM already has work",
    r"joint_linear (fwd|fwd tf32|fwd bf16|dX) B=128( in=\d+)? \[64x64x\d+ split-K 5x":
        "M x N = 128 x 1024 is 32 tiles of 64 x 64; split-K 5 gives 160 programs (every SM busy); a full wave of "
        "these CTAs would need K chunks of < 3 BK steps (the pipeline never fills) and 3x the partial-sum traffic",
    r"joint_linear dW B=(128|4096) \[64x64x16\]":
        "a 1024 x 1024 output = 256 tiles of 64 x 64 (every SM busy, ~2 per SM); more CTAs per SM would need "
        "smaller tiles (more operand traffic) or split-K",
    r"joint_linear dZ B=128 \[": "a 128 x 50 output (2 tiles): split-K 16 (the cap) gives 32 programs; 13 MFLOP",
    r"joint_linear dU B=128 \[": "a 1024 x 50 output over K = 128: 16 tiles x split-K 2 = 32 programs; 13 MFLOP",
    r"joint_linear fwd out=1 B=128 \[":
        "the critic's last layer: a 128 x 1 output (137 K multiply-adds); split-K 14 gives 28 programs",
    r"joint_linear .* \[split-K epilogue\]":
        "the split-K epilogue of an M x N <= 131,072 output (<= 128 programs of 1,024 outputs): latency-bound",
    r"minibatch_discrimination (fwd|bwd) \[BI=8\] @ B=64 ":
        "B = 64 rows x K = 100 kernels in row blocks of 8 = 800 programs; fewer rows per program would leave "
        "lanes of the 8 x 32 pair tile idle",
    r"mmd fp32 gaussian mode=[01] (self|cross) BM=16 BN=16 .* @ n=m=128 ":
        "a 128 x 128 pair matrix (the training steps' batch) is 64 tiles of 16 x 16 (8 row blocks x 8 column "
        "splits); 16 x 16 is tl.dot's smallest tile, so more programs would need split features and a third "
        "partial axis for 16k pairs",
    r"cuda bias_act_kernel @ 128x1024 ":
        "the C++ kernel's grid-stride launch: 128 blocks of 256 threads cover 131,072 elements once (0.5 MB)",
}

# CUDA C++ kernels: demangled-name pattern -> [(shape, threads per block, blocks at that shape, hot)], the launch
# arithmetic of the .cu file at the benchmark shapes. A kernel that matches no pattern gets grid "n/a".
CUDA_GRIDS = {
    # csrc/cuda/bias_act.cu: 256 threads, blocks = clamp(cdiv(max(nvec, tail), 256), 1, SMs x 2048 / 256); fp32: 4
    # elements a vector (16-byte loads)
    r"\bbias_act_kernel<": [("32x256x32x32", 256, min(math.ceil(32 * 256 * 32 * 32 / 4 / 256), 132 * 8), True),
                            ("128x1024", 256, min(math.ceil(128 * 1024 / 4 / 256), 132 * 8), True)],
    # csrc/cuda/minibatch_discrimination.cu: 256 threads, grid (cdiv(B, 16), K) at the benchmark's K = 100
    r"\bmd_kernel<": [(f"B={b} K=100", 256, math.ceil(b / 16) * 100, True) for b in (64, 256, 1024)],
}


@dataclass
class Row:
    kernel: str
    variant: str
    shape: str
    regs: int | None = None
    spills: int | None = None  # bytes (stores + loads)
    stack: int | None = None
    smem: int | None = None  # bytes per CTA (static + dynamic)
    threads: int | None = None
    programs: int | None = None
    hot: bool = False
    ctas_per_sm: int | None = None
    waves: float | None = None
    verdict: str = ""
    reason: str = ""
    notes: list = field(default_factory=list)


# ---- parsers ----
def parse_cuobjdump(text: str) -> dict[str, dict[str, int]]:
    """`cuobjdump -res-usage` output -> {function: {"REG": n, "STACK": n, "SHARED": n, "LOCAL": n, ...}}."""
    out, fn = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function\s+(\S+?):?\s*$", line)
        if m:
            fn = m.group(1)
            out[fn] = {}
            continue
        if fn is not None and "REG:" in line:
            for k, v in re.findall(r"([A-Z_]+(?:\[\d+\])?):(\d+)", line):
                out[fn][k] = int(v)
            fn = None
    return out


def parse_ptxas(text: str) -> dict[str, dict[str, int]]:
    """A `ptxas -v` log (also nvcc -Xptxas -v) -> {function: {"regs", "spill_stores", "spill_loads", "stack",
    "smem"}} (smem: the static shared memory ptxas reports; 0 when it reports none)."""
    out, fn = {}, None
    for line in text.splitlines():
        m = re.search(r"(?:Compiling entry function|Function properties for)\s+'?([^'\s]+)'?", line)
        if m:
            fn = m.group(1)
            out.setdefault(fn, dict(regs=0, spill_stores=0, spill_loads=0, stack=0, smem=0))
            continue
        if fn is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            out[fn].update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            out[fn]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            out[fn]["smem"] = int(s.group(1)) if s else 0
    return out


# ---- occupancy ----
def ctas_per_sm(regs: int, threads: int, smem: int) -> int:
    """Resident CTAs per H100 SM (the estimate in the module docstring)."""
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(max(regs, 1) * 32 / 256) * 256
    by_regs = (REGS_PER_SM // per_warp) // warps
    by_smem = SMEM_PER_SM // (smem + SMEM_RESERVED_PER_CTA)
    by_threads = THREADS_PER_SM // (warps * 32)
    return max(0, min(by_regs, by_smem, by_threads, CTAS_PER_SM))


def waves(programs: int, ctas: int) -> float:
    return programs / (SM_COUNT * ctas) if ctas > 0 else 0.0


def excuse(row: Row, reasons: dict = REASONS) -> str:
    key = f"{row.variant} @ {row.shape} "
    for pat, why in reasons.items():
        if pat == row.variant or re.search(pat, key) or re.search(pat, f"{row.kernel} {key}"):
            return why
    return ""


def judge(row: Row, reasons: dict = REASONS) -> Row:
    """Sets ctas_per_sm, waves, verdict and reason (the failing rule of the module docstring)."""
    if row.regs is not None and row.threads and row.programs is not None:
        row.ctas_per_sm = ctas_per_sm(row.regs, row.threads, row.smem or 0)
        row.waves = waves(row.programs, row.ctas_per_sm)
    problems = []
    if row.spills:
        problems.append(f"spills {row.spills} B")
    if row.programs is not None and row.programs < SM_COUNT:  # the rule: every SM gets a program
        problems.append(f"{row.programs} programs < {SM_COUNT} SMs")
    if not row.hot:
        row.verdict = "ok (not hot)" if not problems else "note (not hot): " + ", ".join(problems)
    elif not problems:
        row.verdict = "ok" if row.waves is not None else "ok (grid n/a)"
    else:
        why = excuse(row, reasons)
        row.reason = why
        row.verdict = ("excused: " if why else "FAIL: ") + ", ".join(problems)
    return row


def failed(rows) -> list[Row]:
    return [r for r in rows if r.verdict.startswith("FAIL")]
