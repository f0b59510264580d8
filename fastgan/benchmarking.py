"""The timing basics of the benchmarks (bench/) and the CLI's demo, in one place: measured in the running process.

- timing: `timeit` (median and IQR of timed calls), `make_step` (the timed call of a case: fwd or fwd+bwd),
  `sync`;
- floors: every number a benchmark compares against is measured in the same process on the same device, never taken
  from a spec sheet: `copy_bandwidth` (the byte floor), `gemm_rate` (the FLOP floor) and `exp_rate` run the same code
  on CPU and GPU, cached per process, so all the cases of a session share one floor; `GemmFlops` counts a step's
  matrix-product FLOPs;
- what else a case records: `peak_memory` (peak bytes of one call), `cpu_sample` / `other_cpu_load` (cores other
  processes took while it ran).

bench/ (the pytest-benchmark suite: its harness is bench/conftest.py and bench/common.py) and `fastgan demo` import
these; nothing here knows about pytest.
"""
from __future__ import annotations

import functools
import os
import statistics
import time
from typing import Callable, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Timing", "sync", "timeit", "make_step", "peak_memory", "CpuSample", "cpu_sample", "other_cpu_load",
           "copy_bandwidth", "gemm_rate", "exp_rate", "byte_floor_s", "flop_floor_s", "GemmFlops",
           "canonical_device"]

# Buffers of the floor measurements: large relative to every cache level (CPU L3 ~ tens of MB; H100 L2 50 MB), so
# the copy streams through DRAM/HBM like the big tensors of the benchmarks do.
COPY_BYTES = 256 << 20
GEMM_N = {"cpu": 2048, "cuda": 8192}


# ---------------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device | str) -> None:
    """Waits for the device's queued work (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Timing(NamedTuple):
    median: float  # seconds
    iqr: float  # seconds, q3 - q1
    times: list  # every rep, seconds


def _quartiles(ts: list) -> tuple[float, float, float]:
    if len(ts) < 2:
        return ts[0], ts[0], ts[0]
    q1, q2, q3 = statistics.quantiles(ts, n=4, method="inclusive")
    return q1, q2, q3


def timeit(fn: Callable[[], object], warmup: int = 3, reps: int = 10, device: torch.device | str = "cpu") -> Timing:
    """Median and IQR of `reps` calls of fn() after `warmup` untimed ones.

    Each call is timed on its own (perf_counter around it) and, on CUDA, synchronised before and after, so the time
    is the call's full device time plus its launch overhead (for ms-scale kernels the latter is negligible).
    """
    if reps < 1:
        raise ValueError(f"reps: expected >= 1, got {reps}")
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    q1, med, q3 = _quartiles(ts)
    return Timing(med, q3 - q1, ts)


def make_step(forward: Callable[[], torch.Tensor], mode: str, wrt: list, gy: torch.Tensor | None,
              device: torch.device | str) -> Callable[[], object]:
    """The timed call of a case: mode 'fwd' runs forward() without autograd; 'fwd+bwd' runs it and then
    torch.autograd.grad of its output w.r.t. `wrt` with the preallocated upstream gradient gy (autograd.grad, not
    backward(): nothing accumulates into .grad, so no rep pays for an extra add or allocation). CUDA-synchronised."""
    is_cuda = torch.device(device).type == "cuda"
    if mode == "fwd":
        def run():
            with torch.no_grad():
                out = forward()
            if is_cuda:
                torch.cuda.synchronize(device)
            return out
    elif mode == "fwd+bwd":
        def run():
            grads = torch.autograd.grad(forward(), wrt, gy)
            if is_cuda:
                torch.cuda.synchronize(device)
            return grads
    else:
        raise ValueError(f"mode: expected 'fwd' or 'fwd+bwd', got {mode!r}")
    return run


# ----------------------------------------------------------------------------------------------------- peak memory
def peak_memory(fn: Callable[[], object], device: torch.device | str) -> int:
    """Peak bytes allocated by one call of fn() above what was allocated before it (outputs still alive included).

    CUDA: torch.cuda.max_memory_allocated. CPU: torch has no allocation counter for CPU tensors, and RSS says nothing
    once a tuned malloc reuses freed memory, so this replays the profiler's allocation events ([memory] records of
    the c10 CPU allocator: +bytes / -bytes in time order) and takes the running sum's maximum. Only tensor memory is
    counted (not Python objects, not a kernel's private scratch from plain malloc). Run it outside timed loops.
    """
    device = torch.device(device)
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


# ------------------------------------------------------------------------------------------- other processes' load
class CpuSample(NamedTuple):
    wall: float  # perf_counter, s
    busy: float  # CPU seconds all processes (and the hypervisor: steal) used, summed over CPUs; nan without /proc
    own: float  # CPU seconds this process used (all its threads)


def cpu_sample() -> CpuSample:
    busy = float("nan")
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]  # user nice system idle iowait irq softirq steal ...
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return CpuSample(time.perf_counter(), busy, time.process_time())


def other_cpu_load(start: CpuSample, end: CpuSample | None = None) -> float | None:
    """Cores kept busy by other processes (and steal) between two samples: 0 on a quiet machine; 1.0 means a whole
    core was taken from us. On few cores a busy neighbour deschedules OpenMP threads and turns ms-scale timings
    into multiples of the scheduler tick, so benchmarks record this next to their times."""
    end = end or cpu_sample()
    dt = end.wall - start.wall
    if dt <= 0 or start.busy != start.busy:  # nan: no /proc/stat
        return None
    return max(0.0, (end.busy - start.busy) - (end.own - start.own)) / dt


# ---------------------------------------------------------------------------------------------------------- floors
@functools.lru_cache(maxsize=None)
def _copy_bandwidth(device: torch.device) -> float:
    n = COPY_BYTES // 4
    src = torch.ones(n, dtype=torch.float32, device=device)  # ones, not empty: every page is touched up front
    dst = torch.zeros_like(src)
    t = timeit(lambda: dst.copy_(src), warmup=2, reps=10, device=device)
    return 2 * src.numel() * src.element_size() / t.median  # read src + write dst


def copy_bandwidth(device: torch.device | str) -> float:
    """Bytes moved per second (read + write counted) by `dst.copy_(src)` of 256 MB preallocated tensors; measured once
    per process and device. This is the byte floor's bandwidth: a memory-bound op cannot move its bytes faster.

    (On CPU the write also reads dst into the cache first — write-allocate — unless the copy uses streaming stores; the
    floors count bytes the same way as here, user-visible reads + writes, so the ratio stays consistent.)
    """
    return _copy_bandwidth(canonical_device(device))


@functools.lru_cache(maxsize=None)
def _gemm_rate(device: torch.device, dtype: torch.dtype) -> float:
    n = GEMM_N.get(device.type, 4096)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    t = timeit(lambda: torch.mm(a, b, out=out), warmup=1, reps=5, device=device)
    return 2 * n**3 / t.median


def gemm_rate(device: torch.device | str, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of a large square `torch.mm(a, b, out=c)` (2 n^3 flops; n = 2048 on CPU, 8192 on CUDA) with the current
    math settings (TF32 etc. as the process has them); measured once per process, device and dtype."""
    return _gemm_rate(canonical_device(device), dtype)


@functools.lru_cache(maxsize=None)
def _exp_rate(device: torch.device, dtype: torch.dtype) -> float:
    n = (1 << 20) if device.type == "cpu" else (1 << 26)  # cache-resident on CPU: the rate of the math, not of DRAM
    a = -torch.rand(n, device=device).to(dtype)
    out = torch.empty_like(a)
    t = timeit(lambda: torch.exp(a, out=out), warmup=2, reps=15, device=device)
    return n / t.median


def exp_rate(device: torch.device | str, dtype: torch.dtype = torch.float32) -> float:
    """Exponentials per second of torch.exp(out=) (the library's vectorised exp on CPU; on CUDA large enough to be
    compute- rather than launch-bound); measured once per process, device and dtype. The floor of exp-bound ops."""
    return _exp_rate(canonical_device(device), dtype)


def byte_floor_s(nbytes: float, device: torch.device | str) -> float:
    """Least time to move `nbytes` (reads + writes) at this run's measured copy bandwidth."""
    return nbytes / copy_bandwidth(device)


def flop_floor_s(flops: float, device: torch.device | str, dtype: torch.dtype = torch.float32) -> float:
    """Least time to compute `flops` at this run's measured GEMM rate."""
    return flops / gemm_rate(device, dtype)


class GemmFlops(TorchDispatchMode):
    """Counts the matrix-product FLOPs (torch.utils.flop_counter's registry: mm, addmm, bmm, convolutions, ...) of
    the aten ops run inside it. FlopCounterMode's module tracker cannot follow a double backward (torch 2.13: "A leaf
    node was passed to _will_engine_execute_node"); this plain dispatch mode can. `total` after the block."""

    def __init__(self):
        super().__init__()
        from torch.utils.flop_counter import flop_registry

        self.registry, self.total = flop_registry, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = self.registry.get(func._overloadpacket)
        if count is not None:
            self.total += int(count(*args, **kwargs, out_val=out))
        return out


def canonical_device(device) -> torch.device:
    """`device` with its index: a bare 'cuda' is the current CUDA device (so per-device caches do not split)."""
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", torch.cuda.current_device())
    return d
