"""Launch helpers shared by the Triton kernel files: the GPU the grids are shaped for, the device guard every launch
runs under, and the specialisation of a launch as Triton's JIT makes it (for the static sm_90 report,
bench/static_report.py, through each kernel file's static_variants)."""
from __future__ import annotations

import contextlib

import torch
from triton.runtime.autotuner import Autotuner
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

__all__ = ["MAX_THREADS_PER_SM", "SM_COUNT", "device_guard", "kernel_params", "launch_spec", "wave_programs",
           "wrap_triton", "concrete"]

SM_COUNT = 132  # the H100 SXM the grids are shaped for (docs/design.md, "GPU shape")
MAX_THREADS_PER_SM = 2048


def wave_programs(num_warps: int, sms: int = SM_COUNT) -> int:
    """Programs of num_warps warps resident on `sms` SMs at once by the thread limit alone (one wave at best)."""
    return sms * (MAX_THREADS_PER_SM // (32 * num_warps))


def device_guard(t: torch.Tensor):
    """The device guard for a launch on t's device: torch.cuda.device for CUDA tensors (also FakeTensors on a CUDA
    device, under triton_op tracing / torch.compile / opcheck), a no-op for CPU tensors (the interpreter)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def concrete(*sizes) -> tuple[int, ...]:
    """Sizes as Python ints, for the tile configurations and grids of a launch. Under torch.compile with dynamic
    shapes (and opcheck's test_aot_dispatch_dynamic) a triton_op's launcher runs on tensors whose sizes are SymInts;
    the configuration functions branch on them and compute constexprs (tile sizes, next_power_of_2) that Triton must
    see as concrete. int() specialises: torch records a guard on each size and retraces for another one, as Triton
    itself specialises its kernels on sizes (issue 28)."""
    return tuple(int(s) for s in sizes)


def wrap_triton(kernel):
    """torch.library.wrap_triton(kernel) for a compiled kernel; under the interpreter (TRITON_INTERPRET=1, where
    @triton.jit makes an InterpretedFunction) the kernel itself, launched eagerly. torch >= 2.12 does the same itself;
    torch 2.11 (the GPU image's) raises "wrap_triton only works on functions annotated with triton.jit" for every
    interpreted kernel (issue 28). Call it as a bare `wrap_triton(<kernel name>)`: torch finds the kernels behind a
    triton_op by that pattern (torch._library.triton.get_inner_triton_kernels matches the name)."""
    if isinstance(kernel, (JITFunction, Autotuner)):
        return torch.library.wrap_triton(kernel)
    if isinstance(kernel, InterpretedFunction):
        return kernel
    raise TypeError(f"wrap_triton: expected a @triton.jit or @triton.autotune kernel, got {type(kernel).__name__}")


_PTR_TYPES = {torch.float32: "*fp32", torch.float64: "*fp64", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


def launch_spec(kernel, values: dict, constexprs: dict) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) for triton.compile(ASTSource(...)) of the launch of `kernel` with these runtime
    arguments, specialised as Triton's JIT specialises a real launch: `values` maps every non-constexpr argument to
    a torch dtype (a tensor of that dtype, assumed 16-byte aligned like a fresh allocation: divisibility 16), a Python
    int (== 1: a constexpr; else i32 when it fits, i64 otherwise, divisibility 16 when divisible by 16) or a Python
    float (the annotated type, fp32 when unannotated). Used by static_variants, so the static report compiles what
    the benchmark shape would run."""
    sig, consts, attrs = {}, dict(constexprs), {}
    for i, (name, is_constexpr, annotated) in enumerate(kernel_params(kernel)):
        if is_constexpr:
            sig[name] = "constexpr"
            continue
        v = values[name]
        if isinstance(v, torch.dtype):
            sig[name] = _PTR_TYPES[v]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(v, bool):
            sig[name] = "i1"
        elif isinstance(v, int):
            if v == 1:
                sig[name] = "constexpr"
                consts[name] = 1
                continue
            sig[name] = "i32" if -2**31 <= v < 2**31 else "i64"
            if v % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[name] = annotated or "fp32"
    return sig, consts, attrs


def kernel_params(kernel) -> list[tuple[str, bool, str]]:
    """(name, is constexpr, annotated scalar type) of each argument of a @triton.jit kernel; also of its
    interpreted form (TRITON_INTERPRET=1: a plain function whose annotations are strings)."""
    if hasattr(kernel, "params"):
        return [(p.name, bool(p.is_constexpr), p.annotation_type or "") for p in kernel.params]
    import inspect

    out = []
    for name, p in inspect.signature(kernel.fn).parameters.items():
        ann = str(p.annotation)
        out.append((name, "constexpr" in ann, "fp64" if "float64" in ann else "fp32" if "float32" in ann else ""))
    return out


# the dtypes the generic compile variants cover (.ci/triton_check.py): (Triton's name, torch's)
COMPILE_DTYPES = (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp64", torch.float64))


def generic_variant(name: str, kernel, ptr_args, dt: str, scalars: dict, constexprs: dict, options: dict,
                    wide=()) -> dict:
    """One compile variant with generic scalars (`scalars`: i64 / fp64, no alignment hints) for a module's
    `generic_variants()`: every pointer of `ptr_args` to dtype `dt`, those in `wide` to the kernel's accumulation
    type (fp32; fp64 for dt fp64)."""
    acc = "*fp64" if dt == "fp64" else "*fp32"
    sig = {p: acc if p in wide else "*" + dt for p in ptr_args} | scalars | dict.fromkeys(constexprs, "constexpr")
    return dict(name=name, kernel=kernel, signature=sig, constexprs=constexprs, options=options)
