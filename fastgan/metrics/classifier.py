"""The small feature classifier of the offline metrics: an MLP trained once per data set and cached on disk (the
features of the Frechet distance, the classifier score)."""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ._inputs import _flat, _labels

CACHE_FORMAT = 1  # bump when the classifier or the cache file layout changes: old files then miss the cache
HIDDEN = 256
LR = 1e-3
EPOCHS = 30
BATCH_SIZE = 128
MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


class FeatureClassifier(torch.nn.Module):
    """in_dim -> 256 -> 256 -> n_classes, ReLU. forward gives logits; features the last hidden layer (after ReLU),
    the embedding for frechet_distance; probs the softmax. Inputs of any shape (n, ...) are flattened."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = HIDDEN):
        super().__init__()
        self.in_dim, self.n_classes, self.hidden = int(in_dim), int(n_classes), int(hidden)
        self.body = torch.nn.Sequential(
            torch.nn.Linear(self.in_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU())
        self.head = torch.nn.Linear(hidden, self.n_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """torch.nn.Linear's default initialisation (uniform, bound 1/sqrt(fan_in)), drawn from `generator`."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, torch.nn.Linear):
                    bound = 1.0 / math.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)

    def _input(self, x) -> torch.Tensor:
        w = self.head.weight
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        return t.reshape(t.shape[0], -1).to(device=w.device, dtype=w.dtype)

    def features(self, x) -> torch.Tensor:
        return self.body(self._input(x))

    def forward(self, x) -> torch.Tensor:
        return self.head(self.features(x))

    def probs(self, x) -> torch.Tensor:
        return torch.softmax(self(x), dim=1)


def _training_data(train_x, train_y) -> tuple[torch.Tensor, torch.Tensor]:
    x = _flat(train_x).contiguous()
    y = torch.from_numpy(_labels(train_y, "train_y", x.shape[0], "train_x")).contiguous()
    if x.shape[0] == 0:
        raise ValueError("train_x: expected at least 1 row, got 0")
    if y.min() < 0:
        raise ValueError(f"train_y: expected labels >= 0, got {int(y.min())}")
    return x, y


def train_classifier(train_x, train_y, seed: int = 0, epochs: int = EPOCHS,
                     batch_size: int = BATCH_SIZE) -> FeatureClassifier:
    """Train a FeatureClassifier (cross-entropy, Adam lr 1e-3, shuffled minibatches) on CPU. One torch.Generator
    seeded with `seed` draws the initial weights and the shuffles, so the same data and seed give bit-identical
    weights. Runs on one intra-op thread (restored afterwards): for matrices this small, threads cost far more than
    they save (and thrash on a loaded machine), and one thread keeps the weights independent of the machine's thread
    count. n_classes = max(train_y) + 1. Returns the model in eval mode."""
    x, y = _training_data(train_x, train_y)
    gen = torch.Generator().manual_seed(int(seed))
    model = FeatureClassifier(x.shape[1], int(y.max()) + 1)
    model.reset_parameters(gen)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            for _ in range(epochs):
                for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
                    loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _cache_key(x: torch.Tensor, y: torch.Tensor, seed: int) -> str:
    h = hashlib.sha256()
    h.update(repr((CACHE_FORMAT, tuple(x.shape), str(x.dtype), tuple(y.shape), int(seed), EPOCHS, BATCH_SIZE,
                   LR, HIDDEN)).encode())
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    return h.hexdigest()[:16]


def _load_cached(path: Path, key: str) -> FeatureClassifier:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != CACHE_FORMAT or blob.get("key") != key:
        raise ValueError(f"format/key mismatch (format {blob.get('format')!r}, key {blob.get('key')!r})")
    model = FeatureClassifier(blob["in_dim"], blob["n_classes"], blob["hidden"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def _save_atomic(model: FeatureClassifier, path: Path, key: str) -> None:
    blob = {"format": CACHE_FORMAT, "key": key, "in_dim": model.in_dim, "n_classes": model.n_classes,
            "hidden": model.hidden, "state_dict": model.state_dict()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def get_classifier(name: str, train_x, train_y, cache_dir=None, seed: int = 0) -> FeatureClassifier:
    """train_classifier(train_x, train_y, seed), cached on disk as {cache_dir}/{name}-classifier-{key}.pt, key a
    short sha256 of the data, labels, hyperparameters and cache format. cache_dir defaults to $FASTGAN_CACHE, else
    ~/.cache/fastgan. A cache file that cannot be loaded is retrained and overwritten (with a warning)."""
    x, y = _training_data(train_x, train_y)
    root = Path(cache_dir if cache_dir is not None
                else os.environ.get("FASTGAN_CACHE") or Path.home() / ".cache" / "fastgan").expanduser()
    key = _cache_key(x, y, seed)
    path = root / f"{name}-classifier-{key}.pt"
    if path.exists():
        try:
            return _load_cached(path, key)
        except Exception as e:  # truncated, corrupt, or foreign file: rebuild it
            warnings.warn(f"fastgan.metrics: the cached classifier {path} could not be loaded ({type(e).__name__}: "
                          f"{e}); retraining it and overwriting the file", RuntimeWarning, stacklevel=2)
    model = train_classifier(x, y, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    _save_atomic(model, path, key)
    return model
