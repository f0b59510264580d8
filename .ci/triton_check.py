"""Compile-only check of the Triton kernels for sm_80 and sm_90 (Triton's own ptxas; no GPU needed): every kernel of
kernels/ in the specialisations the launch helpers use, so a kernel that only the interpreter has run cannot hide a
construct the GPU compiler rejects. One line per variant; exits non-zero if any fails.

    python .ci/triton_check.py            (TRITON_INTERPRET must be unset: interpreted kernels cannot be compiled)
"""
from __future__ import annotations

import os
import sys

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from fastgan._triton import bias_act, joint_linear, minibatch_disc, mmd  # noqa: E402
from fastgan.activations import ACTIVATIONS  # noqa: E402

PTR_ARGS = {
    "joint_linear": ("out_ptr", "a1_ptr", "b1_ptr", "a2_ptr", "b2_ptr", "bias_ptr"),
    "bias_act": ("out_ptr", "ref_ptr", "g_ptr", "gg_ptr", "b_ptr", "part_ptr"),
    "mmd": ("a_ptr", "b_ptr", "na_ptr", "nb_ptr", "p_ptr", "w_ptr", "val_ptr", "g_ptr", "g2_ptr", "pu_ptr", "qv_ptr",
            "pa_ptr", "qb_ptr"),
    "minibatch_disc": ("a_ptr", "b_ptr", "ga_ptr", "gb_ptr", "out_ptr", "p_ptr", "q_ptr", "dg_ptr"),
}
KERNELS = {"joint_linear": joint_linear._joint_mm_kernel, "bias_act": bias_act._bias_act_kernel,
           "mmd": mmd._pair_rows_kernel, "minibatch_disc": minibatch_disc._md_kernel}


def variants():
    """(name, kernel, pointer dtype, {scalar arg: type}, constexprs, launch options)."""
    jl_scalars = dict.fromkeys(("M", "N", "K1", "K2", "sa1m", "sa1k", "sb1k", "sb1n", "sa2m", "sa2k", "sb2k", "sb2n",
                                "som", "son"), "i64") | {"alpha": "fp64", "gain": "fp64"}
    for dt, tdt in (("fp32", "float32"), ("fp16", "float16"), ("bf16", "bfloat16"), ("fp64", "float64")):
        import torch

        dtype = getattr(torch, tdt)
        for prec in (("ieee", "tf32") if dt == "fp32" else ("ieee",)):
            for m in (16, 4096):
                bm, bn, bk, warps, stages = joint_linear._tiles(m, 1024, 1074, dtype, False)
                for act in ("lrelu", "linear"):
                    consts = dict(ACT=ACTIVATIONS[act].id, HAS_BIAS=act == "lrelu", HAS_2=act == "lrelu",
                                  ACC_F64=dt == "fp64", PREC=prec, BM=bm, BN=bn, BK=bk, GROUP_M=8)
                    yield (f"joint_linear {dt} {prec} {act} M={m}", joint_linear._joint_mm_kernel, dt, jl_scalars,
                           consts, dict(num_warps=warps, num_stages=stages))
        ba_scalars = dict.fromkeys(("O", "C", "S", "NC", "NS"), "i64") | dict.fromkeys(("alpha", "gain", "clamp"),
                                                                                        "fp64")
        for spec in ACTIVATIONS.values():
            for mode in (0, 1, 2):
                consts = dict(ACT=spec.id, MODE=mode, YREF=mode > 0 and spec.y_ok, HAS_BIAS=True, G_BCAST=False,
                              GG_BCAST=False, BIAS_SUM=mode > 0, OB=1, CB=8, SB=128)
                yield (f"bias_act {dt} {spec.name} mode={mode}", bias_act._bias_act_kernel, dt, ba_scalars, consts,
                       dict(num_warps=4))
        if dt in ("fp32", "fp64"):  # the MMD kernels compute in fp32 / fp64 only (half inputs are widened first)
            mmd_scalars = dict.fromkeys(("NA", "NB", "D"), "i64") | dict.fromkeys(("fac1", "fac2"), "fp32")
            for kname, kid in mmd.KERNEL_IDS.items():
                for mode in ((0, 1, 2) if kid < 3 else (0, 1)):  # the laplacians are first order only
                    bm, bn, bd, warps = mmd._tiles(64, dtype, False, direct=kid >= 3)
                    consts = dict(KERNEL=kid, NS=5, MODE=mode, SELF=mode != 1, DIAG=mode == 0, PREC="ieee", BM=bm,
                                  BN=bn, BD=bd)
                    yield (f"mmd {dt} {kname} mode={mode}", mmd._pair_rows_kernel, dt, mmd_scalars, consts,
                           dict(num_warps=warps))
            md_scalars = dict.fromkeys(("NA", "NB", "K", "C"), "i64")
            # (MODE, SELF, EXCL, ROW_G, COL_G, G_OUT): forward, backward, second order (the launches of the wrappers)
            for mode, self_sum, excl, row_g, col_g, g_out in (
                    (0, True, True, False, False, False), (0, False, False, False, False, False),
                    (1, True, False, True, True, False), (1, False, False, True, False, False),
                    (1, False, False, False, True, False), (2, True, False, True, True, True),
                    (2, False, False, True, False, True), (2, False, False, False, True, False)):
                consts = dict(MODE=mode, SELF=self_sum, EXCL=excl, ROW_G=row_g, COL_G=col_g, G_OUT=g_out, BI=32, BJ=32)
                yield (f"minibatch_disc {dt} mode={mode} self={self_sum} row_g={row_g}", minibatch_disc._md_kernel,
                       dt, md_scalars, consts, dict(num_warps=4))


def main() -> int:
    failed = 0
    for arch in (80, 90):
        target = GPUTarget("cuda", arch, 32)
        n = 0
        for name, kernel, dt, scalars, consts, opts in variants():
            kname = next(k for k, v in KERNELS.items() if v is kernel)
            sig = dict.fromkeys(PTR_ARGS[kname], "*" + dt) | scalars | dict.fromkeys(consts, "constexpr")
            if kname == "bias_act":
                sig["part_ptr"] = "*fp64" if dt == "fp64" else "*fp32"
            try:
                triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts), target=target, options=opts)
                n += 1
            except Exception as e:  # noqa: BLE001 - reported and counted
                failed += 1
                print(f"FAILED sm_{arch} {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        print(f"sm_{arch}: {n} kernel variants compiled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
