"""infogan: a GAN whose generator input carries codes that a head Q on D's trunk must recover (Chen et al. 2016).

    G input   [z | one-hot c_cat for each categorical code | c_cont]     z ~ U(-1, 1)^z_dim, c_cat uniform over its
                                                                         values, c_cont ~ U(-1, 1)^n_cont
    Q head    h = D.features(x) -> LinearAct(h, 128) [parameter-free BN] lrelu 0.2 -> LinearAct(128, codes):
              the logits of each categorical code, then the means of the continuous codes
    L_I       sum over categorical codes of CE(Q_cat(G(z, c)), c_cat)
              + cont_weight * Gaussian NLL(c_cont; mean Q_cont, sigma 1)      (sigma fixed, as below)
    D step    D's cross-entropy + info_weight * L_I on its fakes, for D and Q together (one optimiser, group 'D')
    G step    G's loss (ns / minimax) + info_weight * L_I, through the updated D and Q (group 'G'), at 5x the
              learning rate of D's step (g_lr_scale)

Choices, and why:
- D's trunk is trained by L_I as well as by the GAN loss, and Q's head is updated with D (one optimiser for both): what
  the paper's code does (its discriminator loss and generator loss both subtract the mutual-information estimate);
  every parameter is updated by exactly one optimiser per iteration.
- Continuous codes: a Gaussian with a fixed standard deviation of 1 (openai/InfoGAN's MNIST run, fix_std), so their
  NLL is 0.5 (c - mu)^2 + 0.5 log(2 pi) per code; info_weight 1 and cont_weight 1 as in that run (the paper's lambda
  = 1 for discrete codes; it suggests a smaller one for continuous codes, which cont_weight sets). A learned variance
  is not offered.
- The constant 0.5 log(2 pi) is kept in L_I, so H(c) - L_I is the variational lower bound on I(c; G(z, c)) that the
  paper maximises (H(c) = sum log k for the categorical codes + n_cont log 2 for U(-1, 1)); the gradients do not see
  it.
- G learns g_lr_scale = 5 times as fast as D and Q (the paper's code: Adam 1e-3 for G, 2e-4 for D); G's optimiser
  runs at that factor times the schedule's learning rate (Recipe.lr_scales). On mnist5k it lifted the
  categorical code's accuracy by 14-17 points on two seeds (docs/models/infogan.md).
- The logits of D come from the same trunk pass as Q's input: logit = D.out(D.features(x)) (checked at build time
  against D(x)), so a fake batch goes through D's trunk once for both heads.

Codes (cfg.extra['codes'], --codes): comma-separated `cat:K` (a categorical code of K >= 2 values; several allowed)
and at most one `cont:N` (N >= 1 continuous codes), e.g. the default 'cat:10,cont:2' (the paper's MNIST setting).

Data: images (arch 'mlp', or 'dcgan': Q then reads the conv trunk's flattened features) and the 2-D mixtures (the
mixture components are the labels the categorical code is scored against; no codes.png there).

Evaluation (`evaluation`): 'infogan_cat_accuracy', the accuracy of Q's first categorical code on the test split
against the labels under the best one-to-one pairing of code values with labels (fastgan.metrics.matched_accuracy);
'infogan_mi_bound', H(c) - L_I on N_MI prior draws (nats; at most H(c)); for images, codes.png: a block per
categorical code (row v: the code set to v, columns: ten fixed noise vectors), then a block per continuous code (row
r: noise vector r and the first categorical code set to r, columns: the code swept from -2 to 2), grey rows between
blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ... import losses
from ... import metrics as ev
from ...nn import LinearAct, make_act
from .discriminator import MNIST_R1_DEFAULTS, R1_OPTIONS, PenalisedD
from .options import POSITIVE, custom, number

__all__ = ["CODES", "Codes", "InfoGAN", "QHead", "parse_codes"]

CODES = "cat:10,cont:2"  # the default codes: the paper's MNIST setting
Q_WIDTH = 128  # Q's hidden layer (the paper's MNIST Q: FC 128 - BN - lrelu - FC)
SWEEP = (-2.0, 2.0)  # the range of a continuous code in codes.png (trained on [-1, 1]: the sweep extrapolates)
N_COLS = 10  # columns of codes.png
# G's learning rate over D's and Q's (the trainer's schedule): 5, the paper's code's 1e-3 / 2e-4; measured on mnist5k
# (docs/models/infogan.md): categorical-code accuracy 74.1 / 65.4 % (seeds 0 / 1) vs 60.3 / 47.9 % at 1
G_LR_SCALE = 5.0
N_MI = 2000  # prior draws for the evaluation's mutual-information bound
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Codes:
    """The latent codes: the sizes of the categorical codes and the number of continuous ones."""

    cats: tuple[int, ...]
    n_cont: int

    @property
    def dim(self) -> int:
        """Columns of the codes in G's input (one-hot blocks, then the continuous codes): Q's output width too."""
        return sum(self.cats) + self.n_cont

    def entropy(self) -> float:
        """H(c) in nats: log K per categorical code, log 2 per U(-1, 1) code (differential entropy)."""
        return sum(math.log(k) for k in self.cats) + self.n_cont * math.log(2.0)


def parse_codes(spec) -> Codes:
    """Codes from their text form 'cat:K,...,cont:N' (see the module docstring); a ValueError names what is wrong."""
    def bad(why):
        return ValueError(f"extra['codes'] (--codes): expected comma-separated 'cat:K' (K >= 2 values) and at most one "
                          f"'cont:N' (N >= 1), e.g. {CODES!r}; got {spec!r}: {why}")

    if not isinstance(spec, str):
        raise bad(f"not a string but {type(spec).__name__}")
    cats, n_cont = [], None
    for item in spec.split(","):
        kind, sep, count = (s.strip() for s in item.partition(":"))
        if not sep or kind not in ("cat", "cont"):
            raise bad(f"{item.strip()!r} is not 'cat:K' or 'cont:N'")
        if not count.isdigit():
            raise bad(f"the count in {item.strip()!r} is not a whole number")
        n = int(count)
        if kind == "cat":
            if n < 2:
                raise bad(f"a categorical code needs at least 2 values, got {n}")
            cats.append(n)
        else:
            if n_cont is not None:
                raise bad("'cont' given twice (one 'cont:N' holds all N continuous codes)")
            if n < 1:
                raise bad("'cont:0' (leave 'cont' out for no continuous codes)")
            n_cont = n
    return Codes(tuple(cats), n_cont or 0)



class QHead(nn.Module):
    """Q's own layers on D's last hidden layer: h (N, in_dim) -> width units, lrelu 0.2 (with batch_norm: no bias,
    then a parameter-free BatchNorm1d, as in the paper's nets) -> out_dim linear outputs. Fused (fastgan ops) or the
    eager twin, with the same parameter names."""

    def __init__(self, in_dim: int, out_dim: int, width: int = Q_WIDTH, batch_norm: bool = True,
                 eager: bool = False):
        super().__init__()
        if batch_norm:
            self.fc = LinearAct(in_dim, width, bias=False, eager=eager)
            self.bn = nn.BatchNorm1d(width, affine=False)
            self.act = make_act("lrelu", 0.2, 1.0, eager)
        else:  # bias and activation fused into the layer
            self.fc = LinearAct(in_dim, width, act="lrelu", alpha=0.2, gain=1.0, eager=eager)
            self.bn = self.act = nn.Identity()
        self.out = LinearAct(width, out_dim, eager=eager)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.bn(self.fc(h))))


def _trunk_width(D: nn.Module, x_dim: int) -> int:
    """The width of D.features on a dry pass (eval mode: batch-norm statistics untouched), after checking that D's
    logit is D.out(D.features(x)), the form the recipe computes both heads from."""
    was = D.training
    D.train(False)
    try:
        with torch.no_grad():
            x = torch.linspace(-1, 1, 2 * x_dim).reshape(2, x_dim)
            h = D.features(x)
            ok = hasattr(D, "out") and torch.allclose(D.out(h).reshape(-1), D(x).reshape(-1))
    finally:
        D.train(was)
    if not ok:
        raise TypeError(f"infogan: the discriminator ({type(D).__name__}) must compute its logit as "
                        "D.out(D.features(x)) (Q shares that trunk)")
    return h.shape[1]


class InfoGAN(PenalisedD):
    """Chen et al. 2016 on fastgan's nets (module docstring). Options: codes (--codes), info_weight (lambda on L_I,
    default 1), cont_weight (the continuous codes' weight inside L_I, default 1), g_lr_scale (G's learning rate
    over D's, default 5), r1 (R1 on D's real inputs; gamma 1 on mnist5k, as for gan) and r1_every (lazy R1)."""

    name = "infogan"
    groups = {"D": ("D", "Q"), "G": ("G",)}
    options = (custom("codes", CODES, "the latent codes, comma-separated cat:K (a K-valued categorical code) and one "
                      "cont:N (N continuous U(-1, 1) codes)", lambda v, where: parse_codes(v), flag="--codes",
                      metavar="SPEC"),
               number("info_weight", 1.0, "lambda, the weight of L_I"),
               number("cont_weight", 1.0, "the continuous codes' weight inside L_I"),
               number("g_lr_scale", G_LR_SCALE, "G's learning rate over D's", POSITIVE), *R1_OPTIONS)
    data_defaults = MNIST_R1_DEFAULTS  # R1 (gamma 1) on D's real images on mnist5k, as for gan (docs/defaults.md)

    def build(self, x_dim, z_dim):
        self.codes = self.opt("codes")
        self.info_weight, self.cont_weight = self.opt("info_weight"), self.opt("cont_weight")
        self.g_lr_scale = self.opt("g_lr_scale")
        G = self.generator(z_dim + self.codes.dim, x_dim)
        D = self.discriminator(x_dim)
        Q = QHead(_trunk_width(D, x_dim), self.codes.dim, batch_norm=self.kw["batch_norm"], eager=self.kw["eager"])
        return {"G": G, "D": D, "Q": Q}

    # ---- the latent: noise and codes in one draw ----
    def _draw(self, n: int, gen: torch.Generator, shard: tuple[int, int]) -> torch.Tensor:
        """G's input (n, z_dim + codes.dim) from one U(0, 1) draw of z_dim + len(cats) + n_cont columns per row
        (this rank's slice of the global draw under torch.distributed, like Recipe.latent)."""
        zd, cats = self.cfg.z_dim, self.codes.cats
        u = self._uniform(n, zd + len(cats) + self.codes.n_cont, gen, shard)
        parts = [u[:, :zd] * 2 - 1]
        for i, k in enumerate(cats):
            idx = (u[:, zd + i] * k).long().clamp_(max=k - 1)
            parts.append(F.one_hot(idx, k).to(u.dtype))
        parts.append(u[:, zd + len(cats):] * 2 - 1)
        return torch.cat(parts, 1)

    def latent(self, ctx, n, gen):
        return self._draw(n, gen, ctx.shard)

    def prior(self, n, gen):
        return self._draw(n, gen, (0, 1))

    def lr_scales(self):
        return {"G": self.g_lr_scale}  # G's step at g_lr_scale x the scheduled learning rate

    # ---- D's two heads and the information term ----
    def judge(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D's logits (N,), Q's outputs (N, codes.dim)) from one pass through D's trunk."""
        h = self.nets["D"].features(x)
        return self.nets["D"].out(h).squeeze(1), self.nets["Q"](h)

    def info_loss(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """L_I (mean over the batch, fp32 or wider) of Q's outputs q against the codes in G's input c."""
        q = q.float() if q.dtype in (torch.float16, torch.bfloat16) else q
        codes = c[:, self.cfg.z_dim:].to(q.dtype)
        loss, at = q.new_zeros(()), 0
        for k in self.codes.cats:
            loss = loss + F.cross_entropy(q[:, at:at + k], codes[:, at:at + k].argmax(1))
            at += k
        if self.codes.n_cont:
            nll = 0.5 * (codes[:, at:] - q[:, at:]).square().sum(1).mean() + 0.5 * self.codes.n_cont * _LOG_2PI
            loss = loss + self.cont_weight * nll
        return loss

    def _cat_hits(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The fraction of rows whose first categorical code Q recovers (a detached training diagnostic)."""
        k, zd = self.codes.cats[0], self.cfg.z_dim
        return (q[:, :k].argmax(1) == c[:, zd:zd + k].argmax(1)).to(torch.float32).mean().detach()

    def iteration(self, ctx, next_batch, gen):
        G, kind, lam = self.nets["G"], self.cfg.g_loss, self.info_weight
        if self.cfg.update == "simultaneous":
            x = next_batch()
            c = self.latent(ctx, x.shape[0], gen)
            gz = G(c)
            l_real, r1 = self.real_logits(ctx, (x,))
            l_fake, q = self.judge(gz)
            info = self.info_loss(q, c)
            d_loss, g_loss = losses.gan_d_loss(l_real, l_fake), losses.gan_g_loss(l_fake, kind)
            g_d = self.grads(ctx, self.plus(d_loss, r1) + lam * info, self.params("D"), retain=True)
            # every gradient before any update: they share D's and Q's graph
            self.apply(ctx, "G", self.through_d(ctx, g_loss + lam * info, (gz,), self.params("G")))
            self.apply(ctx, "D", g_d)
        else:
            for i in range(self.cfg.n_critic):
                x = next_batch()
                c = self.latent(ctx, x.shape[0], gen)
                with torch.no_grad():
                    gz = G(c)
                l_real, r1 = self.real_logits(ctx, (x,), i)
                l_fake, q = self.judge(gz)
                d_loss = losses.gan_d_loss(l_real, l_fake)
                d_total = self.plus(d_loss, r1) + lam * self.info_loss(q, c)
                self.apply(ctx, "D", self.grads(ctx, d_total, self.params("D")))
            c = self.latent(ctx, x.shape[0], gen)
            gz = G(c)
            l_gen, q = self.judge(gz)
            info = self.info_loss(q, c)
            g_loss = losses.gan_g_loss(l_gen, kind)
            self.apply(ctx, "G", self.through_d(ctx, g_loss + lam * info, (gz,), self.params("G")))
        out = {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), "loss_info": info.detach(),
               **losses.d_accuracy(l_real, l_fake)}
        if self.codes.cats:
            out["q_cat_accuracy"] = self._cat_hits(q, c)
        return out

    # ---- evaluation ----
    @torch.no_grad()
    def features(self, x):
        return self.nets["D"].features(x)

    @torch.no_grad()
    def predict_code(self, x: torch.Tensor) -> torch.Tensor:
        """Q's most likely value of the first categorical code for data x (N,)."""
        return self.judge(x)[1][:, :self.codes.cats[0]].argmax(1)

    metric_labels = {"infogan_cat_accuracy": ("InfoGAN categorical code vs labels (best one-to-one pairing)", "%")}

    def evaluation(self, split, features, out) -> dict:
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 3)
        c = self.prior(N_MI, gen)
        q = features(lambda t: self.judge(t)[1], features(self.nets["G"], c))
        res = {"infogan_mi_bound": self.codes.entropy() - float(self.info_loss(q, c.cpu()))}
        if self.codes.cats and split.test_y is not None:
            res["infogan_cat_accuracy"] = ev.matched_accuracy(features(self.predict_code, split.test_x), split.test_y)
        if out is not None and split.image_shape is not None:
            gap = torch.zeros(N_COLS, split.dim)  # a row of mid-grey tiles between blocks
            blocks = [features(self.nets["G"], b) for b in self.code_sweeps(gen)]
            tiles = torch.cat([t for b in blocks for t in (b, gap)][:-1])
            ev.save_image_grid(tiles, split.image_shape, out / "codes.png", nrow=N_COLS,
                               scale=2 if split.image_shape[-1] >= 28 else 4)
        return res

    def code_sweeps(self, gen: torch.Generator) -> list[torch.Tensor]:
        """G's inputs for codes.png (module docstring), one tensor per block, N_COLS inputs per row."""
        zd, cats, n_cont = self.cfg.z_dim, self.codes.cats, self.codes.n_cont
        z = self._uniform(N_COLS, zd, gen, (0, 1)) * 2 - 1
        starts = [sum(cats[:i]) for i in range(len(cats))]
        base = torch.zeros(N_COLS, self.codes.dim, dtype=z.dtype, device=z.device)
        base[:, starts] = 1.0  # every categorical code at value 0 unless set

        def with_cat(codes, i, v):
            codes[:, starts[i]:starts[i] + cats[i]] = 0.0
            codes[:, starts[i] + v] = 1.0
            return codes

        blocks = [torch.cat([torch.cat([z, with_cat(base.clone(), i, v)], 1) for v in range(k)])
                  for i, k in enumerate(cats)]
        sweep = torch.linspace(*SWEEP, N_COLS, dtype=z.dtype, device=z.device)
        for j in range(n_cont):
            rows = []
            for r in range(cats[0] if cats else N_COLS):  # row r: noise vector r, the first categorical code at r
                codes = with_cat(base.clone(), 0, r) if cats else base.clone()
                codes[:, sum(cats) + j] = sweep
                rows.append(torch.cat([z[r % N_COLS].expand(N_COLS, -1), codes], 1))
            blocks.append(torch.cat(rows))
        return blocks
