"""The bench suite's own harness (docs/design.md, "Benchmarks"): which implementations a case compares, the one
`measure` every case ends with, and the description of the machine the numbers were measured on.

The timing basics (timeit, make_step, the floors, peak memory, the other processes' load) are the package's:
fastgan.benchmarking, shared with `fastgan demo`. bench/conftest.py turns these into pytest fixtures and hooks.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
from functools import reduce
from pathlib import Path
from typing import Callable, Iterable

import pytest
import torch  # before fastgan: its extension needs torch's shared libraries loaded

import fastgan
from fastgan.backend import why_not
from fastgan.benchmarking import canonical_device, cpu_sample, other_cpu_load, peak_memory
from fastgan.ops import registry

REPO = Path(__file__).resolve().parent.parent
BASELINES = ("eager", "compile")
# The fastgan backends benchmarked per device type, in this order. Not 'reference' (eager is the benchmarks' own
# reference: the F.* composition) and not Triton on CPU (the interpreter: a correctness tool, never benchmarked).
DEVICE_BACKENDS = {"cpu": ("cpp",), "cuda": ("cuda", "triton")}


# ---------------------------------------------------------------------------------------------------- impls to run
def impls(ops: str | Iterable[str], device: torch.device | str) -> list[str]:
    """The implementations a benchmark of `ops` (an op's registry name, or the names of every op a step may run)
    compares on `device`: the eager F.* composition, torch.compile of it, and 'fastgan-<backend>' for each backend
    that every one of the ops has (fastgan.ops.registry) and that can run here (fastgan.backend.why_not):
    'fastgan-cpp' on CPU; 'fastgan-cuda', 'fastgan-triton' on CUDA."""
    names = (ops,) if isinstance(ops, str) else tuple(ops)
    have = reduce(frozenset.intersection, (registry.backends(n) for n in names))
    dev = torch.device(device).type
    return [*BASELINES] + [f"fastgan-{b}" for b in DEVICE_BACKENDS.get(dev, ())
                           if b in have and why_not(b, dev) is None]


def unavailable_impls(device: torch.device | str) -> dict[str, str]:
    """{impl: reason} for the fastgan backends of this device type that cannot run (reported, not silently dropped)."""
    dev = torch.device(device).type
    return {f"fastgan-{b}": why_not(b, dev) for b in DEVICE_BACKENDS.get(dev, ()) if why_not(b, dev) is not None}


# ---------------------------------------------------------------------------------------------------- the case tail
def measure(benchmark, extra_info: dict, impl: str, device, run: Callable[[], object], *, group: str,
            floor_s: float | Callable[[], float], items: int, unit: str, warmup: int, compile_fails: str | None = None,
            **info) -> None:
    """Every benchmark case ends here (bench/conftest.py's `measure` fixture binds the first four arguments):

    1. `warmup` untimed calls of run() (torch.compile compiles, the allocator reaches its steady state); with
       `compile_fails` (what is run, e.g. "the step"), an error of the compile impl there is that case's result:
       xfail "torch.compile cannot run <compile_fails>: <error>", recorded in the results file;
    2. the benchmark's group and its extra_info: impl, `info` (the case's parameters), floor_s — `floor_s` and any
       value of `info` may be a zero-argument callable, called now (after the warm-up, before the timed rounds:
       floors measured on first use, counts that run the case once more);
    3. the timed rounds (pytest-benchmark), with the other processes' CPU load while they ran;
    4. % of floor, items and unit (throughput), peak memory of one more, untimed call. Not with --benchmark-disable
       (a smoke run: nothing was timed).
    """
    try:
        for _ in range(warmup):
            run()
    except Exception as e:  # noqa: BLE001 - torch.compile's refusal is the result of that case
        if impl == "compile" and compile_fails:
            first = (str(e).splitlines() or [""])[0]
            pytest.xfail(f"torch.compile cannot run {compile_fails}: {type(e).__name__}: {first}")
        raise
    benchmark.group = group
    floor_s = floor_s() if callable(floor_s) else floor_s
    extra_info.update(impl=impl, **{k: v() if callable(v) else v for k, v in info.items()}, floor_s=floor_s)
    before = cpu_sample()
    benchmark(run)
    if benchmark.stats is None:  # --benchmark-disable
        return
    others = other_cpu_load(before)  # cores other processes used while this case ran
    extra_info.update(pct_of_floor=100.0 * floor_s / benchmark.stats.stats.median, items=items, unit=unit,
                      other_cpu_load=others, peak_bytes=peak_memory(run, device))


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
        idx = canonical_device(device).index if device is not None and torch.device(device).type == "cuda" else 0
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
            name = torch.cuda.get_device_name(canonical_device(device))
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            name = f"{cpu_model()}-{cores}c"
    name = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b", "", name, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def today() -> str:
    return datetime.date.today().isoformat()
