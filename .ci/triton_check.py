"""Compile-only check of the Triton kernels for sm_80 and sm_90 (Triton's own ptxas; no GPU needed): every kernel of
kernels/ in the specialisations the launch helpers use, so a kernel that only the interpreter has run cannot hide a
construct the GPU compiler rejects. One line per failing variant, a count per arch; exits non-zero if any fails.

    python .ci/triton_check.py            (TRITON_INTERPRET must be unset: interpreted kernels cannot be compiled)

Two sources of variants:
- every module's `static_variants()`: the launches at the benchmark shapes, configured by the same function as the
  launch helpers and specialised as Triton's JIT specialises them — compiled here for sm_80; bench/static_report.py
  compiles them for sm_90 (and reports registers, spills and grids);
- the generic enumeration below, for sm_80 and sm_90: every dtype x activation x mode with i64 scalars and no
  alignment hints (the coverage this check always had).
"""
from __future__ import annotations

import os
import sys

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from fastgan._triton import bias_act, joint_linear, minibatch_disc, mmd  # noqa: E402
from fastgan.activations import ACTIVATIONS  # noqa: E402

MODULES = {"bias_act": bias_act, "joint_linear": joint_linear, "minibatch_disc": minibatch_disc, "mmd": mmd}
PTR_ARGS = {
    "joint_linear": ("out_ptr", "a1_ptr", "b1_ptr", "a2_ptr", "b2_ptr", "bias_ptr"),
    "bias_act": ("out_ptr", "ref_ptr", "g_ptr", "gg_ptr", "b_ptr", "part_ptr"),
    "minibatch_disc": ("a_ptr", "b_ptr", "ga_ptr", "gb_ptr", "out_ptr", "p_ptr", "q_ptr", "dg_ptr"),
}
DTYPES = (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp64", torch.float64))


def _generic(kname, kernel, dt, scalars, consts, opts, name):
    sig = dict.fromkeys(PTR_ARGS[kname], "*" + dt) | scalars | dict.fromkeys(consts, "constexpr")
    if kname == "bias_act":
        sig["part_ptr"] = "*fp64" if dt == "fp64" else "*fp32"
    if kname == "joint_linear" and consts.get("SPLIT"):
        sig["out_ptr"] = "*fp64" if dt == "fp64" else "*fp32"
    return dict(name=name, kernel=kernel, signature=sig, constexprs=consts, options=opts)


def generic_variants():
    """The dtype / activation / mode coverage, with generic (i64, unaligned) scalars."""
    jl_scalars = dict.fromkeys(("M", "N", "K1", "K2", "KS", "sa1m", "sa1k", "sb1k", "sb1n", "sa2m", "sa2k", "sb2k",
                                "sb2n", "som", "son", "sos"), "i64") | {"alpha": "fp64", "gain": "fp64"}
    ba_scalars = dict.fromkeys(("O", "C", "S", "NC", "NS", "PO", "NT"), "i64") | dict.fromkeys(
        ("alpha", "gain", "clamp"), "fp64")
    for dt, dtype in DTYPES:
        for prec in (("ieee", "tf32") if dt == "fp32" else ("ieee",)):
            for m in (16, 4096):
                cfg = joint_linear.config(m, 1024, 1074, dtype, prec, False)
                for act in ("lrelu", "linear"):
                    consts = dict(ACT=ACTIVATIONS[act].id, HAS_BIAS=act == "lrelu", HAS_2=act == "lrelu",
                                  ACC_F64=dt == "fp64", PREC=prec, SPLIT=cfg.SPLIT > 1, BM=cfg.BM, BN=cfg.BN,
                                  BK=cfg.BK, GROUP_M=8)
                    yield _generic("joint_linear", joint_linear._joint_mm_kernel, dt, jl_scalars, consts,
                                   dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
                                   f"joint_linear {dt} {prec} {act} M={m}")
        for spec in ACTIVATIONS.values():
            for mode in (0, 1, 2):
                cfg = bias_act.config(1, 1024, 1, mode > 0)
                consts = dict(ACT=spec.id, MODE=mode, YREF=mode > 0 and spec.y_ok, HAS_BIAS=True, G_BCAST=False,
                              GG_BCAST=False, BIAS_SUM=mode > 0, OB=1, CB=8, SB=128)
                yield _generic("bias_act", bias_act._bias_act_kernel, dt, ba_scalars, consts,
                               dict(num_warps=cfg.num_warps), f"bias_act {dt} {spec.name} mode={mode}")
        if dt in ("fp32", "fp64"):  # these kernels compute in fp32 / fp64 only (half inputs are widened first)
            md_scalars = dict.fromkeys(("NA", "NB", "K", "C"), "i64")
            # (MODE, SELF, EXCL, ROW_G, COL_G, G_OUT): forward, backward, second order (the launches of the wrappers)
            for mode, self_sum, excl, row_g, col_g, g_out in (
                    (0, True, True, False, False, False), (0, False, False, False, False, False),
                    (1, True, False, True, True, False), (1, False, False, True, False, False),
                    (1, False, False, False, True, False), (2, True, False, True, True, True),
                    (2, False, False, True, False, True), (2, False, False, False, True, False)):
                consts = dict(MODE=mode, SELF=self_sum, EXCL=excl, ROW_G=row_g, COL_G=col_g, G_OUT=g_out, BI=32, BJ=32)
                yield _generic("minibatch_disc", minibatch_disc._md_kernel, dt, md_scalars, consts,
                               dict(num_warps=4), f"minibatch_disc {dt} mode={mode} self={self_sum} row_g={row_g}")


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
    yield from generic_variants()


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
