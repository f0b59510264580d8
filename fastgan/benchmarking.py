"""Timing and floors shared by the benchmarks (bench/) and the CLI's demo: measured in the running process.

Every number a benchmark compares against is measured in the same process on the same device, never taken from a
spec sheet: `copy_bandwidth` (the byte floor) and `gemm_rate` (the FLOP floor) run the same code on CPU and GPU.
Measurements are cached per process, so all the cases of a session share one floor.
"""
from __future__ import annotations

import functools
import statistics
import time
from typing import Callable, NamedTuple

import torch

__all__ = ["Timing", "sync", "timeit", "copy_bandwidth", "gemm_rate", "exp_rate", "byte_floor_s", "flop_floor_s"]

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
    return _copy_bandwidth(_canon(device))


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
    return _gemm_rate(_canon(device), dtype)


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
    return _exp_rate(_canon(device), dtype)


def byte_floor_s(nbytes: float, device: torch.device | str) -> float:
    """Least time to move `nbytes` (reads + writes) at this run's measured copy bandwidth."""
    return nbytes / copy_bandwidth(device)


def flop_floor_s(flops: float, device: torch.device | str, dtype: torch.dtype = torch.float32) -> float:
    """Least time to compute `flops` at this run's measured GEMM rate."""
    return flops / gemm_rate(device, dtype)


def _canon(device) -> torch.device:
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", torch.cuda.current_device())
    return d
