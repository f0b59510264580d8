"""The CUDA toolkit setup.py builds with (fastgan/_toolkit.py; issue 28, finding 2). torch guesses CUDA_HOME as the
folder above the `nvcc` on the PATH: for a launcher script in a bin folder that execs the toolkit's own nvcc (as on
the CPU machines: /usr/local/bin/nvcc -> /usr/local/cuda-13.0/bin/nvcc) that folder has no libcudart and the link
failed. The finder asks nvcc where it lives. Fake toolkits made here, so no CUDA is needed."""
import os
import stat
from pathlib import Path

import pytest

from fastgan import _toolkit


def _exe(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _toolkit_at(root: Path) -> Path:
    """A fake toolkit: bin/nvcc answering --dryrun as nvcc does (its own bin folder as _HERE_), lib64/libcudart.so."""
    _exe(root / "bin" / "nvcc", f'#!/bin/sh\necho "#$ _HERE_={root}/bin" >&2\necho "#$ _THERE_={root}/bin" >&2\n')
    (root / "lib64").mkdir(parents=True)
    (root / "lib64" / "libcudart.so").write_text("")
    return root


@pytest.fixture
def launcher_setup(tmp_path):
    """The CPU machines' layout: a launcher `nvcc` in <prefix>/bin that execs the real one elsewhere."""
    real = _toolkit_at(tmp_path / "cuda-13.0")
    prefix = tmp_path / "local"
    _exe(prefix / "bin" / "nvcc", f'#!/bin/sh\nexec {real}/bin/nvcc "$@"\n')
    return real, prefix


def test_the_launcher_folder_is_not_a_toolkit_but_the_one_nvcc_names_is(launcher_setup):
    real, prefix = launcher_setup
    # torch's guess (the folder above the nvcc on the PATH) is the prefix, which has no libcudart
    assert not _toolkit.is_toolkit(prefix)
    home, how = _toolkit.find_cuda_toolkit({"PATH": str(prefix / "bin")})
    assert home == str(real) and "the nvcc on the PATH" in how


def test_cuda_home_wins_when_it_is_a_toolkit_and_is_passed_over_with_a_note_when_not(launcher_setup, tmp_path):
    real, prefix = launcher_setup
    other = _toolkit_at(tmp_path / "cuda-other")
    assert _toolkit.find_cuda_toolkit({"PATH": str(prefix / "bin"), "CUDA_HOME": str(other)})[0] == str(other)
    home, how = _toolkit.find_cuda_toolkit({"PATH": str(prefix / "bin"), "CUDA_HOME": str(prefix)})
    assert home == str(real) and f"CUDA_HOME={prefix} is not a toolkit" in how


def test_no_nvcc_anywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(_toolkit, "is_toolkit", lambda folder: False)  # whatever this machine has in /usr/local
    home, how = _toolkit.find_cuda_toolkit({"PATH": str(tmp_path)})
    assert home is None and "no CUDA toolkit found" in how


def test_setup_py_uses_the_finder_before_cpp_extension_reads_cuda_home():
    text = (Path(__file__).resolve().parent.parent / "setup.py").read_text()
    assert text.index('os.environ["CUDA_HOME"] = TOOLKIT') < text.index("from torch.utils.cpp_extension import")
    assert os.path.exists(_toolkit.__file__)
