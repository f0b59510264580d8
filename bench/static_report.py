"""Static sm_90 report of fastgan's GPU kernels, without a GPU (docs/design.md, "GPU shape").

    python -m bench.static_report [--out bench/results/static-sm90.md] [--no-cuda] [--fail | --no-fail]

Triton: every variant of every kernel module's `static_variants()` (the launches at the benchmark shapes, configured
by the same function as the launch helpers and specialised as the JIT specialises them) is compiled for sm_90 with
`triton.compile(..., target=GPUTarget("cuda", 90, 32))` in a fresh, temporary Triton cache (nothing is cached between
runs; variants that differ only in their grid are compiled once). Registers, stack and shared memory come from
`cuobjdump -res-usage` on the cubin, spill bytes from the
`ptxas -v` log of that very compilation (Triton's own n_regs / n_spills need a driver). CUDA C++: every
csrc/cuda/*.cu is compiled by nvcc for sm_90 with the flags of .ci/nvcc_check.sh plus `-Xptxas -v`, and each kernel's
registers / spills / shared memory are parsed from the ptxas log (template instantiations of one kernel are summarised
by their worst case); static_rules.CUDA_GRIDS states their launch shape at the benchmark shapes, "n/a" where none is
stated.

What a row's numbers mean and how a variant is judged (the occupancy estimate, the verdict, the excuses and the CUDA
launch shapes): bench/static_rules.py. The exit status is 1 when any hot variant FAILs (--no-fail: always 0 unless
a compilation breaks).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a file: the rules are a sibling module of the bench package
    sys.exit("bench/static_report.py is a module of the bench package: run `python -m bench.static_report` from the "
             "repository root")
from .static_rules import CUDA_GRIDS, Row, failed, judge, parse_cuobjdump, parse_ptxas

ROOT = Path(__file__).resolve().parent.parent


# ---- Triton ----
def triton_modules():
    """(op name, kernels/<op>.py) for every op with a Triton backend, from the registry."""
    from fastgan.ops import OPS

    return [(name, op.triton_module()) for name, op in OPS.items() if "triton" in op.backends]


def compile_triton(variant: dict):
    """(compiled kernel, ptxas -v log) of one variant for sm_90."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(fn=variant["kernel"], signature=variant["signature"], constexprs=variant["constexprs"],
                    attrs=variant.get("attrs"))
    buf = io.StringIO()
    old = triton.knobs.nvidia.dump_ptxas_log
    triton.knobs.nvidia.dump_ptxas_log = True
    try:
        with contextlib.redirect_stdout(buf):
            compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(variant["options"]))
    finally:
        triton.knobs.nvidia.dump_ptxas_log = old
    return compiled, buf.getvalue()


_MEASURED: dict = {}  # compile key -> (regs, stack, spills, smem): variants that differ only in grid compile once


def _compile_key(variant: dict) -> str:
    k = variant["kernel"]
    return repr((getattr(k, "__name__", None) or k.fn.__name__, sorted(variant["signature"].items()),
                 sorted((str(a), repr(b)) for a, b in variant["constexprs"].items()),
                 sorted((str(a), repr(b)) for a, b in (variant.get("attrs") or {}).items()),
                 sorted(variant["options"].items())))


def triton_row(module: str, variant: dict) -> Row:
    key = _compile_key(variant)
    if key not in _MEASURED:
        _MEASURED[key] = _measure(variant)
    kname = variant["kernel"].__name__ if hasattr(variant["kernel"], "__name__") else variant["kernel"].fn.__name__
    warps = int(variant["options"].get("num_warps", 4))
    row = Row(kernel=f"{module}.{kname}", variant=variant["name"], shape=variant["shape"], threads=32 * warps,
              programs=math.prod(variant["grid"]), hot=bool(variant["hot"]))
    row.regs, row.stack, row.spills, row.smem, notes = _MEASURED[key]
    row.notes += notes
    return judge(row)


def _measure(variant: dict):
    """(regs, stack, spill bytes, smem bytes, notes) of one compiled variant."""
    import triton

    compiled, log = compile_triton(variant)
    with tempfile.TemporaryDirectory() as d:
        cubin = Path(d) / "k.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        res = subprocess.run([triton.knobs.nvidia.cuobjdump.path, "-res-usage", str(cubin)], capture_output=True,
                             text=True, check=True).stdout
        if not parse_ptxas(log):  # no log captured (e.g. a cache hit): ptxas -v on the PTX, same flags
            ptx = Path(d) / "k.ptx"
            ptx.write_text(compiled.asm["ptx"])
            from triton.backends.nvidia.compiler import get_ptxas

            log = subprocess.run([get_ptxas(90).path, "-lineinfo", "-v", "--regAllocOptLevel=2", "--gpu-name=sm_90a",
                                  str(ptx), "-o", str(Path(d) / "k.o")], capture_output=True, text=True).stderr
    usage = next(iter(parse_cuobjdump(res).values()), {})
    pt = next(iter(parse_ptxas(log).values()), {})
    notes = []
    regs = usage.get("REG", pt.get("regs"))
    stack = usage.get("STACK", pt.get("stack"))
    spills = pt.get("spill_stores", 0) + pt.get("spill_loads", 0) if pt else None
    if spills is None and stack:
        spills = stack
        notes.append("spills from STACK (no ptxas log)")
    smem = usage.get("SHARED", 0) + int(getattr(compiled.metadata, "shared", 0) or 0)
    return regs, stack, spills, smem, notes


def triton_rows(log=print) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    for module, mod in triton_modules():
        fn = getattr(mod, "static_variants", None)
        if fn is None:
            notes.append(f"kernels/{module}.py has no static_variants() yet: its kernels are not in this report "
                         "(.ci/triton_check.py still compiles them)")
            continue
        for v in fn():
            try:
                row = triton_row(module, v)
            except Exception as e:  # noqa: BLE001 - a broken compile is a failure of the report itself
                row = Row(kernel=module, variant=v.get("name", "?"), shape=v.get("shape", "?"), hot=bool(v.get("hot")),
                          verdict=f"FAIL: compile error {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            log(f"  {row.variant:60s} regs={row.regs} spills={row.spills} smem={row.smem} "
                f"programs={row.programs} waves={'-' if row.waves is None else f'{row.waves:.2f}'} {row.verdict}")
            rows.append(row)
    return rows, notes


# ---- CUDA C++ ----
def find_nvcc() -> str | None:
    nvcc = os.environ.get("NVCC") or shutil.which("nvcc")
    if not nvcc and Path("/usr/local/cuda/bin/nvcc").exists():
        nvcc = "/usr/local/cuda/bin/nvcc"
    return nvcc


def nvcc_flags() -> list[str]:
    """The flags of .ci/nvcc_check.sh (keep them in step), for sm_90, plus -Xptxas -v."""
    import sysconfig

    import torch

    ti = Path(torch.__file__).parent / "include"
    defs = ["-DFASTGAN_WITH_CUDA"]
    if not (ti / "c10/cuda/impl/cuda_cmake_macros.h").exists():
        defs.append("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
    return ["-std=c++20", "-O3", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC", *defs, "-I", "csrc/include",
            "-I", str(ti), "-I", str(ti / "torch/csrc/api/include"), "-I", sysconfig.get_paths()["include"],
            "-gencode", "arch=compute_90,code=sm_90", "-Xptxas", "-v"]


def demangle(names: list[str]) -> dict[str, str]:
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt or not names:
        return {n: n for n in names}
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def base_name(demangled: str) -> str:
    """`void fastgan::(anon)::bias_act_kernel<...>(...)` -> `bias_act_kernel`."""
    head = demangled.replace("(anonymous namespace)", "anon").split("(")[0]
    depth, cut = 0, len(head)
    for i, ch in enumerate(head):  # strip the template arguments
        if ch == "<":
            if depth == 0:
                cut = min(cut, i)
            depth += 1
        elif ch == ">":
            depth -= 1
    return head[:cut].split("::")[-1].split()[-1]


def cuda_rows(log=print) -> tuple[list[Row], list[str]]:
    nvcc = find_nvcc()
    if not nvcc:
        return [], ["nvcc not found: no CUDA C++ rows (set NVCC=/path/to/nvcc)"]
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as d:
        for cu in sorted((ROOT / "csrc/cuda").glob("*.cu")):
            rel = cu.relative_to(ROOT)
            p = subprocess.run([nvcc, *nvcc_flags(), "-c", str(rel), "-o", str(Path(d) / (cu.stem + ".o"))],
                               cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                rows.append(Row(kernel=str(rel), variant="(compile)", shape="-", hot=True,
                                verdict="FAIL: nvcc failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:200]))
                continue
            funcs = parse_ptxas(p.stderr)
            names = demangle(list(funcs))
            groups: dict[str, list] = {}
            for mangled, info in funcs.items():
                groups.setdefault(base_name(names[mangled]), []).append((names[mangled], info))
            for base, members in sorted(groups.items()):
                worst = max(members, key=lambda m: (m[1]["spill_stores"] + m[1]["spill_loads"], m[1]["regs"]))
                info = worst[1]
                common = dict(kernel=f"{rel}:{base}", regs=info["regs"], stack=info["stack"],
                              spills=info["spill_stores"] + info["spill_loads"], smem=info["smem"])
                label = f"cuda {base} ({len(members)} instantiations, worst)"
                launches = next((v for pat, v in CUDA_GRIDS.items() if re.search(pat, worst[0])), None)
                if launches is None:
                    rows.append(judge(Row(variant=label, shape="n/a", hot=False, **common)))
                    rows[-1].notes.append("grid n/a (no entry in CUDA_GRIDS)")
                else:
                    for shape, threads, blocks, hot in launches:
                        rows.append(judge(Row(variant=f"cuda {base}", shape=shape, threads=threads, programs=blocks,
                                              hot=hot, **common)))
            log(f"  {rel}: {len(funcs)} kernel instantiations")
    return rows, notes


# ---- report ----
def markdown(rows: list[Row], notes: list[str]) -> str:
    lines = ["# Static sm_90 report", "",
             "Generated by `python -m bench.static_report` (no GPU): registers, spills and shared memory per kernel "
             "variant compiled for sm_90; waves = programs / (132 x resident CTAs per SM), the estimate in the "
             "script's docstring. `hot`: a forward or first-order launch of a training step.", "",
             "| kernel | variant | shape | regs | spills (bytes) | smem | grid programs | waves | hot | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, fmt="{}"):
        return "n/a" if v is None else fmt.format(v)

    for r in rows:
        verdict = r.verdict + (f" — {r.reason}" if r.reason else "") + (f" ({'; '.join(r.notes)})" if r.notes else "")
        lines.append(f"| {r.kernel} | {r.variant} | {r.shape} | {f(r.regs)} | {f(r.spills)} | {f(r.smem)} | "
                     f"{f(r.programs)} | {f(r.waves, '{:.2f}')} | {'yes' if r.hot else 'no'} | {verdict} |")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    bad = failed(rows)
    lines += ["", f"{len(rows)} rows; {len(bad)} failing hot variant(s)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench/results/static-sm90.md"))
    ap.add_argument("--no-cuda", action="store_true", help="skip the nvcc part")
    ap.add_argument("--fail", dest="fail", action="store_true", default=True,
                    help="exit 1 when a hot variant fails (default)")
    ap.add_argument("--no-fail", dest="fail", action="store_false")
    args = ap.parse_args(argv)

    print("Triton kernels (sm_90):", flush=True)
    rows, notes = triton_rows(lambda s: print(s, flush=True))
    if not args.no_cuda:
        print("CUDA C++ kernels (nvcc, sm_90):", flush=True)
        crows, cnotes = cuda_rows(lambda s: print(s, flush=True))
        rows += crows
        notes += cnotes
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(rows, notes))
    bad = failed(rows)
    print(f"wrote {out}: {len(rows)} rows, {len(bad)} failing")
    for r in bad:
        print(f"FAIL {r.kernel} {r.variant} @ {r.shape}: {r.verdict}")
    return 1 if (bad and args.fail) else 0


if __name__ == "__main__":
    # Compilation only: never the interpreter, and a fresh Triton cache (nothing cached between runs).
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    with tempfile.TemporaryDirectory(prefix="fastgan-static-") as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        sys.exit(main())
