"""bench/static_report.py and its rules (bench/static_rules.py): the parsers on captured cuobjdump / ptxas output, the
occupancy and wave arithmetic, the failing rule, and one tiny sm_90 compilation (in a subprocess without the
interpreter; skipped without the tools). The modules' static_variants() share the launch helpers' configuration
functions (checked here too)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import static_report as sr
from bench import static_rules as rules

ROOT = Path(__file__).resolve().parent.parent

CUOBJDUMP = """
Resource usage:
 Common:
  GLOBAL:0
 Function _joint_mm_kernel:
  REG:124 STACK:0 SHARED:1024 LOCAL:0 CONSTANT[0]:720 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function other_kernel:
  REG:255 STACK:40 SHARED:0 LOCAL:0 CONSTANT[0]:400 TEXTURE:0 SURFACE:0 SAMPLER:0
"""

PTXAS = """
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_joint_mm_kernel' for 'sm_90a'
ptxas info    : Function properties for _joint_mm_kernel
    40 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 720 bytes cmem[0]
ptxas info    : Compiling entry function '_Z15bias_act_kernelILi0EfEvPf' for 'sm_90'
ptxas info    : Function properties for _Z15bias_act_kernelILi0EfEvPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 4096 bytes smem, 400 bytes cmem[0]
"""


def test_parse_cuobjdump():
    res = rules.parse_cuobjdump(CUOBJDUMP)
    assert res["_joint_mm_kernel"]["REG"] == 124 and res["_joint_mm_kernel"]["SHARED"] == 1024
    assert res["other_kernel"]["STACK"] == 40 and res["other_kernel"]["CONSTANT[0]"] == 400


def test_parse_ptxas():
    res = rules.parse_ptxas(PTXAS)
    assert res["_joint_mm_kernel"] == dict(regs=168, spill_stores=12, spill_loads=16, stack=40, smem=0)
    assert res["_Z15bias_act_kernelILi0EfEvPf"] == dict(regs=32, spill_stores=0, spill_loads=0, stack=0, smem=4096)


def test_base_name():
    assert sr.base_name("void fastgan::(anonymous namespace)::bias_act_kernel<(Kind)0, 2, true, float>"
                        "(fastgan::Args<float>)") == "bias_act_kernel"


def test_occupancy_and_waves():
    # 4 warps at 32 registers: the thread limit (2048 / 128 = 16 CTAs) binds
    assert rules.ctas_per_sm(32, 128, 0) == 16
    # 8 warps at 124 registers: 124 * 32 = 3968 -> 4096 per warp; 65536 / 4096 = 16 warps = 2 CTAs
    assert rules.ctas_per_sm(124, 256, 17408) == 2
    # shared memory: 100 KiB + 1 KiB reserved per CTA -> 2 CTAs in 228 KiB
    assert rules.ctas_per_sm(32, 128, 100 * 1024) == 2
    # 1 warp, few registers: the 32-CTA limit
    assert rules.ctas_per_sm(16, 32, 0) == 32
    assert rules.waves(132 * 2, 2) == 1.0
    assert rules.waves(160, 2) == pytest.approx(160 / 264)


def _row(**kw):
    base = dict(kernel="k", variant="v", shape="s", regs=32, spills=0, smem=0, threads=128, programs=132 * 16,
                hot=True)
    base.update(kw)
    return rules.Row(**base)


def test_failing_rule():
    assert rules.judge(_row()).verdict == "ok"
    spilling = rules.judge(_row(spills=8))
    assert spilling.verdict.startswith("FAIL") and "spills 8 B" in spilling.verdict
    small = rules.judge(_row(programs=100))
    assert small.verdict.startswith("FAIL") and "100 programs < 132 SMs" in small.verdict
    # every SM busy passes, also below a full occupancy wave (the waves are reported beside)
    busy = rules.judge(_row(programs=132))
    assert busy.verdict == "ok" and busy.waves < 1.0
    assert rules.failed([spilling, small, rules.judge(_row())]) == [spilling, small]
    # an excused hot variant passes, and carries its reason
    excused = rules.judge(_row(variant="my variant", spills=8), reasons={"my variant": "because"})
    assert excused.verdict.startswith("excused") and excused.reason == "because" and not rules.failed([excused])
    # patterns match "variant @ shape"
    assert rules.judge(_row(variant="x fwd", shape="128x1", programs=1), reasons={r"fwd @ 128x1 ": "r"}).reason == "r"
    # a variant that is not hot never fails
    assert not rules.failed([rules.judge(_row(hot=False, spills=8, programs=1))])
    md = sr.markdown([spilling, excused], ["a note"])
    assert "| k | v | s | 32 | 8 |" in md and "because" in md and "- a note" in md and "1 failing" in md


def test_static_variants_follow_the_launch_configuration():
    """The variants the report compiles are the launches' configurations (one config function each)."""
    from fastgan._triton import bias_act, joint_linear, minibatch_discrimination
    from fastgan._triton._launch import kernel_params

    keys = {"name", "kernel", "signature", "constexprs", "options", "grid", "shape", "hot"}
    for mod in (bias_act, joint_linear, minibatch_discrimination):
        vs = list(mod.static_variants())
        assert vs and all(keys <= set(v) for v in vs)
        assert any(v["hot"] for v in vs)
        for v in vs:
            params = [p[0] for p in kernel_params(v["kernel"])]
            assert list(v["signature"]) == params
            assert all(v["signature"][k] == "constexpr" for k in v["constexprs"])
    v = next(v for v in joint_linear.static_variants() if v["name"].startswith("joint_linear fwd B=128 in=1024"))
    cfg = joint_linear.config(128, 1024, 1074, __import__("torch").float32, "ieee", False)
    assert v["grid"] == cfg.grid(128, 1024) and v["constexprs"]["BM"] == cfg.BM and cfg.SPLIT > 1
    assert cfg.tiles(128, 1024) * cfg.SPLIT >= 132
    v = next(v for v in bias_act.static_variants() if v["shape"] == "4096x1024")
    cfg = bias_act.config(4096, 1024, 1, True)
    assert v["grid"] == cfg.grid and cfg.partial_rows * 1024 < 4096 * 1024 // 4


def _tools():
    try:
        import triton  # noqa: F401
        from triton import knobs
        return Path(knobs.nvidia.cuobjdump.path).exists() and Path(knobs.nvidia.ptxas_blackwell.path).exists()
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _tools(), reason="Triton's cuobjdump / ptxas not available")
def test_one_tiny_compilation():
    """One minibatch_discrimination variant compiled for sm_90 and measured, in a fresh process without the
    interpreter."""
    code = (
        "import os, tempfile; os.environ.pop('TRITON_INTERPRET', None); "
        "os.environ['TRITON_CACHE_DIR'] = tempfile.mkdtemp(); os.environ['TRITON_DEFAULT_FP_FUSION'] = '1'\n"
        "from bench import static_report as sr\n"
        "from fastgan._triton import minibatch_discrimination as m\n"
        "v = next(v for v in m.static_variants()\n"
        "         if v['name'].startswith('minibatch_discrimination fwd') and '1024' in v['shape'])\n"
        "r = sr.triton_row('minibatch_discrimination', v)\n"
        "print('ROW', r.regs, r.spills, r.smem, r.programs, r.verdict)\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    line = next(x for x in p.stdout.splitlines() if x.startswith("ROW"))
    _, regs, spills, smem, programs, *verdict = line.split()
    assert 0 < int(regs) <= 255 and int(spills) == 0 and int(programs) == 32 * 100
    assert verdict[0] == "ok"


def test_run_as_a_file_says_how_to_run_it():
    """The report is a module of the bench package (its rules are a sibling module): run as a file it exits with the
    command to use instead of an ImportError."""
    p = subprocess.run([sys.executable, "bench/static_report.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and "python -m bench.static_report" in p.stderr
