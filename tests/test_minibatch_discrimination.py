"""fastgan.minibatch_discrimination and the MinibatchDiscrimination / MinibatchStdDev modules against the broadcast
reference: forward and gradients within the batch (with and without the self pairs) and against a reference batch,
odd and unit batches, non-contiguous inputs, every dtype; the second order (fp64, fp32) too; gradcheck and
gradgradcheck fp64; opcheck of the three ops; third order raises; memory at
B = 4096, K = 100, C = 5 (no timing); error paths."""
import functools
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import IMPL_DEVICE, close, impl_params, join, rendezvous

import fastgan
from fastgan import backend
from fastgan.nn import MinibatchDiscrimination, MinibatchStdDev
from fastgan.ops import reference

IMPLS = impl_params()
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _grads(fn, m, r, g):
    leaves = [m] if r is None else [m, r]
    leaves = [t.detach().requires_grad_(True) for t in leaves]
    o = fn(*leaves) if r is not None else fn(leaves[0])
    return o.detach(), [x.detach() for x in torch.autograd.grad(o, leaves, g)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("impl", IMPLS)
def test_matches_reference(impl, dtype):
    device = IMPL_DEVICE[impl]
    for B, R, K, C, noncontig in ((7, 5, 4, 3, False), (1, 3, 2, 5, False), (33, 17, 6, 2, False),
                                  (9, 4, 3, 5, True), (0, 3, 2, 2, False)):
        m = torch.randn(B, K, 2 * C if noncontig else C, device=device, dtype=torch.float64)
        m = (m[:, :, ::2] if noncontig else m).to(dtype)
        r = torch.randn(R, K, C, device=device, dtype=torch.float64).to(dtype)
        for ref, excl in ((None, False), (None, True), (r, False)):
            g = torch.randn(B, K, device=device, dtype=torch.float64).to(dtype)
            what = f"B={B} R={R} K={K} C={C} reference={ref is not None} exclude_self={excl} noncontig={noncontig}"
            fast = functools.partial(fastgan.minibatch_discrimination, exclude_self=excl, impl=impl)
            ref_fn = functools.partial(reference.minibatch_discrimination, exclude_self=excl)
            got = _grads(lambda a, b=None: fast(a, b), m, ref, g)
            exp = _grads(lambda a, b=None: ref_fn(a, b), m, ref, g)
            close(got[0], exp[0], dtype, f"forward {what}")
            for k, (a, e) in enumerate(zip(got[1], exp[1])):
                close(a, e, dtype, f"gradient #{k} {what}")


def _second_order(fn, m, r, g, h):
    """d/d(g, m, r) of <h, d<g, fn(m, r)>/d(m, r)>: the double backward a gradient penalty takes."""
    leaves = [t.detach().requires_grad_(True) for t in ([g, m] if r is None else [g, m, r])]
    o = fn(*leaves[1:])
    first = torch.autograd.grad(o, leaves[1:], leaves[0], create_graph=True)
    return [x.detach() for x in torch.autograd.grad(sum((a * b).sum() for a, b in zip(first, h)), leaves)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("impl", IMPLS)
def test_second_order_matches_reference(impl, dtype):
    """fastgan::minibatch_discrimination_backward2 (the backward of the backward) vs autograd through the broadcast
    reference: the gradients w.r.t. the upstream gradient g, m and the reference batch."""
    device = IMPL_DEVICE[impl]
    for B, R, K, C, noncontig in ((7, 5, 4, 3, False), (1, 3, 2, 5, False), (21, 17, 3, 2, False),
                                  (9, 4, 3, 5, True), (0, 3, 2, 2, False)):
        m = torch.randn(B, K, 2 * C if noncontig else C, device=device, dtype=torch.float64)
        m = (m[:, :, ::2] if noncontig else m).to(dtype)
        r = torch.randn(R, K, C, device=device, dtype=dtype)
        for ref, excl in ((None, False), (None, True), (r, False)):
            g = torch.randn(B, K, device=device, dtype=dtype)
            h = [torch.randn_like(m)] + ([] if ref is None else [torch.randn_like(r)])
            what = f"B={B} R={R} K={K} C={C} reference={ref is not None} exclude_self={excl} noncontig={noncontig}"
            got = _second_order(lambda a, b=None: fastgan.minibatch_discrimination(a, b, excl, impl=impl), m, ref, g, h)
            exp = _second_order(lambda a, b=None: reference.minibatch_discrimination(a, b, excl), m, ref, g, h)
            for name, a, e in zip(("d/dg", "d/dm", "d/dref"), got, exp):
                close(a, e, dtype, f"second order {name} {what}")


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_gradgradcheck_and_third_order_raises(impl):
    device = IMPL_DEVICE[impl]
    m = torch.randn(6, 3, 2, device=device, dtype=torch.float64, requires_grad=True)
    r = torch.randn(4, 3, 2, device=device, dtype=torch.float64, requires_grad=True)
    fast = impl == "triton" and backend.triton_interpreter()
    for fn, args in ((lambda a: fastgan.minibatch_discrimination(a, impl=impl), (m,)),
                     (lambda a: fastgan.minibatch_discrimination(a, exclude_self=True, impl=impl), (m,)),
                     (lambda a, b: fastgan.minibatch_discrimination(a, b, impl=impl), (m, r))):
        assert torch.autograd.gradcheck(fn, args, fast_mode=fast)
        assert torch.autograd.gradgradcheck(fn, args, fast_mode=fast)
    (g,) = torch.autograd.grad(fastgan.minibatch_discrimination(m, impl=impl).square().sum(), m, create_graph=True)
    (h,) = torch.autograd.grad(g.square().sum(), m, create_graph=True)
    with pytest.raises(NotImplementedError, match="minibatch_discrimination: third-order derivatives"):
        torch.autograd.grad(h.sum(), m)


@pytest.mark.parametrize("impl", IMPLS)
def test_opcheck(impl):
    device = IMPL_DEVICE[impl]
    ns = fastgan.ops.OPS["minibatch_discrimination"].namespace(impl)  # defines the Triton ops on first use
    check = torch.library.opcheck
    if impl == "triton" and backend.triton_interpreter():
        # the interpreter runs kernels eagerly, also on fake tensors: no fake/compile tracing there
        check = functools.partial(torch.library.opcheck, test_utils=("test_schema", "test_autograd_registration"))
    m = torch.randn(5, 3, 2, device=device, requires_grad=True)
    r = torch.randn(4, 3, 2, device=device, requires_grad=True)
    check(ns.minibatch_discrimination.default, (m, None, False))
    check(ns.minibatch_discrimination.default, (m, None, True))
    check(ns.minibatch_discrimination.default, (m, r, False))
    check(ns.minibatch_discrimination_backward.default,
          (torch.randn(5, 3, device=device), m.detach(), r.detach(), False))
    g = torch.randn(5, 3, device=device)
    check(ns.minibatch_discrimination_backward2.default,
          (torch.randn(5, 3, 2, device=device), None, g, m.detach(), None, False))
    gg = (torch.randn(5, 3, 2, device=device), torch.randn(4, 3, 2, device=device))
    check(ns.minibatch_discrimination_backward2.default, (*gg, g, m.detach(), r.detach(), False))


@pytest.mark.parametrize("impl", IMPLS)
def test_module(impl):
    device = IMPL_DEVICE[impl]
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(12, kernels=6, kernel_dim=3, impl=impl).to(device).double()
    f = torch.randn(9, 12, device=device, dtype=torch.float64, requires_grad=True)
    out = layer(f)
    assert out.shape == (9, 18)
    close(out[:, :12], f, torch.float64, "features pass through")
    m = (f @ layer.T).view(9, 6, 3)
    close(out[:, 12:], reference.minibatch_discrimination(m, None, False), torch.float64, "o")
    out.square().sum().backward()
    assert layer.T.grad is not None and f.grad is not None
    ref_batch = torch.randn(4, 12, device=device, dtype=torch.float64)
    close(layer(f, ref_batch)[:, 12:],
          reference.minibatch_discrimination(m, (ref_batch @ layer.T).view(4, 6, 3), False), torch.float64,
          "o against a reference batch")
    assert "kernels=6" in repr(layer)
    with pytest.raises(ValueError, match=r"f: expected a 2-d tensor of shape \(batch, 12\)"):
        layer(torch.randn(3, 11, device=device, dtype=torch.float64))


def test_global_batch_single_process_group(tmp_path):
    """global_batch under an initialised process group (gloo, world size 1): the same as the local batch."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        layer = MinibatchDiscrimination(8, kernels=4, kernel_dim=2, global_batch=True)
        f = torch.randn(5, 8)
        local = MinibatchDiscrimination(8, kernels=4, kernel_dim=2)
        local.load_state_dict(layer.state_dict())
        close(layer(f), local(f), torch.float32, "global batch of one rank")
        dist.barrier()  # leave together: a rank tearing gloo down mid-exchange aborts the other
    finally:
        dist.destroy_process_group()


def test_minibatch_stddev():
    x = torch.randn(8, 6, 4, 4, dtype=torch.float64)
    layer = MinibatchStdDev(group_size=4, num_channels=2)
    y = layer(x)
    assert y.shape == (8, 8, 4, 4)
    close(y[:, :6], x, torch.float64, "input channels pass through")
    g = x.reshape(4, 2, 2, 3, 4, 4)  # (G, n/G, F, c/F, H, W): samples i and i + 2 (mod 8) share a group
    sd = (g.var(0, unbiased=False) + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (n/G, F)
    for i in range(8):
        for f in range(2):
            assert torch.allclose(y[i, 6 + f], sd[i % 2, f].expand(4, 4))
    assert MinibatchStdDev(group_size=16)(x).shape == (8, 7, 4, 4)  # group = the whole batch of 8
    with pytest.raises(ValueError, match="batch size 6 is not divisible by the group size 4"):
        MinibatchStdDev(4)(torch.randn(6, 3, 2, 2))
    with pytest.raises(ValueError, match="5 channels are not divisible by num_channels=2"):
        MinibatchStdDev(2, num_channels=2)(torch.randn(4, 5, 2, 2))
    with pytest.raises(ValueError, match="group_size: expected a positive int"):
        MinibatchStdDev(0)


def test_memory_at_4096():
    """B = 4096, K = 100, C = 5, forward and backward: under 100 MB of extra memory (peak RSS growth in a fresh
    process; the broadcast difference tensor alone would be 4096^2 x 500 x 4 bytes = 33.6 GB)."""
    code = textwrap.dedent("""
        import resource, torch, fastgan
        torch.manual_seed(0)
        m = torch.randn(4096, 100, 5, requires_grad=True)
        fastgan.minibatch_discrimination(m[:64]).sum().backward()  # warm up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        o = fastgan.minibatch_discrimination(m, impl="cpp")
        o.sum().backward()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024.0, bool(torch.isfinite(m.grad).all()), o.shape[0])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=os.environ)
    assert out.returncode == 0, out.stderr
    grown_mb, finite, rows = out.stdout.split()
    assert finite == "True" and rows == "4096"
    assert float(grown_mb) < 100.0, f"peak RSS grew by {grown_mb} MB"


@pytest.mark.parametrize("impl", IMPLS)
def test_errors(impl):
    device = IMPL_DEVICE[impl]
    m = torch.randn(4, 3, 2, device=device)
    md_ops = torch.ops.fastgan  # the C++ ops' own checks
    cases = [
        (lambda: fastgan.minibatch_discrimination(m[0], impl=impl), ValueError, "m: expected a 3-d tensor"),
        (lambda: fastgan.minibatch_discrimination(m, torch.randn(5, 3, 3, device=device), impl=impl), ValueError,
         r"reference: expected shape \(R, 3, 2\) like m"),
        (lambda: fastgan.minibatch_discrimination(m, torch.randn(5, 3, 2, device=device).double(), impl=impl),
         TypeError, "reference: expected dtype torch.float32"),
        (lambda: fastgan.minibatch_discrimination(m, m, exclude_self=True, impl=impl), ValueError,
         "exclude_self: applies to the pairs within the batch"),
        (lambda: fastgan.minibatch_discrimination(m.long(), impl=impl), TypeError, "m: expected a floating tensor"),
        (lambda: fastgan.minibatch_discrimination(m, exclude_self=1, impl=impl), TypeError,
         "exclude_self: expected a bool"),
        (lambda: md_ops.minibatch_discrimination(m[0].cpu(), None, False), ValueError, "m: expected a 3-d tensor"),
        (lambda: md_ops.minibatch_discrimination_backward2(m.cpu(), m.cpu(), m[:, :, 0].cpu(), m.cpu(), None, False),
         ValueError, r"ggr: expected None within the batch"),
        (lambda: md_ops.minibatch_discrimination_backward2(m.cpu(), None, m[:, :, 0].cpu(), m.cpu(), m.cpu(), False),
         ValueError, r"ggr: expected a tensor like ref, got None"),
        (lambda: md_ops.minibatch_discrimination_backward2(m.cpu(), None, m[:3, :, 0].cpu(), m.cpu(), None, False),
         ValueError, r"grad: expected shape \(4, 3\)"),
        (lambda: md_ops.minibatch_discrimination_backward2(m[:, :, :1].cpu(), None, m[:, :, 0].cpu(), m.cpu(), None,
                                                           False), ValueError, r"ggm: expected shape \[4, 3, 2\]"),
        (lambda: MinibatchDiscrimination(0), ValueError, "in_features: expected a positive int"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


def _two_rank_worker(rank, path, f_all, state, out_dir):
    import torch.distributed as dist

    join(path, rank, 2)
    try:
        layer = MinibatchDiscrimination(8, kernels=4, kernel_dim=3, global_batch=True)
        layer.load_state_dict(state)
        f = f_all[rank * 5:(rank + 1) * 5].clone().requires_grad_(True)
        out = layer(f)
        (out.square().sum()).backward()
        torch.save({"out": out.detach(), "fgrad": f.grad, "Tgrad": layer.T.grad}, f"{out_dir}/rank{rank}.pt")
        dist.barrier()  # leave together: a rank tearing gloo down mid-exchange aborts the other
    finally:
        dist.destroy_process_group()


def test_global_batch_two_ranks(tmp_path):
    """global_batch over 2 gloo ranks of 5 rows each equals one process with the 10 rows: o, the input gradients,
    and the T gradients summed over the ranks (what DDP's all-reduce would average)."""
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    ref_layer = MinibatchDiscrimination(8, kernels=4, kernel_dim=3)
    f_all = torch.randn(10, 8)
    with rendezvous() as addr:
        mp.spawn(_two_rank_worker, args=(addr, f_all, ref_layer.state_dict(), str(tmp_path)), nprocs=2)
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    f = f_all.clone().requires_grad_(True)
    out = ref_layer(f)
    out.square().sum().backward()
    close(torch.cat([r["out"] for r in res]), out.detach(), torch.float32, "o over the global batch")
    close(torch.cat([r["fgrad"] for r in res]), f.grad, torch.float32, "input gradients")
    close(res[0]["Tgrad"] + res[1]["Tgrad"], ref_layer.T.grad, torch.float32, "T gradient summed over ranks")


def _uneven_worker(rank, path, out_dir):
    import torch.distributed as dist

    join(path, rank, 2)
    try:
        layer = MinibatchDiscrimination(4, kernels=2, kernel_dim=2, global_batch=True)
        try:
            layer(torch.randn(3 + rank, 4))
            msg = "no error"
        except ValueError as e:
            msg = str(e)
        with open(f"{out_dir}/rank{rank}.txt", "w") as fh:
            fh.write(msg)
        dist.barrier()  # leave together: a rank tearing gloo down mid-exchange aborts the other
    finally:
        dist.destroy_process_group()


def test_global_batch_uneven_sizes_raise_on_every_rank(tmp_path):
    import torch.multiprocessing as mp

    with rendezvous() as addr:
        mp.spawn(_uneven_worker, args=(addr, str(tmp_path)), nprocs=2)
    for r in range(2):
        text = (tmp_path / f"rank{r}.txt").read_text()
        assert "global_batch needs the same batch size on every rank, got [3, 4]" in text


def test_triton_grid_axes():
    """Row blocks on grid axis 0, the K kernels on axis 1 (CUDA's 65535 limit): a larger K is refused clearly."""
    from fastgan._triton import minibatch_discrimination as tk

    bi, bj, _ = tk.config(256, 100, False)
    assert bi in (8, 16, 32) and bj == 32
    a = torch.zeros(2, tk.MAX_GRID_Y + 1, 1)
    with pytest.raises(ValueError, match="at most 65535 kernels"):
        tk._launch(0, a, a, torch.zeros(2, tk.MAX_GRID_Y + 1))
