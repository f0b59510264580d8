"""Your own DCGAN, fused in one line: `fastgan.fuse(G)`, `fastgan.fuse(D)` (and what that buys, measured here).

    python examples/fuse_dcgan.py              # batch 64, base width 32, 32 x 32 digits (under a minute)
    python examples/fuse_dcgan.py --quick      # a tiny run (the smoke test's)
    python examples/fuse_dcgan.py --threads 0  # torch's threads (a thread per core) instead of one

A plain-torch DCGAN (examples/byo_models.py: G an nn.Sequential of ConvTranspose2d / BatchNorm2d / ReLU and Tanh, D a
module calling F.leaky_relu in its forward; nothing of fastgan in them) trains a few steps on fastgan's bundled
digits (upsampled to 32 x 32). Then each net is fused — a copy whose Conv + activation pairs run as one convolution
without bias plus one fastgan.bias_act — and the script prints fuse's report, checks that the fused nets compute the
same outputs and gradients, and times one training step (D step, then G step, Adam) of each pair, side by side in
this run. The same is done for the nets without batch norm: batch norm between a convolution and its activation ends
what fuse can fuse (the report shows which layers were fused), so that variant is where fusing has most to do.

Every time printed is measured in this run, on this machine; nothing here is a claim about another machine. The
examples run on one torch thread unless --threads says otherwise (byo_models.run_script says why).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

import fastgan
from byo_models import Discriminator, digits_images, generator, relative_difference, run_script, side_by_side

FULL = dict(batch=64, base=32, z_dim=64, train_steps=20, reps=10)
SMALL = dict(batch=16, base=8, z_dim=16, train_steps=2, reps=1)


def train_step(G, D, opt_g, opt_d, real, z):
    """One non-saturating GAN step, the DCGAN way: D on real and G(z) (detached), then G through the updated D."""
    fake = G(z)
    d_real, d_fake = D(real), D(fake.detach())
    d_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
        F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    d_out = D(fake)
    g_loss = F.binary_cross_entropy_with_logits(d_out, torch.ones_like(d_out))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()


def adam(net):
    return torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))


def compare(G, D, Gf, Df, real, z) -> dict:
    """How far the fused nets are from the plain ones (relative_difference: |plain - fused| on the plain tensor's
    scale): outputs in eval mode (running batch-norm statistics), then the loss and every parameter gradient of a
    training-mode GAN loss (on copies, so that no batch-norm statistics of the nets move)."""
    out = {}
    for net in (G, D, Gf, Df):
        net.eval()
    with torch.no_grad():
        out["G(z)"] = relative_difference([G(z)], [Gf(z)])
        out["D(x)"] = relative_difference([D(real)], [Df(real)])
    grads = []
    for g, d in ((G, D), (Gf, Df)):
        g, d = copy.deepcopy(g).train(), copy.deepcopy(d).train()
        fake = g(z)
        d_out = d(torch.cat([real, fake]))
        loss = F.softplus(-d_out[:len(real)]).mean() + F.softplus(d_out[len(real):]).mean()
        grads.append([loss.detach(), *torch.autograd.grad(loss, [*g.parameters(), *d.parameters()])])
    out["loss"] = relative_difference(grads[0][:1], grads[1][:1])
    out["parameter gradients"] = relative_difference(grads[0][1:], grads[1][1:])
    for net in (G, D, Gf, Df):
        net.train()
    return out


def run_variant(batch_norm: bool, cfg: dict, data: torch.Tensor, seed: int) -> dict:
    torch.manual_seed(seed)
    B, z_dim = cfg["batch"], cfg["z_dim"]
    G = generator(z_dim=z_dim, base=cfg["base"], batch_norm=batch_norm)
    D = Discriminator(base=cfg["base"], batch_norm=batch_norm)
    opt_g, opt_d = adam(G), adam(D)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg["train_steps"]):
        real = data[torch.randint(len(data), (B,), generator=gen)]
        d_loss, g_loss = train_step(G, D, opt_g, opt_d, real, torch.randn(B, z_dim, generator=gen))
    print(f"  trained {cfg['train_steps']} steps: D loss {d_loss.item():.3f}, G loss {g_loss.item():.3f}")

    Gf, report_g = fastgan.fuse(G, report=True)  # a fused copy (inplace=True would fuse G itself)
    Df, report_d = fastgan.fuse(D, report=True)
    for name, net, rep in (("G", G, report_g), ("D", D, report_d)):
        convs = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in net.modules())
        print(f"  {name}: {len(rep.fused)} of its {convs} convolutions fused; " + str(rep).replace("\n", "\n  "))
    assert list(Gf.state_dict()) == list(G.state_dict()) and list(Df.state_dict()) == list(D.state_dict())

    real = data[torch.randint(len(data), (B,), generator=gen)]
    z = torch.randn(B, z_dim, generator=gen)
    diffs = compare(G, D, Gf, Df, real, z)
    print("  plain vs fused, largest relative difference: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))

    # a training step of each pair, on its own copies and optimisers (both pairs start from the same weights)
    def step_of(g, d):
        opt_g, opt_d = adam(g), adam(d)
        return lambda: train_step(g, d, opt_g, opt_d, real, z)

    steps = {"plain": step_of(copy.deepcopy(G), copy.deepcopy(D)), "fused": step_of(Gf, Df)}
    times = side_by_side(steps, reps=cfg["reps"], warmup=1)
    print(f"  one training step (B {B}), median of {cfg['reps']}: plain {times['plain'] * 1e3:.1f} ms, "
          f"fused {times['fused'] * 1e3:.1f} ms ({times['plain'] / times['fused']:.2f}x)")
    return dict(diffs=diffs, times=times, fused=len(report_g.fused) + len(report_d.fused),
                not_fused=len(report_g.not_fused) + len(report_d.not_fused))


def main(small: bool = False, seed: int = 0) -> dict:
    cfg = SMALL if small else FULL
    data = digits_images()
    print(f"fastgan.fuse on a plain-torch DCGAN: digits as {tuple(data.shape[1:])} images, batch {cfg['batch']}, "
          f"base width {cfg['base']}, {torch.get_num_threads()} torch threads")
    results = {}
    for batch_norm in (True, False):
        print(f"\n{'DCGAN (batch norm in G and D)' if batch_norm else 'the same nets without batch norm'}:")
        results["batch_norm" if batch_norm else "no_batch_norm"] = run_variant(batch_norm, cfg, data, seed)
    print("\ntimes are this run's, on this machine (other processes running at the same time slow them too)")
    return results


if __name__ == "__main__":
    run_script(main, __doc__, quick="a tiny run (small nets, few steps)")
