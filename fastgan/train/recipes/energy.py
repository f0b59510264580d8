"""The energy-based GANs, whose discriminator is an autoencoder D(x) = dec(enc(x)) and whose "energy" is how badly
D reconstructs its input: ebgan (Zhao, Mathieu, LeCun 2017) and began (Berthelot, Schumm, Metz 2017).

    ebgan   energy e(v) = mean squared reconstruction error of each sample (N,);
            D: mean e(x) + mean max(0, m - e(G(z)))               (margin m, cfg.extra['margin'], MARGIN)
            G: mean e(G(z)) + lambda_PT * PT(enc(G(z)))            (pull-away term on the codes, 'pt_weight')
    began   L(v) = mean |v - D(v)| over the batch (the l1 loss);
            D: L(x) - k_t L(G(z)),  G: L(G(z)),
            k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)   ('gamma' in (0, 1], 'lambda_k')
            M_global = L(x) + |gamma L(x) - L(G(z))|, logged with k_t (metrics.jsonl, curves.png, m_global.png)

Both build D's halves with the recipe's factories (enc = self.encoder to a code of z_dim units, dec =
self.generator from the code, both with linear outputs), so whatever architecture the factories build (MLP, or the
conv nets of --arch dcgan) is the autoencoder's too. Their representation for the 1NN protocol is D's
code enc(x); reconstruct(x) is D's reconstruction (reconstructions.png).

BEGAN's k_t is training state: a 0-d buffer of D ('k_t'), so it is saved and restored with D's state_dict and
updated in place on the device (no host sync). Under torch.distributed the update reads L(x) and L(G(z)) averaged
over the ranks (one all_reduce), so every rank holds the same k_t.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ... import metrics as ev
from ..distributed import all_reduce_mean_
from .base import Recipe
from .options import number

__all__ = ["AutoEncoderD", "BEGAN", "EBGAN", "began_k_update", "pull_away_term"]

MARGIN = 0.1  # EBGAN's margin m for data in [-1, 1] with the per-pixel mean squared energy (docs/defaults.md)
PT_WEIGHT = 0.1  # lambda_PT, the paper's
GAMMA = 0.5  # BEGAN's diversity ratio gamma = E L(G(z)) / E L(x), the paper's middle value
LAMBDA_K = 1e-3  # BEGAN's proportional gain on k_t, the paper's


class AutoEncoderD(nn.Module):
    """D(x) = dec(enc(x)): forward returns (reconstruction, code). k_t=True adds BEGAN's control variable, a 0-d
    buffer starting at 0."""

    def __init__(self, enc: nn.Module, dec: nn.Module, k_t: bool = False):
        super().__init__()
        self.enc, self.dec = enc, dec
        if k_t:
            self.register_buffer("k_t", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.enc(x)
        return self.dec(code), code


def pull_away_term(s: torch.Tensor) -> torch.Tensor:
    """EBGAN's pull-away term of a batch of codes s (N, c): the mean squared cosine similarity of distinct pairs,
    1 / (N (N - 1)) sum_{i != j} cos^2(s_i, s_j), in fp32 at least (0 for N < 2)."""
    n = s.shape[0]
    if n < 2:
        return s.float().sum() * 0
    u = F.normalize(s.float() if s.dtype in (torch.float16, torch.bfloat16) else s, dim=1)
    cos2 = (u @ u.T).square()
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


def began_k_update(k: torch.Tensor, l_real: torch.Tensor, l_fake: torch.Tensor, gamma: float,
                   lambda_k: float) -> torch.Tensor:
    """k <- clip(k + lambda_k (gamma l_real - l_fake), 0, 1) in place (a tensor: no host sync); returns k."""
    with torch.no_grad():
        return k.add_(lambda_k * (gamma * l_real - l_fake).to(k.dtype)).clamp_(0.0, 1.0)



class _EnergyGAN(Recipe):
    """An autoencoder D and a generator G; D's steps then G's (update='alternating', n_critic D steps), or both
    from one forward (update='simultaneous'). Subclasses give the losses (d_loss, g_loss) and may act on D's
    statistics after each D step (after_d).

    Batch norm: the run's (cfg.batch_norm; on for images), in G and in both halves of D. Without it the MLP G
    collapsed to one image on digits (2000 steps, margin 1: ebgan FD 129, began 589); batch statistics in D make a
    collapsed fake batch hard to reconstruct (ebgan FD 11, began 55; docs/defaults.md)."""

    groups = {"D": ("D",), "G": ("G",)}
    k_t = False

    decoder_out = "linear"  # D's reconstruction: unbounded (a tanh saturates on G's +-1 pixels: no gradient there)

    def __init__(self, cfg, split, device):
        super().__init__(cfg, split, device)
        for spec in self.options:  # the class's numbers, each as self.<name>
            setattr(self, spec.name, self.opt(spec.name))

    def build(self, x_dim, z_dim):
        enc = self.encoder(x_dim, z_dim, out_act="linear")
        dec = self.generator(z_dim, x_dim, out_act=self.decoder_out)
        return {"G": self.generator(z_dim, x_dim), "D": AutoEncoderD(enc, dec, self.k_t)}

    def d_loss(self, ctx, x, gz, real, fake) -> tuple[torch.Tensor, dict]:
        """D's loss from the batches x, gz and D's outputs on them ((reconstruction, code) each); and the
        statistics to log."""
        raise NotImplementedError

    def g_loss(self, gz, fake) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_d(self, ctx, stats: dict) -> dict:
        return {}

    def iteration(self, ctx, next_batch, gen):
        G, D = self.nets["G"], self.nets["D"]
        if self.cfg.update == "simultaneous":
            x = next_batch()
            gz = G(self.latent(ctx, x.shape[0], gen))
            fake = D(gz)
            d_loss, stats = self.d_loss(ctx, x, gz, D(x), fake)
            g_loss, g_stats = self.g_loss(gz, fake)
            g_d = self.grads(ctx, d_loss, self.params("D"), retain=True)
            # every gradient before any update: they share D's graph
            self.apply(ctx, "G", self.through_d(ctx, g_loss, (gz,), self.params("G")))
            self.apply(ctx, "D", g_d)
            stats.update(self.after_d(ctx, stats))
        else:
            for _ in range(self.cfg.n_critic):
                x = next_batch()
                with torch.no_grad():
                    gz = G(self.latent(ctx, x.shape[0], gen))
                d_loss, stats = self.d_loss(ctx, x, gz, D(x), D(gz))
                self.apply(ctx, "D", self.grads(ctx, d_loss, self.params("D")))
                stats.update(self.after_d(ctx, stats))
            gz = G(self.latent(ctx, x.shape[0], gen))
            g_loss, g_stats = self.g_loss(gz, D(gz))
            self.apply(ctx, "G", self.through_d(ctx, g_loss, (gz,), self.params("G")))
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), **stats, **g_stats}

    # ---- what evaluation reads ----
    @torch.no_grad()
    def features(self, x):
        """D's code enc(x)."""
        return self.nets["D"].enc(x)

    @torch.no_grad()
    def reconstruct(self, x):
        """D's reconstruction dec(enc(x))."""
        return self.nets["D"](x)[0]


class EBGAN(_EnergyGAN):
    """EBGAN with the pull-away term (the paper's EBGAN-PT). Energy: the mean squared error per sample (data in
    [-1, 1]: between 0 and 4 for reconstructions in range); the margin m (cfg.extra['margin'], default MARGIN = 0.1,
    a few times a trained D's energy on real images, ~0.03) is where D stops raising a fake's energy. Measured:
    m = 1 let D hold fakes far above the real energy and G learned slowly (mnist5k FD 433 vs 26 at m = 0.1;
    docs/defaults.md). lambda_PT: cfg.extra['pt_weight'] (0.1)."""

    name = "ebgan"
    options = (number("margin", MARGIN, "the energy margin m up to which D raises a fake's energy",
                      (lambda v: v > 0, "a positive number (the energy margin m)"), flag="--margin"),
               number("pt_weight", PT_WEIGHT, "the pull-away term's weight lambda_PT",
                      (lambda v: v >= 0, "a number >= 0 (the pull-away term's weight)")))

    @staticmethod
    def energy(v, rec):
        """The per-sample mean squared reconstruction error (N,), in fp32 under autocast."""
        return (rec.float() - v.float()).square().mean(1)

    def d_loss(self, ctx, x, gz, real, fake):
        e_real, e_fake = self.energy(x, real[0]).mean(), self.energy(gz, fake[0])
        loss = e_real + F.relu(self.margin - e_fake).mean()
        return loss, {"energy_real": e_real.detach(), "energy_fake": e_fake.mean().detach()}

    def g_loss(self, gz, fake):
        pt = pull_away_term(fake[1])
        return self.energy(gz, fake[0]).mean() + self.pt_weight * pt, {"pull_away": pt.detach()}


class BEGAN(_EnergyGAN):
    """BEGAN: the l1 autoencoder loss L, the proportional control of k_t (gamma: cfg.extra['gamma'], default 0.5;
    lambda_k: cfg.extra['lambda_k'], 1e-3), the convergence measure M_global. Logged each interval (averaged over
    it): l_real = L(x), l_fake = L(G(z)) of D's steps, k_t after the update, m_global. evaluation() adds M_global's
    first and last logged values and draws m_global.png (M_global and k_t against the step) from the run's
    metrics.jsonl."""

    name = "began"
    options = (number("gamma", GAMMA, "the diversity ratio gamma that k_t steers L(G(z)) / L(x) to",
                      (lambda v: 0 < v <= 1, "a number in (0, 1] (the diversity ratio gamma)"), flag="--gamma"),
               number("lambda_k", LAMBDA_K, "k_t's proportional gain",
                      (lambda v: v >= 0, "a number >= 0 (k_t's gain)")))
    k_t = True

    @staticmethod
    def l1(v, rec):
        """L(v) = mean |v - D(v)| over the batch and the pixels (fp32 under autocast)."""
        return (rec.float() - v.float()).abs().mean()

    def d_loss(self, ctx, x, gz, real, fake):
        l_real, l_fake = self.l1(x, real[0]), self.l1(gz, fake[0])
        k = self.nets["D"].k_t
        return l_real - k.to(l_fake.dtype) * l_fake, {"l_real": l_real.detach(), "l_fake": l_fake.detach()}

    def g_loss(self, gz, fake):
        return self.l1(gz, fake[0]), {}

    def after_d(self, ctx, stats):
        """k_t's update from this D step's L(x), L(G(z)) (their means over the ranks under torch.distributed);
        M_global from the same values."""
        both = torch.stack([stats["l_real"], stats["l_fake"]])
        if ctx.shard[1] > 1:
            all_reduce_mean_([both])
        l_real, l_fake = both.unbind()
        k = began_k_update(self.nets["D"].k_t, l_real, l_fake, self.gamma, self.lambda_k)
        return {"k_t": k.detach().clone(), "m_global": l_real + (self.gamma * l_real - l_fake).abs()}

    metric_labels = {"m_global_first": ("BEGAN M_global, first logged", ""),
                     "m_global_last": ("  last logged (m_global.png)", "")}

    def evaluation(self, split, features, out):
        """M_global's first and last logged values, and m_global.png, from `out`/metrics.jsonl (when there is
        one)."""
        path = None if out is None else Path(out) / "metrics.jsonl"
        if path is None or not path.is_file():
            return {}
        lines = [{k: line[k] for k in ("step", "m_global", "k_t") if k in line}  # M_global's panel first
                 for line in ev.read_metrics(path) if "m_global" in line]
        if not lines:
            return {}
        ev.save_curves({self.name: lines}, Path(out) / "m_global.png",
                       title=f"BEGAN convergence measure M_global and k_t (gamma {self.gamma:g})")
        return {"m_global_first": lines[0]["m_global"], "m_global_last": lines[-1]["m_global"],
                "k_t_last": lines[-1]["k_t"]}
