"""The implementation matrix of the test suite (docs/design.md, "The test matrix").

- cpp: always (CI builds the extension);
- triton: on CUDA tensors where a GPU exists, else on CPU tensors under the Triton interpreter. TRITON_INTERPRET=1
  must be set before triton is imported: this file runs before any test module imports triton or fastgan, and
  sets it whenever no GPU is present (so one pytest process covers the whole matrix);
- cuda: only with a GPU (the tests exist and skip without one).
Each run draws a fresh random seed (printed at the start, and with every failure); FASTGAN_TEST_SEED=N repeats one.
"""
import contextlib
import datetime
import os
import random
import zlib

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import fastgan  # noqa: E402
from fastgan.backend import why_not  # noqa: E402

SEED = int(os.environ.get("FASTGAN_TEST_SEED", random.randrange(2**31)))

IMPL_DEVICE = {
    "cpp": "cpu",
    "triton": "cuda" if torch.cuda.is_available() else "cpu",
    "cuda": "cuda",
}


def impl_params(impls=("cpp", "triton", "cuda")):
    """pytest params for the implementations, each skipped (with the reason) where it cannot run."""
    out = []
    for impl in impls:
        dev = IMPL_DEVICE[impl]
        reason = None
        if dev == "cuda" and not torch.cuda.is_available():
            reason = "no CUDA device"
        else:
            reason = why_not(impl, dev)
        marks = [pytest.mark.skip(reason=f"{impl}: {reason}")] if reason else []
        if impl == "cuda":
            marks.append(pytest.mark.cuda)
        out.append(pytest.param(impl, id=impl, marks=marks))
    return out


def pytest_report_header(config):
    return [f"fastgan seed: FASTGAN_TEST_SEED={SEED}", f"fastgan backends: {fastgan.backend_info()}"]


TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def close(actual, expected, dtype, what):
    """The dtype's relative tolerance; the absolute part scales with the expected tensor's magnitude."""
    tol = TOL[dtype]
    scale = max(1.0, expected.detach().abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}")


@pytest.fixture(autouse=True)
def _seed(request):
    seed = (SEED + zlib.crc32(request.node.nodeid.encode())) % 2**31
    torch.manual_seed(seed)
    random.seed(seed)
    print(f"seed for this test: {seed} (FASTGAN_TEST_SEED={SEED})")
    yield


@pytest.fixture
def device_of():
    return lambda impl: torch.device(IMPL_DEVICE[impl])


@contextlib.contextmanager
def rendezvous():
    """A rendezvous for multi-process tests: this process runs a TCPStore server on a loopback port the OS assigns as
    it binds (port 0), and keeps it listening until the block ends; yields the (host, port) that join() takes.
    The old way -- bind port 0, close it, hand the number to rank 0 to bind again seconds later -- left a window in
    which any outgoing connection could take the port (issue 20's "1 run in 10" failure of a 2-process test); a
    file:// store aborted a rank at exit about 1 run in 6 ("terminate called without an active exception")."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                          timeout=datetime.timedelta(seconds=120))
    try:
        yield ("127.0.0.1", store.port)
    finally:
        del store


def join(addr, rank: int, world_size: int, timeout_s: float = 120.0) -> None:
    """init_process_group (gloo) for `rank` of `world_size` through the rendezvous() at addr; a rank that waits
    longer than timeout_s for the others fails instead of hanging the suite."""
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(addr[0], addr[1], is_master=False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size, timeout=timeout)
