"""Shared helpers of the fastgan benchmarks (DESIGN.md §6): floors, timing, peak memory, machine description.

Every number a benchmark compares against is measured in the same process on the same device, never taken from a
spec sheet: `copy_bandwidth` (the byte floor) and `gemm_rate` (the FLOP floor) run the same code on CPU and GPU.
Measurements are cached per process, so all the cases of a session share one floor.

Used by bench/conftest.py (pytest-benchmark), by every bench/bench_<op>.py and by non-pytest scripts (`timeit`).
"""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch  # before fastgan: its extension needs torch's shared libraries loaded

import fastgan
from fastgan.backend import why_not
from fastgan.benchmarking import (  # noqa: F401  (timing and floors live in the package; re-exported here)
    COPY_BYTES,
    GEMM_N,
    Timing,
    _canon,
    byte_floor_s,
    copy_bandwidth,
    exp_rate,
    flop_floor_s,
    gemm_rate,
    sync,
    timeit,
)

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------------ step runner
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


# ---------------------------------------------------------------------------------------------------- impls to run
def available_impls(device: torch.device | str) -> list[str]:
    """The implementations a benchmark compares on `device`: the eager F.* composition, torch.compile of it, and every
    fastgan backend that can run there ('fastgan-cpp' on CPU; 'fastgan-cuda', 'fastgan-triton' on CUDA). Triton on CPU
    (the interpreter) is a correctness tool, never benchmarked."""
    dev = torch.device(device).type
    backends = {"cpu": ("cpp",), "cuda": ("cuda", "triton")}.get(dev, ())
    return ["eager", "compile"] + [f"fastgan-{b}" for b in backends if why_not(b, dev) is None]


def unavailable_impls(device: torch.device | str) -> dict[str, str]:
    """{impl: reason} for the fastgan backends of this device type that cannot run (reported, not silently dropped)."""
    dev = torch.device(device).type
    backends = {"cpu": ("cpp",), "cuda": ("cuda", "triton")}.get(dev, ())
    return {f"fastgan-{b}": why_not(b, dev) for b in backends if why_not(b, dev) is not None}


# ----------------------------------------------------------------------------------------------- machine description
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> dict:
    def git(*args):
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def gpu_telemetry(index: int = 0) -> dict:
    """Clocks, power and memory of GPU `index` from NVML (nvidia-ml-py), or {'error': ...} where NVML is absent.

    Note NVML numbers GPUs in PCI order while torch follows CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER; with one
    visible GPU both are 0.
    """
    try:
        import pynvml  # lazily: nvidia-ml-py is only needed (and only useful) with a GPU
    except ImportError as e:
        return {"error": f"nvidia-ml-py is not installed ({e})"}
    try:
        pynvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - no driver, no GPU visible: reported, never fatal
        return {"error": f"nvmlInit failed ({e})"}
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
        out = {"name": pynvml.nvmlDeviceGetName(h), "driver": pynvml.nvmlSystemGetDriverVersion()}

        def put(key, getter, scale=1.0):  # each query on its own: a GPU may not support some of them
            try:
                out[key] = getter() * scale if scale != 1.0 else getter()
            except Exception:  # noqa: BLE001
                out[key] = None

        put("sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM))
        put("sm_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM))
        put("mem_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM))
        put("mem_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM))
        put("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(h), 1e-3)
        put("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h), 1e-3)
        put("temperature_c", lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
        put("memory_total_bytes", lambda: pynvml.nvmlDeviceGetMemoryInfo(h).total)
        put("memory_used_bytes", lambda: pynvml.nvmlDeviceGetMemoryInfo(h).used)
        put("clocks_throttle_reasons", lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(h))
        return out
    except Exception as e:  # noqa: BLE001
        return {"error": f"NVML query failed ({e})"}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


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


def loadavg() -> list | None:
    """1, 5 and 15-minute load averages (runnable processes, this one included)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info(device: torch.device | str | None = None) -> dict:
    """What the numbers were measured on: CPU, cores, threads, library versions, commit, malloc, GPU + telemetry.

    Cheap (no measurements); call it again after a run for the GPU's clocks and power at that time.
    """
    info = {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        # other work on the machine: on a few cores a busy neighbour (a compiler...) deschedules OpenMP threads and
        # turns ms-scale timings into multiples of the scheduler tick
        "loadavg": loadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),  # the installed version, without importing it
        "fastgan": fastgan.__version__,
        "fastgan_extension": fastgan.backend_info()["extension"],
        "git": git_commit(),
        "allocator": fastgan.allocator_info(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_PRELOAD", "FASTGAN_BACKEND",
                                           "CUDA_VISIBLE_DEVICES") if k in os.environ},
        "gpu": None,
    }
    if torch.cuda.is_available():
        idx = _canon(device).index if device is not None and torch.device(device).type == "cuda" else 0
        props = torch.cuda.get_device_properties(idx)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_bytes": props.total_memory,
            "sm_count": props.multi_processor_count,
            "cuda": torch.version.cuda,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "telemetry": gpu_telemetry(idx),
        }
    return info


def machine_slug(device: torch.device | str) -> str:
    """A short file-name-safe name of the machine: $FASTGAN_BENCH_MACHINE, else the GPU name on CUDA, else the CPU
    model and core count (container host names are random, so they are not used)."""
    name = os.environ.get("FASTGAN_BENCH_MACHINE")
    if not name:
        if torch.device(device).type == "cuda":
            name = torch.cuda.get_device_name(_canon(device))
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            name = f"{cpu_model()}-{cores}c"
    name = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b", "", name, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def today() -> str:
    return datetime.date.today().isoformat()


class GemmFlops(torch.utils._python_dispatch.TorchDispatchMode):
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
