"""The objective family's recipes (issue 8): defaults, the pieces each recipe adds (clipping, the fused penalty, MMD
on features, feature matching with minibatch discrimination), and short training runs."""
import pytest
import torch
import torch.nn.functional as F
from conftest import join, rendezvous

import fastgan
from fastgan import losses
from fastgan.nn import MinibatchDiscrimination
from fastgan.penalties import wgan_critic_loss
from fastgan.train import RECIPES, Trainer, config_for

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False, data="gmm8")
FAMILY = ["wgan", "wgan-gp", "lsgan", "hinge", *[f"fgan-{d}" for d in losses.DIVERGENCES], "gmmn", "mmdgan",
          "mmdgan-clip", "improved"]


def test_every_objective_has_a_recipe():
    assert set(FAMILY) <= set(RECIPES)


def test_recipe_defaults_and_overrides():
    cfg = config_for("wgan", steps=1)
    assert (cfg.optimizer, cfg.lr, cfg.n_critic, cfg.batch_size, cfg.update) == ("rmsprop", 5e-5, 5, 64, "alternating")
    cfg = config_for("wgan-gp", steps=1, lr=3e-4)
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.n_critic) == (3e-4, 0.0, 0.9, 5)
    t = Trainer(config_for("wgan", steps=1, **{k: v for k, v in TINY.items() if k != "batch_size"}))
    assert isinstance(t.opts["D"], torch.optim.RMSprop) and t.cfg.batch_size == 64


def test_wgan_clips_the_critic():
    t = Trainer(config_for("wgan", steps=2, **TINY, extra={"clip": 0.003}))
    t.run()
    assert max(p.abs().max().item() for p in t.recipe.params("D")) <= torch.tensor(0.003).item()  # fp32 c


def test_wgan_gp_critic_loss_is_the_fused_penalty_loss():
    t = Trainer(config_for("wgan-gp", steps=1, **TINY))
    x, gz = t.train_x[:32], torch.randn(32, 2)
    got = t.recipe.critic_loss(t.context(), x, gz, torch.Generator().manual_seed(3))
    eps = torch.rand(32, 1, generator=torch.Generator().manual_seed(3))[:, 0]
    exp = wgan_critic_loss(t.recipe.nets["D"], x, gz, eps=eps, fused=False).loss
    torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-6)


def test_mmdgan_clip_and_gmmn_losses():
    t = Trainer(config_for("mmdgan-clip", steps=1, **TINY))
    x = t.train_x[:32]
    f = t.recipe.nets["D"]
    assert f(x).shape == (32, 16)
    t.recipe.after_critic_step()  # weights clipped to [-0.01, 0.01], as after every critic step
    # the kernel on the features divided by their pooled median distance m, bandwidths 0.25 ... 4: the same as
    # bandwidths 0.25 m ... 4 m on the raw features (median heuristic every step)
    fx, fg = f(x).double(), f(x + 1).double()
    m = torch.pdist(torch.cat([fx, fg])).median().item()
    exp = fastgan.mmd2(fx, fg, bandwidths=tuple(m * c for c in (0.25, 0.5, 1.0, 2.0, 4.0)), impl="reference")
    torch.testing.assert_close(t.recipe.critic_loss(t.context(), x, x + 1, None).double(), -exp, rtol=1e-5, atol=1e-7)
    assert exp > 0.1  # the kernels resolve the clipped features; the paper's fixed bandwidths do not:
    assert fastgan.mmd2(fx, fg, bandwidths=(1.0, 2.0, 4.0, 8.0, 16.0), impl="reference") < 1e-6
    g = Trainer(config_for("gmmn", steps=1, **TINY))
    assert len(g.recipe.bandwidths) == 5 and "D" not in g.recipe.nets


def test_mmdgan_penalises_the_witness_gradient():
    """mmdgan (Binkowski et al. 2018): -MMD^2 of the features plus gp_weight times the mean of (|grad_t w(t)| - 1)^2
    at interpolates t, w the witness function mean_j k(f(t), f(x_j)) - mean_j k(f(t), f(g_j)), here written out with
    the dense Gaussian kernel matrix and torch's double backward; the kernel on the raw features (absolute
    bandwidths), or with bandwidths_follow on the features in units of their median distance; Adam, no clipping."""
    bw = (0.25, 0.5, 1.0, 2.0, 4.0)

    def k(a, b):  # sum over the bandwidths of exp(-|a - b|^2 / (2 s^2)), all pairs
        r2 = torch.cdist(a, b).square()
        return sum(torch.exp(-r2 / (2 * s * s)) for s in bw)

    for follow in (False, True):
        t = Trainer(config_for("mmdgan", steps=1, **TINY, extra={"gp_weight": 0.7, **({"bandwidths_follow": True}
                                                                                          if follow else {})}))
        assert isinstance(t.opts["D"], torch.optim.Adam) and (t.cfg.lr, t.cfg.beta1, t.cfg.beta2) == (1e-3, 0.5, 0.9)
        f = t.recipe.nets["D"]
        x, gz = t.train_x[:32], torch.randn(32, 2)
        got = t.recipe.critic_loss(t.context(), x, gz, torch.Generator().manual_seed(3))
        fx, fg = f(x), f(gz)
        m = torch.pdist(torch.cat([fx, fg])).median().detach() if follow else 1.0
        mmd = k(fx / m, fx / m).mean() + k(fg / m, fg / m).mean() - 2 * k(fx / m, fg / m).mean()
        eps = torch.rand(32, 1, generator=torch.Generator().manual_seed(3))
        pts = (eps * x + (1 - eps) * gz).requires_grad_(True)
        ft = f(pts) / m
        w = k(ft, fx / m).mean(1) - k(ft, fg / m).mean(1)  # the witness at each interpolate
        (g,) = torch.autograd.grad(w.sum(), pts, create_graph=True)
        exp = -mmd + 0.7 * ((g.norm(dim=1) - 1) ** 2).mean()
        torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-6)
        # the penalty's gradient reaches the feature map's weights (double backward through the fused layers)
        (dw,) = torch.autograd.grad(got, f.fc1.weight)
        (ew,) = torch.autograd.grad(exp, f.fc1.weight)
        torch.testing.assert_close(dw, ew, rtol=1e-5, atol=1e-6)
    before = [p.detach().clone() for p in t.recipe.params("D")]
    t.recipe.after_critic_step()  # no clipping
    assert all(torch.equal(a, b) for a, b in zip(before, t.recipe.params("D")))


def test_improved_feature_matching_and_minibatch_layer():
    t = Trainer(config_for("improved", steps=1, **TINY))
    D = t.recipe.nets["D"]
    assert isinstance(D.mbd, MinibatchDiscrimination)
    x, gz = t.train_x[:32], torch.randn(32, 2)
    torch.testing.assert_close(t.recipe.generator_loss(x, gz), F.softplus(-D(gz)).mean())  # non-saturating (default)
    fm = Trainer(config_for("improved", steps=1, **{**TINY, "extra": {"feature_matching": True}}))
    D = fm.recipe.nets["D"]
    exp = (D.features(gz).mean(0) - D.features(x).mean(0)).square().sum()
    torch.testing.assert_close(fm.recipe.generator_loss(x, gz), exp)


@pytest.mark.parametrize("model", FAMILY)
def test_short_runs_reduce_nothing_to_nan(model):
    t = Trainer(config_for(model, steps=3, **TINY, log_every=1))
    before = [p.detach().clone() for p in t.recipe.nets["G"].parameters()]
    t.run()
    assert any(not torch.equal(p, q) for p, q in zip(t.recipe.nets["G"].parameters(), before))
    assert all(torch.isfinite(p).all() for net in t.recipe.nets.values() for p in net.parameters())


# ---- data parallel (fastgan.train.distributed): 2 gloo processes on loopback vs one process, same global batch ----
def _record_grads(model, data, out_path, run_dir, kw=None):
    """Two training iterations in float64, a checkpoint after the first (mid metrics interval); saves every (group,
    averaged gradients) the recipe applies, the checkpoint's partial metric sums and G's moving average (kw:
    further TrainConfig fields, e.g. ema)."""
    from fastgan.train import checkpoint as ckpt

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        t = Trainer(config_for(model, steps=2, **{**TINY, "data": data, "batch_size": 32, **(kw or {})},
                               out=str(run_dir), ckpt_every=1, log_every=2))
        t.train_x = t.train_x.double()
        got, acc = [], []
        apply, save = t.recipe.apply, ckpt.save

        def record(ctx, group, grads):
            apply(ctx, group, grads)  # averages across ranks, then steps
            got.append((group, [p.grad.clone() for p in t.recipe.params(group)]))

        def record_save(path, state):
            acc.append(state["metrics_acc"])
            save(path, state)

        t.recipe.apply = record
        ckpt.save = record_save
        try:
            t.run()
        finally:
            ckpt.save = save
        torch.save({"grads": got, "acc": acc[:1], "ema": t.ema.state_dict() if t.ema is not None else None},
                   out_path)
    finally:
        torch.set_default_dtype(old)


def _ddp_worker(rank, init, model, data, out_dir, kw):
    import torch.distributed as dist

    join(init, rank, 2)
    try:
        _record_grads(model, data, f"{out_dir}/rank{rank}.pt", f"{out_dir}/run", kw)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("model, data, kw", [("gan", "gmm8", None), ("bigan", "digits", None), ("lsgan", "gmm8", None),
                                             ("wgan-gp", "gmm8", None),
                                             # G's average (its batch norm: global statistics) and lazy R1
                                             ("gan", "digits", dict(ema=0.05, ema_rampup=0.0,
                                                                    extra={"r1": 0.5, "r1_every": 2}))])
def test_two_processes_match_one_process_on_the_global_batch(tmp_path, model, data, kw):
    import torch.multiprocessing as mp

    _record_grads(model, data, tmp_path / "single.pt", tmp_path / "single", kw)
    with rendezvous() as addr:
        mp.spawn(_ddp_worker, args=(addr, model, data, str(tmp_path), kw), nprocs=2)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    if kw and kw.get("ema"):  # every rank holds the same average (bit for bit), the one-process run's (1e-10)
        averages = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["ema"] for r in range(2)]
        assert any("running_var" in k for k in single["ema"])
        for k, v in single["ema"].items():
            assert torch.equal(averages[0][k], averages[1][k]), k
            torch.testing.assert_close(averages[0][k], v, rtol=1e-10, atol=1e-10, msg=lambda m: f"ema {k}: {m}")
    # the checkpoint's partial metric sums (mid interval) are the mean over ranks, as one process has them: the
    # first metrics line after a distributed resume is the uninterrupted run's
    (acc,) = torch.load(tmp_path / "rank0.pt", weights_only=True)["acc"]
    assert acc["count"] == single["acc"][0]["count"] == 1
    for k, v in single["acc"][0]["sums"].items():
        torch.testing.assert_close(acc["sums"][k], v, rtol=1e-12, atol=1e-12, msg=lambda m: f"metrics {k}: {m}")
    single = single["grads"]
    for r in range(2):
        multi = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["grads"]
        assert [g for g, _ in multi] == [g for g, _ in single]
        for (group, a), (_, b) in zip(multi, single):
            scale = max(y.abs().max().item() for y in b)
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10 * scale, msg=lambda m: f"rank {r} {group}: {m}")


def _failing_write_worker(rank, init, out_dir):
    import torch.distributed as dist

    from fastgan.train import checkpoint as ckpt

    join(init, rank, 2, timeout_s=60)  # a hang fails the test instead of stalling CI
    try:
        if rank == 0:
            def broken(path, state):
                raise OSError("disk full (simulated)")

            ckpt.save = broken
        t = Trainer(config_for("gan", steps=6, **{**TINY, "data": "gmm8", "batch_size": 32},
                                          out=f"{out_dir}/run", ckpt_every=2))
        try:
            t.run()
            outcome = "finished"
        except Exception as e:  # noqa: BLE001 - the outcome is what the test checks
            outcome = f"{type(e).__name__}: {e} at step {t.step}"
        with open(f"{out_dir}/outcome{rank}", "w") as f:
            f.write(outcome)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_a_failing_rank0_write_stops_every_rank(tmp_path):
    """Rank 0 alone writes the run directory; when that fails, the other ranks raise too (instead of blocking in
    the next all-reduce until the process group's timeout)."""
    import torch.multiprocessing as mp

    with rendezvous() as addr:
        mp.spawn(_failing_write_worker, args=(addr, str(tmp_path)), nprocs=2)
    assert (tmp_path / "outcome0").read_text() == "OSError: disk full (simulated) at step 2"
    assert (tmp_path / "outcome1").read_text() == ("RuntimeError: rank 0 failed to write the checkpoint; rank 1 "
                                                   "stops too (see rank 0's error) at step 2")


def test_torchrun_cli_two_ranks_checkpoint_and_resume_on_one(tmp_path):
    """torchrun with 2 CPU ranks: rank 0 alone writes the run directory; the checkpoint then resumes in one process,
    and both end where a one-process run ends (fp32: up to reduction order)."""
    import subprocess
    import sys

    args = ["train", "gan", "--data", "gmm8", "--hidden", "16", "--z-dim", "4", "--batch-size", "32", "--steps", "6",
            "--ckpt-every", "3", "--log-every", "3", "--no-progress", "--no-eval"]
    two = tmp_path / "two"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "fastgan", *args, "--out", str(two)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("throughput:") == 1  # rank 0 reports
    one = tmp_path / "one"
    res = subprocess.run([sys.executable, "-m", "fastgan", *args, "--out", str(one)], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    from fastgan.train import checkpoint as ckpt

    a, b = ckpt.load(two / "checkpoint.pt"), ckpt.load(one / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for name in a["nets"]:
        for k in a["nets"][name]:
            torch.testing.assert_close(a["nets"][name][k], b["nets"][name][k], rtol=1e-5, atol=1e-7)
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 2
    # the 2-rank checkpoint continues in one process: extend nothing, just re-run the last interval from step 6
    t = Trainer(config_for("gan", data="gmm8", hidden=16, z_dim=4, batch_size=32, steps=6, ckpt_every=3,
                                      log_every=3, progress=False, eval_at_end=False, out=str(two)), resume=True)
    assert t.step == 6
