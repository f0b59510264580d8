"""Why fastgan's DCGAN nets meet their dense layers at 4 x 4 (issue 18): the conv G on 28 x 28 MNIST padded to 32 x 32,
trained in one plain-torch GAN loop (eager twins, no trainer, no fastgan kernel), in two geometries:

    g4  fastgan.nn.DCGANGenerator as it is: fc to 4 base x 4 x 4, three 5x5 stride-2 transposed convs (DCGAN's)
    g2  the stack fastgan had before: fc to 8 base x 2 x 2, four transposed convs (the 64 x 64 nets' depth at 32 x 32)

both against fastgan.nn.DCGANDiscriminator (three convs to 4 x 4, linear logit), batch norm in both as in DCGAN,
Adam 2e-4 (0.5, 0.999), the non-saturating loss, z ~ U(-1, 1)^50, batch 128, seed 0, a constant learning rate.
Prints, every 50 steps, D's loss and G's spread (the mean over pixels of the standard deviation over 256 samples;
the data's is 0.39), then the classifier Frechet distance of 2000 samples to the test split (train vs test: 3.0).

    python -m bench.dcgan_depth --arms g4,g2 --steps 300      # ~1 min per arm at one thread on the 2-core VM
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

Z_DIM, BASE, BATCH = 50, 32, 128


class TwoByTwoGenerator(nn.Module):
    """The former geometry at S = 32: fc (no bias) -> BatchNorm2d -> ReLU on 8 base x 2 x 2, then four 5x5 stride-2
    transposed convs (ConvAct: batch norm + ReLU, the last with its bias and tanh); DCGAN's initialisation."""

    def __init__(self, z_dim: int, base: int):
        from fastgan.nn.layers import ConvAct

        super().__init__()
        self.fc = nn.Linear(z_dim, 8 * base * 4, bias=False)
        nn.init.normal_(self.fc.weight, 0.0, 0.02)
        self.bn0 = nn.BatchNorm2d(8 * base)
        nn.init.normal_(self.bn0.weight, 1.0, 0.02)
        widths = (8 * base, 4 * base, 2 * base, base, 1)
        self.deconvs = nn.Sequential(*(
            ConvAct(widths[i], widths[i + 1], transposed=True, batch_norm=i < 3, act="tanh" if i == 3 else "relu",
                    eager=True) for i in range(4)))

    def forward(self, z):
        return self.deconvs(F.relu(self.bn0(self.fc(z).unflatten(1, (-1, 2, 2)))))


def train_arm(arm: str, steps: int, seed: int = 0) -> dict:
    from fastgan.data import load
    from fastgan.metrics.classifier import get_classifier
    from fastgan.metrics.scores import frechet_distance
    from fastgan.nn import DCGANDiscriminator, DCGANGenerator
    from fastgan.nn.dcgan import crop_images, pad_images

    torch.manual_seed(seed)
    split = load("mnist5k")
    x_all = torch.as_tensor(split.train_x, dtype=torch.float32)
    if arm == "g4":
        G = DCGANGenerator(Z_DIM, 1, 32, BASE, batch_norm=True, eager=True)
    elif arm == "g2":
        G = TwoByTwoGenerator(Z_DIM, BASE)
    else:
        raise ValueError(f"arm: expected 'g4' or 'g2', got {arm!r}")
    D = DCGANDiscriminator(1, 32, BASE, batch_norm=True, eager=True)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)

    def noise(n):
        return torch.rand(n, Z_DIM, generator=gen) * 2 - 1

    t0, log = time.perf_counter(), []
    for step in range(steps):
        x = pad_images(x_all[torch.randint(len(x_all), (BATCH,), generator=gen)], split.image_shape, 32)
        fake = G(noise(BATCH))
        loss_d = F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if step % 50 == 0 or step == steps - 1:
            with torch.no_grad():
                spread = G(noise(256)).std(0).mean().item()
            log.append((step, loss_d.item(), spread))
            print(f"{arm} step {step}: loss_d {loss_d.item():.3f} spread {spread:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    G.eval()
    with torch.no_grad():
        rows = crop_images(G(noise(2000)), split.image_shape)
        clf = get_classifier(split.name, split.train_x, split.train_y)
        fd = frechet_distance(clf.features(rows).numpy(),
                              clf.features(torch.as_tensor(split.test_x, dtype=torch.float32)).numpy())
    return {"arm": arm, "steps": steps, "fd": fd, "spread": log[-1][2], "log": log}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arms", default="g4,g2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = [train_arm(a, args.steps, args.seed) for a in args.arms.split(",")]
    print("\n| G | steps | FD | G's spread at the end |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['steps']} | {r['fd']:.1f} | {r['spread']:.3f} |")


if __name__ == "__main__":
    main()
