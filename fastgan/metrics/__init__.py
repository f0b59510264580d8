"""fastgan.metrics: offline evaluation of trained GANs (scores.py), a small cached feature classifier (classifier.py)
and pictures (pictures.py).

    one_nn_accuracy(train_f, train_y, test_f, test_y)  1-NN classification accuracy of features (e.g. BiGAN codes)
    matched_accuracy(pred, labels)                    cluster ids vs labels under the best one-to-one pairing
    frechet_distance(f1, f2)                          FID-style distance of Gaussians fitted to two feature sets
    kid(feats_a, feats_b)                             kernel inception distance (cubic polynomial MMD^2 over random
                                                      subsets, through the fused kernel sum) -> (mean, std)
    precision_recall(real_feats, fake_feats, k)       improved precision / recall of k-NN manifolds
    get_classifier(name, x, y)                        FeatureClassifier (MLP) trained once per data set, cached on disk
    classifier_score(probs)                           the Inception-score analogue, exp E KL(p(y|x) || p(y))
    mode_coverage(samples, modes, std)                modes covered / high-quality fraction on 2-D mixtures
    mmd_to_heldout(samples, heldout)                  biased MMD^2, multi-bandwidth Gaussian kernel (fastgan.mmd2)
    generation_metrics(samples, split, classifier)    all of the above that a data split supports, as one dict
    save_image_grid(x, image_shape, path)             a grid of grey images as a PNG
    save_scatter(samples, data, path)                 a 2-D scatter of samples over data as a PNG
    save_curves({label: read_metrics(path)}, png)     training curves (losses, D accuracy) of one or more runs

Everything runs on CPU. Inputs may be torch tensors (detached, moved to the CPU) or numpy arrays. scikit-learn,
scipy, matplotlib and pillow are imported only by the functions that use them.
"""
from __future__ import annotations

from .classifier import FeatureClassifier, get_classifier, train_classifier
from .distribution import kid, knn_radii, precision_recall
from .pictures import read_metrics, save_curves, save_image_grid, save_scatter
from .scores import (
    classifier_score,
    frechet_distance,
    generation_metrics,
    matched_accuracy,
    mmd_to_heldout,
    mode_coverage,
    one_nn_accuracy,
)

__all__ = [
    "one_nn_accuracy", "matched_accuracy", "frechet_distance", "FeatureClassifier", "train_classifier",
    "get_classifier", "classifier_score", "mode_coverage", "mmd_to_heldout", "generation_metrics", "save_image_grid",
    "save_scatter", "read_metrics", "save_curves", "kid", "precision_recall", "knn_radii",
]
