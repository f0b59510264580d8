"""`--precision auto` (TrainConfig.precision = "auto"): bf16 autocast where the device multiplies bf16 matrices in
hardware, fp32 elsewhere. The choice is made once, when a Trainer is built: TrainConfig.precision then holds it (so
config.json, the checkpoint and a resumption see the precision that ran) and TrainConfig.precision_auto says why.

Native bf16 matrix units: on a CPU the flags avx512_bf16 (AMD Zen 4+, Intel Cooper Lake+) or amx_bf16 (Intel
Sapphire Rapids+), read from /proc/cpuinfo (oneDNN then runs bf16 GEMMs at about twice the fp32 rate with fp32
accumulation; other CPUs emulate bf16 and gain nothing); on a GPU bf16 tensor cores, compute capability 8.0+.
"""
from __future__ import annotations

import functools

import torch

__all__ = ["BF16_CPU_FLAGS", "cpu_flags", "native_bf16", "resolve"]

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device) -> tuple[bool, str]:
    """(whether `device` has bf16 matrix units, the reason in words)."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        if (major, minor) >= (8, 0):
            return True, f"{name} (sm_{major}{minor}) has bf16 tensor cores"
        return False, f"{name} (sm_{major}{minor}) has no bf16 tensor cores (they start at sm_80)"
    if device.type == "cpu":
        found = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
        if found:
            return True, f"the CPU has {' and '.join(found)}"
        return False, f"the CPU has neither {' nor '.join(BF16_CPU_FLAGS)} (bf16 would be emulated)"
    return False, f"{device.type}: bf16 matrix units unknown"


def resolve(precision: str, device) -> tuple[str, str]:
    """(the precision to run, why): 'auto' -> 'bf16' where native_bf16(device), else 'fp32'; others as given."""
    if precision != "auto":
        return precision, ""
    ok, why = native_bf16(device)
    chosen = "bf16" if ok else "fp32"
    return chosen, f"auto: {chosen}, {why}"
