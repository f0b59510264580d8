"""A gradient penalty on your critic: the WGAN-GP critic step (Gulrajani et al. 2017) with the penalty written by hand
(autograd.grad with create_graph=True) against `fastgan.gradient_penalty` / `fastgan.wgan_critic_loss`, on your own
critic as it is and fused by `fastgan.fuse`.

    python examples/critic_penalty.py              # batch 64, 32 x 32 digits, base width 32 (well under a minute)
    python examples/critic_penalty.py --quick      # a tiny run (the smoke test's)
    python examples/critic_penalty.py --threads 0  # torch's threads (a thread per core) instead of one

The critic is a plain-torch DCGAN discriminator without batch norm (examples/byo_models.py; WGAN-GP's critic has no
batch norm: the penalty is per sample), with torch's default initialisation. Its loss is
E[D(fake)] - E[D(real)] + 10 E[(|grad D(x_hat)| - 1)^2] at x_hat = eps real + (1 - eps) fake. The penalty
differentiates the critic twice (the gradient's norm is part of the loss), which fastgan.bias_act — what a fused layer
runs — supports exactly; torch.compile cannot run this double backward (docs/fuse.md), so the critic step stays
eager.

The script checks that the hand-written penalty, fastgan.gradient_penalty and fastgan.wgan_critic_loss agree (the same
eps for all), on the plain and on the fused critic, values and parameter gradients, then times one critic step
(loss, backward, Adam) of each, side by side in this run. Every time printed is measured in this run.
"""
from __future__ import annotations

import copy

import torch

import fastgan
from byo_models import (
    Discriminator,
    digits_images,
    generator,
    hand_written_penalty,
    relative_difference,
    run_script,
    side_by_side,
)

FULL = dict(batch=64, base=32, z_dim=64, warm_steps=8, reps=10)
SMALL = dict(batch=16, base=8, z_dim=16, warm_steps=4, reps=1)


def hand_written_loss(critic, real, fake, eps):
    return critic(fake).mean() - critic(real).mean() + hand_written_penalty(critic, real, fake, eps)


def fastgan_loss(critic, real, fake, eps):
    return fastgan.wgan_critic_loss(critic, real, fake, eps=eps).loss


def critic_step(critic, opt, loss_fn, real, fake, eps):
    loss = loss_fn(critic, real, fake, eps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def adam(net):
    return torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.0, 0.9))  # WGAN-GP's


def main(small: bool = False, seed: int = 0) -> dict:
    cfg = SMALL if small else FULL
    B = cfg["batch"]
    torch.manual_seed(seed)
    data = digits_images()
    G = generator(z_dim=cfg["z_dim"], base=cfg["base"], batch_norm=False)
    critic = Discriminator(base=cfg["base"], batch_norm=False, init="torch")
    gen = torch.Generator().manual_seed(seed)

    def batch():
        real = data[torch.randint(len(data), (B,), generator=gen)]
        with torch.no_grad():
            fake = G(torch.randn(B, cfg["z_dim"], generator=gen))
        return real, fake, torch.rand(B, generator=gen)

    # a few steps first (at a larger learning rate), so that the biases are no longer zero and the critic's input
    # gradients are of order 1, where the penalty's value depends on them
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.0, 0.9))
    for _ in range(cfg["warm_steps"]):
        critic_step(critic, opt, hand_written_loss, *batch())
    fused, report = fastgan.fuse(critic, report=True)
    print(f"WGAN-GP critic step: plain-torch DCGAN critic (no batch norm), batch {B}, base width {cfg['base']}, "
          f"{torch.get_num_threads()} torch threads\n" + str(report))

    real, fake, eps = batch()
    params = {"plain": list(critic.parameters()), "fused": list(fused.parameters())}
    pen = {"hand-written, plain critic": hand_written_penalty(critic, real, fake, eps),
           "fastgan.gradient_penalty, plain critic": fastgan.gradient_penalty(critic, real, fake, eps=eps),
           "fastgan.gradient_penalty, fused critic": fastgan.gradient_penalty(fused, real, fake, eps=eps)}
    loss = {"hand-written, plain critic": hand_written_loss(critic, real, fake, eps),
            "fastgan.wgan_critic_loss, plain critic": fastgan_loss(critic, real, fake, eps),
            "fastgan.wgan_critic_loss, fused critic": fastgan_loss(fused, real, fake, eps)}
    grads = {k: torch.autograd.grad(v, params["fused" if "fused" in k else "plain"]) for k, v in loss.items()}
    ref = "hand-written, plain critic"
    print(f"penalty {pen[ref].item():.6f}, critic loss {loss[ref].item():.6f} (hand-written, plain critic); largest "
          "relative difference (|x - hand-written| / max |hand-written|, per tensor):")
    diffs = {}
    for k in list(pen)[1:]:
        diffs[k + ": penalty"] = relative_difference([pen[ref]], [pen[k]])
        print(f"  {k:40s} penalty {diffs[k + ': penalty']:.1e}")
    for k in list(loss)[1:]:
        diffs[k + ": loss"] = relative_difference([loss[ref]], [loss[k]])
        diffs[k + ": gradients"] = relative_difference(grads[ref], grads[k])
        print(f"  {k:40s} loss {diffs[k + ': loss']:.1e}, parameter gradients {diffs[k + ': gradients']:.1e}")

    def step_of(net, loss_fn):
        opt = adam(net)
        return lambda: critic_step(net, opt, loss_fn, real, fake, eps)

    steps = {"hand-written, plain critic": step_of(copy.deepcopy(critic), hand_written_loss),
             "fastgan.wgan_critic_loss, plain critic": step_of(copy.deepcopy(critic), fastgan_loss),
             "fastgan.wgan_critic_loss, fused critic": step_of(fused, fastgan_loss)}
    times = side_by_side(steps, reps=cfg["reps"], warmup=1)
    print(f"one critic step (loss, backward, Adam), median of {cfg['reps']}, this run:")
    for k, t in times.items():
        print(f"  {k:40s} {t * 1e3:8.1f} ms ({times[ref] / t:.2f}x)")
    return dict(penalty=pen[ref].item(), loss=loss[ref].item(), diffs=diffs, times=times, fused=len(report.fused))


if __name__ == "__main__":
    run_script(main, __doc__, quick="a tiny run (a small critic and batch)")
