"""What a trained recipe is measured by (fastgan.metrics holds the metrics themselves):

- representation: 1NN classification accuracy on the test split, fitted on the training split, in the model's
  feature space (recipe.features: E(x), or D's last hidden layer for a GAN) and in E's last hidden layer (the BiGAN
  paper's Table-1 protocol: recipe.hidden_features);
- generation: fastgan.metrics.generation_metrics on N_SAMPLES samples G(z) with z from a generator seeded by `seed`
  (MMD^2 to the test split always; classifier Frechet distance and score for labelled data; mode coverage and
  high-quality fraction for the 2-D mixtures);
- what only the recipe measures (recipe.evaluation: e.g. a VAE's test ELBO), with its pictures;
- pictures under `out`: samples.png (a grid of images, or a scatter plot over the data for 2-D), and
  reconstructions.png (test images and G(E(x)) in alternating rows) for models with an encoder.

With `ema` (the run's fastgan.train.ema.EMA, cfg.ema > 0) G is its moving average throughout: samples, their metrics
and pictures, reconstructions and whatever the recipe's own evaluation reads from nets["G"]; E, D and the rest are
the trained networks.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import metrics as ev
from ..backend import use_backend

__all__ = ["METRIC_LABELS", "evaluate", "representation", "N_SAMPLES"]

N_SAMPLES = 2000
# what evaluate() reports for any recipe, in the order `fastgan train` prints it: key -> (label, unit); unit "%"
# prints a fraction as a percentage. A recipe's own metrics: Recipe.metric_labels.
METRIC_LABELS = {
    "1nn_accuracy": ("1NN test accuracy in the learned features", "%"),
    "1nn_accuracy_hidden": ("1NN test accuracy in E's last hidden layer (the BiGAN paper's Table 1)", "%"),
    "mmd2": ("MMD^2 to held-out data", ""),
    "fd": ("classifier Frechet distance (generated vs test)", ""),
    "fd_real": ("  (train vs test, the floor)", ""),
    "kid": ("classifier KID (generated vs test)", ""),
    "kid_std": ("  its std over subsets", ""),
    "precision": ("precision (generated inside the test manifold, k = 3)", "%"),
    "recall": ("recall (test inside the generated manifold, k = 3)", "%"),
    "classifier_score": ("classifier score", ""),
    "modes_covered": ("modes covered", "of n_modes"),
    "high_quality": ("high-quality samples", "%"),
}
# bookkeeping in a run's results, not metrics
RESULT_FIELDS = ("model", "data", "backend", "steps", "ema", "train_time_s", "steps_per_s", "samples_per_s",
                 "n_modes", "per_mode", "seed")
_CHUNK = 4096


def _chunked(fn, x: torch.Tensor, device) -> torch.Tensor:
    return torch.cat([fn(x[i:i + _CHUNK].to(device)).cpu() for i in range(0, x.shape[0], _CHUNK)])


def representation(recipe, split) -> dict:
    """1NN test accuracy (fitted on the training split) in the model's features, `1nn_accuracy` (recipe.features: E(x),
    or D's last hidden layer for a GAN), and in E's last hidden layer, `1nn_accuracy_hidden` (recipe.hidden_features,
    models with an encoder: the BiGAN paper's Table-1 protocol); {} for unlabelled data. The caller sets the mode; the
    networks run on the run's backend (recipe.backend), as its steps do."""
    if split.train_y is None:
        return {}
    dev, res = recipe.device, {}
    with use_backend(recipe.backend):
        for key, fn in (("1nn_accuracy", recipe.features), ("1nn_accuracy_hidden", recipe.hidden_features)):
            if fn(split.test_x[:2].to(dev)) is not None:
                res[key] = ev.one_nn_accuracy(_chunked(fn, split.train_x, dev), split.train_y,
                                              _chunked(fn, split.test_x, dev), split.test_y)
    return res


def evaluate(recipe, split, out=None, seed: int = 0, ema=None) -> dict:
    """Metrics of `recipe` (networks in eval mode while measured) on `split`; PNGs into `out` when given; `ema`: G's
    moving average, evaluated in G's place. The recipe's networks and its own metrics run on the run's backend
    (recipe.backend, as its steps do); the sample metrics (KID, FD, precision / recall) on the one in force outside."""
    if ema is not None:
        with ema.swapped_into(recipe.nets, "G"):
            return evaluate(recipe, split, out, seed)
    dev = recipe.device
    recipe.train(False)
    try:
        with use_backend(recipe.backend), torch.no_grad():
            res = representation(recipe, split)
            res.update(recipe.evaluation(split, lambda fn, x: _chunked(fn, x, dev), None if out is None else Path(out)))
            if "G" not in recipe.nets:
                return res
            gen = torch.Generator(device=dev).manual_seed(seed + 2)
            samples = _chunked(recipe.sample, recipe.prior(N_SAMPLES, gen), dev)
            images = out is not None and split.image_shape is not None
            rec = recipe.reconstruct(split.test_x[:128].to(dev)) if images else None
        classifier = None
        if split.train_y is not None and split.image_shape is not None:
            classifier = ev.get_classifier(split.name, split.train_x, split.train_y)
        res.update(ev.generation_metrics(samples, split, classifier))
        if out is not None:
            out = Path(out)
            if split.image_shape is not None:
                ev.save_image_grid(samples[:256], split.image_shape, out / "samples.png")
                if rec is not None:
                    x = split.test_x[:128]
                    pairs = torch.stack([x.reshape(8, 16, -1), rec.cpu().reshape(8, 16, -1)], 1).reshape(256, -1)
                    ev.save_image_grid(pairs, split.image_shape, out / "reconstructions.png")
            elif samples.shape[1] == 2:
                ev.save_scatter(samples, split.test_x, out / "samples.png", modes=split.modes)
        return res
    finally:
        recipe.train(True)
