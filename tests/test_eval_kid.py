"""fastgan.metrics.kid and precision_recall: hand-computable cases, a direct dense computation, their errors, and their
behaviour on the digits data in the offline classifier's features (train vs test far below test vs a poor
generator); generation_metrics reports them."""
import types

import numpy as np
import pytest
import torch

import fastgan.data
import fastgan.metrics as fe


def _dense_unbiased_poly_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """Binkowski et al.'s estimator, written out with the n x n kernel matrices (float64 numpy)."""
    d = a.shape[1]
    kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
    n, m = a.shape[0], b.shape[0]
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_kid_hand_computed():
    # d = 2: k(a, b) = (a.b / 2 + 1)^3. K_xx off the diagonal: (0 / 2 + 1)^3 = 1 -> 1; K_yy likewise -> 1;
    # K_xy: a1.b1 = a2.b1 = 1 -> 1.5^3 = 3.375, a1.b2 = a2.b2 = 0 -> 1: mean 2.1875. MMD^2 = 1 + 1 - 4.375.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    mean, std = fe.kid(a, b, subsets=5, subset_size=10)  # every subset is the whole set (in another order)
    assert mean == pytest.approx(-2.375, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    mean, std = fe.kid(a.numpy(), a.numpy(), subsets=3)  # numpy inputs; identical sets: the estimate's own terms
    assert mean == pytest.approx(1 + 1 - 2 * (1.5 ** 3 + 1) / 2, abs=1e-12)


def test_kid_matches_dense_subsets():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(70, 6, generator=gen)
    b = torch.randn(50, 6, generator=gen) * 1.2 + 0.3
    mean, std = fe.kid(a, b, subsets=7, subset_size=30, seed=11)
    g = torch.Generator().manual_seed(11)  # the documented sampling: per subset, a's rows then b's
    vals = []
    for _ in range(7):
        ia, ib = torch.randperm(70, generator=g)[:30], torch.randperm(50, generator=g)[:30]
        vals.append(_dense_unbiased_poly_mmd2(a[ia].double().numpy(), b[ib].double().numpy()))
    assert mean == pytest.approx(float(np.mean(vals)), rel=1e-10, abs=1e-12)
    assert std == pytest.approx(float(np.std(vals)), rel=1e-9, abs=1e-12)
    # subset_size above the sizes: m = min(subset_size, N_a, N_b) = 50 rows of each
    full, _ = fe.kid(a, b, subsets=1, subset_size=1000, seed=0)
    g = torch.Generator().manual_seed(0)
    ia, ib = torch.randperm(70, generator=g)[:50], torch.randperm(50, generator=g)[:50]
    assert full == pytest.approx(_dense_unbiased_poly_mmd2(a[ia].double().numpy(), b[ib].double().numpy()),
                                 rel=1e-10)
    assert fe.kid(a, b, subsets=4, subset_size=20, seed=5) == fe.kid(a, b, subsets=4, subset_size=20, seed=5)


def test_precision_recall_hand_computed():
    real = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    fake = torch.tensor([[0.5], [5.0], [20.0]])
    # k = 1 radii: real 1, 1, 1, 8; fake 4.5, 4.5, 15. Fakes inside a real ball: 0.5 (|0.5 - 0| <= 1), 5
    # (|5 - 10| <= 8), not 20 (|20 - 10| = 10 > 8): 2/3. Reals inside a fake ball: 0, 1, 2 (of 0.5), 10 (of 20): 1.
    assert torch.equal(fe.knn_radii(real, 1), torch.tensor([1.0, 1.0, 1.0, 8.0], dtype=torch.float64))
    p, r = fe.precision_recall(real, fake, k=1)
    assert p == pytest.approx(2 / 3, abs=1e-15) and r == 1.0
    # k = 2: real radii 2, 1, 2, 9; fake radii 19.5, 15, 19.5. Fakes: 0.5 in, 5 in (|5 - 10| <= 9), 20 out
    # (|20 - 10| = 10 > 9): 2/3; every real is within 19.5 of 0.5: recall 1
    assert torch.equal(fe.knn_radii(real, 2), torch.tensor([2.0, 1.0, 2.0, 9.0], dtype=torch.float64))
    assert fe.precision_recall(real, fake, k=2) == pytest.approx((2 / 3, 1.0))
    # a set against itself: every point is inside the balls (boundaries included): (1, 1)
    x = torch.randn(40, 5)
    assert fe.precision_recall(x, x, k=3) == (1.0, 1.0)
    # duplicates: a point's copy is its nearest neighbour at distance 0
    dup = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert torch.equal(fe.knn_radii(dup, 1), torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))


def test_precision_recall_matches_dense(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    real = torch.randn(300, 4, generator=gen)
    fake = torch.randn(200, 4, generator=gen) * 0.7 + 0.4
    monkeypatch.setattr(fe.distribution, "_CHUNK_ELEMS", 1000)  # many chunks, uneven last one
    got = fe.precision_recall(real, fake, k=3)
    r, f = real.double(), fake.double()

    def radii(a):
        d = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1).sqrt()
        return d.sort(1).values[:, 3]  # column 0 is the point itself

    drf = ((f[:, None, :] - r[None, :, :]) ** 2).sum(-1).sqrt()  # (fake, real)
    precision = (drf <= radii(r)[None, :]).any(1).double().mean().item()
    recall = (drf.T <= radii(f)[None, :]).any(1).double().mean().item()
    assert got == (precision, recall)
    assert 0.0 < precision < 1.0 and 0.0 < recall < 1.0


def test_errors():
    a, b = torch.randn(10, 3), torch.randn(8, 3)
    cases = [
        (lambda: fe.kid(a, torch.randn(8, 2)), ValueError, "feats_b: expected 3 features like feats_a"),
        (lambda: fe.kid(a[:1], b), ValueError, "feats_a: expected at least 2 rows"),
        (lambda: fe.kid(a, b, subsets=0), ValueError, "subsets: expected an int >= 1"),
        (lambda: fe.kid(a, b, subset_size=1), ValueError, "subset_size: expected an int >= 2"),
        (lambda: fe.kid(a, b, subsets=2.0), TypeError, "subsets: expected an int"),
        (lambda: fe.kid(torch.randn(4, 3, 2), b), ValueError, "feats_a: expected a 2-d array"),
        (lambda: fe.precision_recall(a, b, k=8), ValueError, r"k: expected k < the number of rows of fake_feats \(8\)"),
        (lambda: fe.precision_recall(a, b, k=0), ValueError, "k: expected an int >= 1"),
        (lambda: fe.precision_recall(a, torch.randn(8, 4)), ValueError, "fake_feats: expected 3 features"),
        (lambda: fe.knn_radii(a[:3], k=3), ValueError, "k: expected k < the number of rows"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


def test_digits_kid_separates_a_poor_generator():
    """In a trained offline classifier's features: KID(train, test) is far below KID(test, noise) and KID(test, a
    mode-collapsed 'generator' that emits only images of the digit 0); the collapsed one has high precision, low
    recall."""
    split = fastgan.data.load("digits")
    clf = fe.train_classifier(split.train_x, split.train_y, seed=0, epochs=5)
    with torch.no_grad():
        f_train, f_test = clf.features(split.train_x), clf.features(split.test_x)
        noise = torch.rand(360, split.train_x.shape[1], generator=torch.Generator().manual_seed(0)) * 2 - 1
        f_noise = clf.features(noise)
        f_zeros = clf.features(split.train_x[split.train_y == 0])
    kid_real, kid_real_std = fe.kid(f_train, f_test, subsets=20, subset_size=300)
    kid_noise, _ = fe.kid(f_test, f_noise, subsets=20, subset_size=300)
    kid_zeros, _ = fe.kid(f_test, f_zeros, subsets=20, subset_size=300)
    print(f"KID(train, test) = {kid_real:.4g} +- {kid_real_std:.2g}; KID(test, noise) = {kid_noise:.4g}; "
          f"KID(test, zeros only) = {kid_zeros:.4g}")
    assert abs(kid_real) < 0.05 * kid_noise and abs(kid_real) < 0.05 * kid_zeros
    p_real, r_real = fe.precision_recall(f_test, f_train[:360], k=3)
    p_zeros, r_zeros = fe.precision_recall(f_test, f_zeros, k=3)
    print(f"precision / recall: train {p_real:.3f} / {r_real:.3f}; zeros only {p_zeros:.3f} / {r_zeros:.3f}")
    assert p_real > 0.8 and r_real > 0.8
    assert p_zeros > 0.8 and r_zeros < 0.3


def test_generation_metrics_reports_kid_and_precision_recall(monkeypatch):
    monkeypatch.setattr(fe.scores, "frechet_distance", lambda a, b: 0.0)  # (seconds of sqrtm, tested elsewhere)
    x = torch.rand(400, 64) * 2 - 1
    y = torch.arange(400) % 10
    split = types.SimpleNamespace(name="t", train_x=x[:300], train_y=y[:300], test_x=x[300:], test_y=y[300:],
                                  image_shape=(8, 8), modes=None, mode_std=None)
    clf = fe.FeatureClassifier(64, 10)
    clf.reset_parameters(torch.Generator().manual_seed(0))
    out = fe.generation_metrics(split.test_x, split, classifier=clf)
    assert {"kid", "kid_std", "precision", "recall"} <= set(out)
    # samples = the test split (100 rows < the subset size): every subset is the whole set, permuted
    with torch.no_grad():
        f = clf.features(split.test_x).double().numpy()
    assert out["kid"] == pytest.approx(_dense_unbiased_poly_mmd2(f, f), rel=1e-10) and out["kid_std"] < 1e-12
    assert out["precision"] == 1.0 and out["recall"] == 1.0
