"""fastgan.metrics: 1-NN accuracy, the Frechet distance against its closed form, the feature classifier (determinism,
accuracy on sklearn digits, the disk cache and its recovery from a corrupt file), the classifier score's bounds,
mode coverage, the held-out MMD, generation_metrics' keys, and the PNG writers."""
import json
import math
import types
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import fastgan.metrics as fe


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 8 - 1
    return x, torch.tensor(d.target)


def _exact_gaussian(n, mean, var, gen):
    """n rows whose sample mean is exactly `mean` and sample covariance exactly diag(var)."""
    z = torch.randn(n, len(mean), generator=gen, dtype=torch.float64)
    z = z - z.mean(0)
    chol = torch.linalg.cholesky(torch.cov(z.T))
    z = torch.linalg.solve_triangular(chol, z.T, upper=False).T  # sample covariance = I
    return torch.tensor(mean, dtype=torch.float64) + z * torch.tensor(var, dtype=torch.float64).sqrt()


# ---------------------------------------------------------------------------------------------------- 1-NN
def test_one_nn_separable_and_known_answer():
    tr = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    ytr = torch.tensor([0, 0, 1, 1])
    te = np.array([[0.2, -0.1], [4.9, 5.2], [-1.0, 0.0]])
    assert fe.one_nn_accuracy(tr, ytr, te, np.array([0, 1, 0])) == 1.0
    # 1-D: train 0 -> class 0, 10 -> class 1; tests at 1, 9 are right, at 6 and 4 wrong: 2 of 4
    acc = fe.one_nn_accuracy([[0.0], [10.0]], [0, 1], [[1.0], [9.0], [6.0], [4.0]], [0, 1, 0, 1])
    assert acc == 0.5


def test_one_nn_errors():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="train_y"):
        fe.one_nn_accuracy(x, [0, 1, 0], x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="test_f"):
        fe.one_nn_accuracy(x, [0, 1, 0, 1], torch.zeros(4, 2), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="train_f"):
        fe.one_nn_accuracy(torch.zeros(4), [0, 1, 0, 1], x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="test_y"):
        fe.one_nn_accuracy(x, [0, 1, 0, 1], x, [[0, 1, 0, 1]])


# ---------------------------------------------------------------------------------------- Frechet distance
def test_frechet_identical_is_zero():
    f = torch.randn(300, 8)
    assert fe.frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    assert fe.frechet_distance(f.numpy(), f.clone()) == pytest.approx(0.0, abs=1e-8)


def test_frechet_closed_form_and_symmetry():
    gen = torch.Generator().manual_seed(0)
    mu1, var1 = [0.0, 1.0, -2.0, 0.5], [1.0, 4.0, 0.25, 2.0]
    mu2, var2 = [1.0, 1.0, 0.0, 0.5], [9.0, 1.0, 0.25, 0.5]
    a, b = _exact_gaussian(400, mu1, var1, gen), _exact_gaussian(250, mu2, var2, gen)
    # diagonal covariances: |mu1 - mu2|^2 + sum_k (sqrt(v1_k) - sqrt(v2_k))^2
    want = sum((p - q) ** 2 for p, q in zip(mu1, mu2)) + sum((math.sqrt(p) - math.sqrt(q)) ** 2
                                                            for p, q in zip(var1, var2))
    assert fe.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert fe.frechet_distance(b, a) == pytest.approx(want, rel=1e-9)


def test_frechet_full_covariance_matches_symmetric_form():
    a = torch.randn(500, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    b = torch.randn(300, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64) + 1
    s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T  # tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    want = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + np.trace(s1) + np.trace(s2) - 2 * tr_root
    assert fe.frechet_distance(a, b) == pytest.approx(want, rel=1e-8)
    assert fe.frechet_distance(a, b) == pytest.approx(fe.frechet_distance(b, a), rel=1e-8)


def test_frechet_rank_deficient():
    f = torch.randn(10, 32)  # 10 samples in 32 dimensions: singular covariances, the eps retry
    g = torch.randn(12, 32) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = fe.frechet_distance(f, g)
        assert math.isfinite(d) and d > 0
        assert fe.frechet_distance(f, f) == pytest.approx(0.0, abs=1e-3)


def test_frechet_errors():
    with pytest.raises(ValueError, match="f1"):
        fe.frechet_distance(torch.randn(1, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="f2"):
        fe.frechet_distance(torch.randn(5, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="f2"):
        fe.frechet_distance(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="f1"):
        fe.frechet_distance(torch.randn(5), torch.randn(5, 1))


# ------------------------------------------------------------------------------------------------ classifier
def test_classifier_deterministic_and_learns(digits):
    x, y = digits
    xtr, ytr = x[:1437], y[:1437]
    threads = torch.get_num_threads()
    m1 = fe.train_classifier(xtr, ytr, seed=3)
    assert torch.get_num_threads() == threads  # trained on one thread, the setting restored
    torch.manual_seed(12345)  # the global RNG must not matter
    torch.randn(10)
    m2 = fe.train_classifier(xtr.numpy(), ytr.numpy(), seed=3)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    with torch.no_grad():
        acc = (m1(xtr).argmax(1) == ytr).float().mean().item()
        assert acc > 0.9
        assert m1.features(xtr[:5]).shape == (5, 256)
        p = m1.probs(xtr[:5])
    assert p.shape == (5, 10) and torch.allclose(p.sum(1), torch.ones(5))
    m3 = fe.train_classifier(xtr, ytr, seed=4, epochs=1)
    assert not torch.equal(m3.state_dict()["head.weight"], s1["head.weight"])


def _counting_trainer(monkeypatch):
    real, calls = fe.train_classifier, []

    def fake(x, y, seed=0, **kw):
        calls.append(seed)
        return real(x, y, seed=seed, epochs=1)

    monkeypatch.setattr(fe.classifier, "train_classifier", fake)  # where get_classifier looks it up
    return calls


def test_get_classifier_cache_round_trip(digits, tmp_path, monkeypatch):
    x, y = digits[0][:300], digits[1][:300]
    calls = _counting_trainer(monkeypatch)
    m1 = fe.get_classifier("digits", x, y, cache_dir=tmp_path / "c")
    files = list((tmp_path / "c").glob("digits-classifier-*.pt"))
    assert calls == [0] and len(files) == 1 and not list((tmp_path / "c").glob("*.tmp"))
    m2 = fe.get_classifier("digits", x, y, cache_dir=tmp_path / "c")
    assert calls == [0]  # loaded, not retrained
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    # another seed or other data: another key
    fe.get_classifier("digits", x, y, cache_dir=tmp_path / "c", seed=1)
    fe.get_classifier("digits", x[:200], y[:200], cache_dir=tmp_path / "c")
    assert calls == [0, 1, 0] and len(list((tmp_path / "c").glob("*.pt"))) == 3
    # the default directory: $FASTGAN_CACHE
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "env"))
    fe.get_classifier("digits", x, y)
    assert len(list((tmp_path / "env").glob("digits-classifier-*.pt"))) == 1


def test_get_classifier_corrupt_cache(digits, tmp_path, monkeypatch):
    x, y = digits[0][:300], digits[1][:300]
    calls = _counting_trainer(monkeypatch)
    m1 = fe.get_classifier("d", x, y, cache_dir=tmp_path)
    (path,) = tmp_path.glob("d-classifier-*.pt")
    path.write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="retrain"):
        m2 = fe.get_classifier("d", x, y, cache_dir=tmp_path)
    assert len(calls) == 2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fe.get_classifier("d", x, y, cache_dir=tmp_path)  # the rewritten file loads
    assert len(calls) == 2


# -------------------------------------------------------------------------------------------- classifier score
def test_classifier_score_bounds():
    row = torch.tensor([0.2, 0.5, 0.3])
    assert fe.classifier_score(row.repeat(7, 1)) == pytest.approx(1.0, abs=1e-12)
    onehot = torch.eye(4).repeat(3, 1)
    assert fe.classifier_score(onehot) == pytest.approx(4.0, rel=1e-9)
    p = torch.softmax(torch.randn(50, 5) * 3, dim=1)
    assert 1.0 <= fe.classifier_score(p) <= 5.0
    with pytest.raises(ValueError, match="probs"):
        fe.classifier_score(torch.ones(3))


# ------------------------------------------------------------------------------------------------ mode coverage
def _ring(k=8, radius=2.0):
    a = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return torch.stack([radius * a.cos(), radius * a.sin()], 1)


def test_mode_coverage():
    modes, std = _ring(), 0.02
    jitter = torch.tensor([[0.01, 0.0], [0.0, -0.02], [-0.03, 0.01], [0.0, 0.0]] * 25, dtype=torch.float64)
    full = (modes[:, None] + jitter[None]).reshape(-1, 2)  # 100 per mode, all within 3 std
    r = fe.mode_coverage(full, modes, std)
    assert r == {"modes_covered": 8, "n_modes": 8, "high_quality": 1.0, "per_mode": [100] * 8}
    # 5 modes hit, and 300 junk points at the centre (nearest some mode, but far from it)
    part = torch.cat([(modes[:5, None] + jitter[None]).reshape(-1, 2), torch.zeros(300, 2, dtype=torch.float64)])
    r = fe.mode_coverage(part, modes, std)
    assert r["modes_covered"] == 5 and r["n_modes"] == 8
    assert r["high_quality"] == pytest.approx(500 / 800)
    assert r["per_mode"] == [100] * 5 + [0] * 3
    # mode 5 with only 3 HQ samples: below max(1, 0.05 * 803 / 8) ~ 5.02, not covered; n_sigma widens HQ
    extra = torch.cat([part, modes[5].repeat(3, 1)])
    assert fe.mode_coverage(extra, modes, std)["per_mode"][5] == 3
    assert fe.mode_coverage(extra, modes, std)["modes_covered"] == 5
    assert fe.mode_coverage(part, modes, std, n_sigma=200.0)["high_quality"] == 1.0
    with pytest.raises(ValueError, match="modes"):
        fe.mode_coverage(full, torch.zeros(8, 3), std)


# ------------------------------------------------------------------------------------------------------ MMD
def test_mmd_to_heldout():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 3, generator=gen), torch.randn(600, 3, generator=gen)
    same = fe.mmd_to_heldout(a, b)
    shifted = fe.mmd_to_heldout(a + 1.5, b)
    assert 0 <= same < 0.01 and shifted > 0.1 and shifted > 20 * same
    big = torch.randn(3000, 3, generator=gen)
    v1 = fe.mmd_to_heldout(big, b, n_max=500, seed=1)
    assert v1 == fe.mmd_to_heldout(big, b, n_max=500, seed=1)
    assert v1 != fe.mmd_to_heldout(big, b, n_max=500, seed=2)
    assert fe.mmd_to_heldout(b.reshape(600, 1, 3), b) == pytest.approx(0.0, abs=1e-12)  # flattened


# ----------------------------------------------------------------------------------------- generation_metrics
def test_generation_metrics_mixture():
    modes = _ring().float()
    data = (modes.repeat(50, 1) + 0.02 * torch.randn(400, 2))
    split = types.SimpleNamespace(name="ring", train_x=data, train_y=None, test_x=data[:200], test_y=None,
                                  image_shape=None, modes=modes, mode_std=0.02)
    out = fe.generation_metrics(data[200:], split, classifier=None)
    assert set(out) == {"mmd2", "modes_covered", "n_modes", "high_quality", "per_mode"}
    assert out["n_modes"] == 8 and out["modes_covered"] == 8 and out["mmd2"] < 0.05


def test_generation_metrics_labelled(digits):
    x, y = digits
    split = types.SimpleNamespace(name="digits", train_x=x[:1000], train_y=y[:1000], test_x=x[1000:1400],
                                  test_y=y[1000:1400], image_shape=(8, 8), modes=None, mode_std=None)
    clf = fe.FeatureClassifier(64, 10)
    clf.reset_parameters(torch.Generator().manual_seed(0))
    out = fe.generation_metrics(split.test_x, split, classifier=clf)
    assert set(out) == {"mmd2", "fd", "classifier_score", "fd_real", "kid", "kid_std", "precision", "recall"}
    assert out["fd"] == pytest.approx(0.0, abs=1e-6) and out["mmd2"] == pytest.approx(0.0, abs=1e-9)
    assert out["fd_real"] > 0 and 1.0 <= out["classifier_score"] <= 10.0
    noise = fe.generation_metrics(torch.rand(300, 64) * 2 - 1, split, classifier=clf)
    assert noise["fd"] > out["fd_real"] and noise["mmd2"] > 0.01
    assert set(fe.generation_metrics(split.test_x, split)) == {"mmd2"}  # no classifier


# -------------------------------------------------------------------------------------------------------- PNG
def test_save_image_grid(tmp_path):
    x = torch.full((20, 64), -1.0)
    x[0, 0] = 1.0
    path = fe.save_image_grid(x, (8, 8), tmp_path / "a" / "grid.png", nrow=16, scale=4)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "L"
        assert im.size == (16 * 33 + 1, 2 * 33 + 1)
        arr = np.asarray(im)
    assert arr[0, 0] == 128 and (arr[1:5, 1:5] == 255).all() and arr[5, 5] == 0  # separator, upscaled pixel, black
    assert arr[34 + 1, 4 * 33 + 2] == 128  # an empty cell of the second row
    path = fe.save_image_grid(torch.zeros(3, 1, 8, 8), (1, 8, 8), tmp_path / "b.png", scale=1)
    with Image.open(path) as im:
        assert im.size == (3 * 9 + 1, 10)
    with pytest.raises(ValueError, match="x"):
        fe.save_image_grid(torch.zeros(3, 10), (8, 8), tmp_path / "c.png")


def test_save_scatter(tmp_path):
    modes = _ring()
    path = fe.save_scatter(torch.randn(100, 2), modes.repeat(10, 1), tmp_path / "s" / "scatter.png", modes=modes)
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG" and im.size == (500, 500)
    with pytest.raises(ValueError):
        fe.save_scatter(torch.randn(10, 3), torch.randn(10, 3), tmp_path / "t.png")


def test_save_curves(tmp_path):
    a = [{"step": s, "loss_d": 1.0 / s, "acc_real": 0.5, "lr": 1e-3, "time": {"elapsed_s": s}} for s in (1, 2, 3)]
    b = [{"step": s, "loss_d": 2.0 / s, "loss_ge": 1.0} for s in (1, 2)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(line) for line in a) + "\n")
    assert fe.read_metrics(tmp_path / "m.jsonl") == a
    path = fe.save_curves({"before": fe.read_metrics(tmp_path / "m.jsonl"), "after": b}, tmp_path / "c" / "curves.png",
                          title="t")
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG" and im.size == (3 * 420, 300)  # loss_d, acc_real, loss_ge: one row of three panels
    with pytest.raises(FileNotFoundError, match="metrics: .*missing.jsonl not found"):
        fe.read_metrics(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="runs: expected a non-empty"):
        fe.save_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="runs: no logged quantity"):
        fe.save_curves({"a": [{"step": 1, "lr": 0.1}]}, tmp_path / "x.png")
