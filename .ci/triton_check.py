"""Compile-only check of the Triton kernels for sm_80 and sm_90 (Triton's own ptxas; no GPU needed): every kernel of
kernels/ in the specialisations the launch helpers use, so a kernel that only the interpreter has run cannot hide a
construct the GPU compiler rejects. One line per failing variant, a count per arch; exits non-zero if any fails.

    python .ci/triton_check.py            (TRITON_INTERPRET must be unset: interpreted kernels cannot be compiled)

Two sources of variants:
- every module's `static_variants()`: the launches at the benchmark shapes, configured by the same function as the
  launch helpers and specialised as Triton's JIT specialises them — compiled here for sm_80; bench/static_report.py
  compiles them for sm_90 (and reports registers, spills and grids);
- every module's `generic_variants()`, for sm_80 and sm_90: every dtype x activation x mode with i64 scalars and no
  alignment hints (the coverage this check always had).
"""
from __future__ import annotations

import os
import sys

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from fastgan.ops import OPS  # noqa: E402

MODULES = {name: op.triton_module() for name, op in OPS.items() if "triton" in op.backends}  # kernels/<op>.py


def _key(v) -> str:
    k = v["kernel"]
    return repr((k.fn.__name__ if hasattr(k, "fn") else k.__name__, sorted(v["signature"].items()),
                 sorted((str(a), repr(b)) for a, b in v["constexprs"].items()),
                 sorted((str(a), repr(b)) for a, b in (v.get("attrs") or {}).items()), sorted(v["options"].items())))


def variants(static: bool):
    """Every distinct compilation: the modules' static_variants() when `static` (benchmark shapes; variants that
    differ only in their grid compile to the same code and are compiled once), then the generic coverage."""
    seen = set()
    for mod in MODULES.values() if static else ():
        for v in mod.static_variants():
            if _key(v) not in seen:
                seen.add(_key(v))
                yield dict(v, name=f"static {v['name']} @ {v['shape']}")
    for mod in MODULES.values():  # a module without generic variants has its static ones only
        yield from getattr(mod, "generic_variants", tuple)()


def main() -> int:
    failed = 0
    shown = set()  # the full message once per distinct first line: the first line alone rarely names the cause
    for arch in (80, 90):
        target = GPUTarget("cuda", arch, 32)
        n = 0
        for v in variants(static=arch == 80):  # sm_90: bench/static_report.py compiles the static ones
            try:
                src = ASTSource(fn=v["kernel"], signature=v["signature"], constexprs=v["constexprs"],
                                attrs=v.get("attrs"))
                triton.compile(src, target=target, options=dict(v["options"]))
                n += 1
            except Exception as e:  # noqa: BLE001 - reported and counted
                failed += 1
                first = str(e).splitlines()[0] if str(e) else ""
                print(f"FAILED sm_{arch} {v['name']}: {type(e).__name__}: {first}")
                if (type(e), first) not in shown:
                    shown.add((type(e), first))
                    cause = f"{e.__cause__!r}" if e.__cause__ is not None else ""
                    print("    " + "\n    ".join(str(e).splitlines()[1:] + ([cause] if cause else [])))
        print(f"sm_{arch}: {n} kernel variants compiled", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
