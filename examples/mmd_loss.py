"""Replace your MMD loss: a hand-written multi-bandwidth Gaussian MMD on torch.cdist (as found in GMMN / MMD-GAN
code) against `fastgan.mmd2`, on a GMMN-style step: a small MLP generator's samples against the bundled digits (8 x 8,
64 features).

    python examples/mmd_loss.py              # batches of 1024 and 4096 (under a minute)
    python examples/mmd_loss.py --quick      # one batch of 256 (the smoke test's)
    python examples/mmd_loss.py --threads 0  # torch's threads (a thread per core) instead of one

The hand-written loss (below) forms the three distance matrices n x n, m x m, n x m, and autograd keeps a kernel
matrix per bandwidth for the backward pass; fastgan.mmd2 walks the pairs in tiles and never forms them (memory
O((n + m) d)). The script checks that both give the same loss and the same generator gradients, then prints the time
and the peak memory of one loss + backward of each, measured in this run (fastgan.benchmarking.peak_memory: the
CPU allocator's events from torch.profiler, tensor memory only, above what was allocated before the call).

Bandwidths. Code of this kind writes the Gaussian kernel as exp(-gamma |a - b|^2) with a list of gammas, or as
exp(-|a - b|^2 / (2 sigma^2)) with a list of sigmas. fastgan's gaussian kernel is exp(-r^2 / (2 s^2))
(fastgan/ops/kernel_sum.py), so
    sigma form:  bandwidths = sigmas
    gamma form:  bandwidths = [1 / sqrt(2 gamma) for gamma in gammas]
    (a kernel written exp(-r^2 / s^2), without the 2: bandwidths = [s / sqrt(2) for s in ss]).
Both losses here are the biased estimate (the V-statistic: every pair, i = j included: `.mean()` of each kernel
matrix), which is mmd2's default estimator="biased"; for the unbiased one (no i = j pairs) pass estimator="unbiased".
"""
from __future__ import annotations

import math

import torch
from torch import nn

import fastgan
from byo_models import relative_difference, run_script, side_by_side
from fastgan.benchmarking import peak_memory
from fastgan.data import digits

# the gammas of a GMMN-style loss, from sigmas 2 .. 80 (Li et al. 2015's list for 28 x 28 MNIST; digits' 8 x 8 in
# [-1, 1] have distances of the same order, ~5-15)
GAMMAS = tuple(1.0 / (2.0 * s * s) for s in (2.0, 5.0, 10.0, 20.0, 40.0, 80.0))
FULL = dict(sizes=(1024, 4096), reps=3)
SMALL = dict(sizes=(256,), reps=1)


def hand_written_mmd(x: torch.Tensor, y: torch.Tensor, gammas=GAMMAS) -> torch.Tensor:
    """sum over gammas of the biased MMD^2 with the kernel exp(-gamma |a - b|^2), as usually written."""
    d_xx = torch.cdist(x, x) ** 2
    d_yy = torch.cdist(y, y) ** 2
    d_xy = torch.cdist(x, y) ** 2
    loss = x.new_zeros(())
    for g in gammas:
        loss = loss + torch.exp(-g * d_xx).mean() + torch.exp(-g * d_yy).mean() - 2 * torch.exp(-g * d_xy).mean()
    return loss


def fastgan_mmd(x: torch.Tensor, y: torch.Tensor, gammas=GAMMAS) -> torch.Tensor:
    bandwidths = [1.0 / math.sqrt(2.0 * g) for g in gammas]  # exp(-g r^2) = exp(-r^2 / (2 s^2)), s = 1 / sqrt(2 g)
    return fastgan.mmd2(x, y, kernel="gaussian", bandwidths=bandwidths)


def run_size(n: int, G: nn.Module, data: torch.Tensor, reps: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G[0].in_features, generator=gen)
    y = data[torch.randint(len(data), (n,), generator=gen)]  # a batch of digits (drawn with replacement)
    params = list(G.parameters())

    def step(loss_fn):
        loss = loss_fn(G(z), y)
        return loss.detach(), torch.autograd.grad(loss, params)

    (v_hand, g_hand), (v_fast, g_fast) = step(hand_written_mmd), step(fastgan_mmd)
    grad_diff = relative_difference(g_hand, g_fast)
    times = side_by_side({"hand": lambda: step(hand_written_mmd), "fastgan": lambda: step(fastgan_mmd)}, reps=reps)
    peaks = {"hand": peak_memory(lambda: step(hand_written_mmd), "cpu"),
             "fastgan": peak_memory(lambda: step(fastgan_mmd), "cpu")}
    print(f"  n = m = {n:5d}: MMD^2 hand-written {v_hand.item():.6f}, fastgan {v_fast.item():.6f} "
          f"(relative difference {relative_difference([v_hand], [v_fast]):.1e}); generator gradients: largest "
          f"relative difference {grad_diff:.1e}")
    print(f"                loss + backward: hand-written {times['hand'] * 1e3:8.1f} ms, "
          f"peak {peaks['hand'] / 2**20:7.1f} MiB | fastgan {times['fastgan'] * 1e3:8.1f} ms, "
          f"peak {peaks['fastgan'] / 2**20:7.1f} MiB")
    return dict(n=n, hand=v_hand.item(), fastgan=v_fast.item(), grad_diff=grad_diff, times=times, peaks=peaks)


def main(small: bool = False, seed: int = 0) -> list:
    cfg = SMALL if small else FULL
    data = digits().train_x  # (1437, 64) in [-1, 1]
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, data.shape[1]), nn.Tanh())  # a GMMN generator
    print(f"hand-written cdist MMD vs fastgan.mmd2: {len(GAMMAS)} gaussian bandwidths "
          f"{', '.join(f'{1 / math.sqrt(2 * g):g}' for g in GAMMAS)} (gammas {', '.join(f'{g:.3g}' for g in GAMMAS)}), "
          f"biased estimate, d = {data.shape[1]}, {torch.get_num_threads()} torch threads")
    out = [run_size(n, G, data, cfg["reps"], seed) for n in cfg["sizes"]]
    print("times (median of each, alternating calls) and peaks are this run's, on this machine")
    return out


if __name__ == "__main__":
    run_script(main, __doc__, quick="one small batch")
