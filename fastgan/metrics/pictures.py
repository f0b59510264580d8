"""Pictures of a run: sample grids, 2-D scatters over the data, and training curves from metrics.jsonl."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ._inputs import _flat, _matrix


def save_image_grid(x, image_shape, path, nrow: int = 16, scale: int = 4) -> Path:
    """Write images x (N, H*W) with values in [-1, 1] as one grey PNG: nrow images per row, each pixel a scale x scale
    block, 1-pixel mid-grey separators between and around the tiles (empty trailing cells are mid-grey too).
    image_shape: (H, W) or (1, H, W). Creates the parent directories; returns the path."""
    from PIL import Image

    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise ValueError(f"image_shape: expected (H, W) or (1, H, W), got {tuple(image_shape)}")
    h, w = shape
    imgs = _flat(x)
    if imgs.shape[0] == 0 or imgs.shape[1] != h * w:
        raise ValueError(f"x: expected a non-empty (N, {h * w}) array for images of shape {shape}, "
                         f"got shape {tuple(imgs.shape)}")
    pix = ((imgs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().reshape(-1, h, w)
    pix = pix.repeat(scale, axis=1).repeat(scale, axis=2)
    n, th, tw = pix.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((rows * (th + 1) + 1, cols * (tw + 1) + 1), 128, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (th + 1):(r + 1) * (th + 1), 1 + c * (tw + 1):(c + 1) * (tw + 1)] = pix[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, format="PNG")
    return path


def save_scatter(samples, data, path, modes=None) -> Path:
    """Scatter 2-D samples (orange) over data (blue), with the mixture's modes (black crosses) if given, to a PNG.
    Uses a standalone matplotlib Figure with the Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = _matrix(samples, "samples").numpy()
    d = _matrix(data, "data").numpy()
    if s.shape[1] != 2 or d.shape[1] != 2:
        raise ValueError(f"save_scatter: expected 2-d points, got samples {s.shape} and data {d.shape}")
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(d[:, 0], d[:, 1], s=3, alpha=0.3, color="tab:blue", label="data", linewidths=0)
    ax.scatter(s[:, 0], s[:, 1], s=3, alpha=0.5, color="tab:orange", label="samples", linewidths=0)
    if modes is not None:
        m = _matrix(modes, "modes").numpy()
        ax.scatter(m[:, 0], m[:, 1], s=30, color="black", marker="x", label="modes")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def read_metrics(path) -> list[dict]:
    """The lines of a run's metrics.jsonl as dicts (a missing file: FileNotFoundError naming it)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics: {path} not found (a run directory's metrics.jsonl)")
    return [json.loads(s) for s in path.read_text().splitlines() if s.strip()]


def save_curves(runs: dict, path, title: str | None = None) -> Path:
    """Training curves to a PNG: runs {label: metrics lines (read_metrics)}; one panel per logged quantity (losses,
    D's accuracy on real and fake, ...) against the step, one line per run. Quantities missing from a run are left
    out of its panel. Standalone matplotlib Figure with the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs: expected a non-empty {label: metrics lines} dict")
    keys = []
    for lines in runs.values():
        for line in lines:
            keys += [k for k, v in line.items() if k not in keys and k not in ("step", "time", "lr")
                     and isinstance(v, (int, float))]
    if not keys:
        raise ValueError("runs: no logged quantity to plot (the metrics lines hold only step / lr / time)")
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i, k in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, lines in runs.items():
            pts = [(line["step"], line[k]) for line in lines if k in line]
            if pts:
                ax.plot(*zip(*pts), label=label, linewidth=1.2)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(runs) > 1 and i == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
