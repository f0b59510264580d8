"""The fastgan command line (`fastgan ...` or `python -m fastgan ...`).

    fastgan info                 what was built and which backend runs where
    fastgan demo [--quick]       the fused bias+activation layer of a StyleGAN-style network (32x256x32x32 fp32,
                                 lrelu, bias, gain sqrt 2, clamp 256): checks it against the reference, then times
                                 fastgan, eager PyTorch and torch.compile, forward and forward+backward, against the
                                 byte floor measured on this machine in the same run
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import torch


def _info(args) -> int:
    import fastgan

    print(json.dumps({"backends": fastgan.backend_info(), "allocator": fastgan.allocator_info()}, indent=2))
    return 0


def _demo(args) -> int:
    import fastgan
    from fastgan.benchmarking import byte_floor_s, copy_bandwidth, timeit
    from fastgan.ops.reference import bias_act_functional

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        fastgan.tune_cpu_allocator()
    shape = (8, 256, 32, 32) if args.quick else (32, 256, 32, 32)
    act, alpha, gain, clamp = "lrelu", 0.2, math.sqrt(2), 256.0
    info = fastgan.backend_info()
    backend = info["auto"][device.type]
    print(f"fastgan {fastgan.__version__} on {info['cuda_device'] or 'CPU'} ({torch.get_num_threads()} threads), "
          f"torch {torch.__version__}; auto backend on {device.type}: {backend}; "
          f"allocator: {fastgan.allocator_info()['malloc']} (tuned: {fastgan.allocator_info()['tuned']})")

    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=gen, device=device, requires_grad=True)
    b = torch.randn(shape[1], generator=gen, device=device, requires_grad=True)
    gy = torch.randn(shape, generator=gen, device=device)

    # 1. correctness against the reference
    def grads(impl):
        y = fastgan.bias_act(x, b, 1, act, alpha, gain, clamp, impl=impl)
        dx, db = torch.autograd.grad(y, (x, b), gy)
        return [t.detach() for t in (y, dx, db)]

    ours, ref = grads("auto"), grads("reference")
    err = max(((a - e).abs().max() / e.abs().max().clamp_min(1e-30)).item() for a, e in zip(ours, ref))
    print(f"max relative difference to the reference (y, dx, db): {err:.2e}")
    if err > 1e-5:
        print("ERROR: fastgan disagrees with the reference", file=sys.stderr)
        return 1

    # 2. timing, all in this process under one allocator setting
    ops = {
        "eager": lambda: bias_act_functional(x, b, 1, act, alpha, gain, clamp),
        f"fastgan-{backend}": lambda: fastgan.bias_act(x, b, 1, act, alpha, gain, clamp),
    }
    if not args.no_compile:
        compiled = torch.compile(bias_act_functional, dynamic=False)
        ops["compile"] = lambda: compiled(x, b, 1, act, alpha, gain, clamp)
    n = x.numel() * x.element_size()
    floors = {"fwd": byte_floor_s(2 * n, device), "fwd+bwd": byte_floor_s(5 * n, device)}
    print(f"copy bandwidth {copy_bandwidth(device) / 1e9:.1f} GB/s; byte floor fwd {floors['fwd'] * 1e3:.2f} ms "
          f"(read x, write y), fwd+bwd {floors['fwd+bwd'] * 1e3:.2f} ms (+ read gy and y, write dx)")
    rows = {}
    for mode in ("fwd", "fwd+bwd"):
        for name, op in ops.items():
            if mode == "fwd":
                def run(op=op):
                    with torch.no_grad():
                        op()
            else:
                def run(op=op):
                    torch.autograd.grad(op(), (x, b), gy)
            rows[mode, name] = timeit(run, warmup=3, reps=5 if args.quick else 15, device=device)
    print(f"\n{'mode':8s} {'impl':14s} {'median ms':>10s} {'IQR ms':>8s} {'vs eager':>9s} {'vs compile':>11s} "
          f"{'% floor':>8s}")
    for (mode, name), t in rows.items():
        ve = rows[mode, "eager"].median / t.median
        vc = f"{rows[mode, 'compile'].median / t.median:10.2f}x" if (mode, "compile") in rows else f"{'-':>11s}"
        print(f"{mode:8s} {name:14s} {t.median * 1e3:10.2f} {t.iqr * 1e3:8.2f} {ve:8.2f}x {vc} "
              f"{floors[mode] / t.median * 100:7.0f}%")
    print("\n(full benchmark suite: pytest bench/ --device cpu|cuda; see README)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fastgan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="what was built and which backend runs where").set_defaults(fn=_info)
    d = sub.add_parser("demo", help="check and time the fused bias+activation op on this machine")
    d.add_argument("--quick", action="store_true", help="a 4x smaller tensor and fewer repetitions")
    d.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    d.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    d.set_defaults(fn=_demo)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
