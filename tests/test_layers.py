"""The package's layers only look down (docs/design.md, "Layers"; issue 17): every import inside fastgan/ — at module
level or in a function — goes to the same layer or one below, the import graph has no cycle, and a function-level
import of a fastgan module exists only where laziness is the point (the optional Triton kernels; the command line's
start-up), never to dodge a cycle."""
import ast
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "fastgan"
# the trees the walker reads, as the modules they are imported as: kernels/ is installed as fastgan._triton
TREES = {"fastgan": PKG, "fastgan._triton": ROOT / "kernels", "bench": ROOT / "bench"}

# lowest first; a module may import its own layer and the layers below
LAYERS = [
    ("base", ["fastgan._checks", "fastgan.activations", "fastgan._ext", "fastgan.allocator"]),
    ("kernels (fastgan._triton)", ["fastgan._triton", "fastgan._triton.*"]),
    ("backend", ["fastgan.backend"]),
    ("ops", ["fastgan.ops", "fastgan.ops.*"]),
    ("nn, data, metrics", ["fastgan.nn", "fastgan.nn.*", "fastgan.data", "fastgan.data.*", "fastgan.metrics",
                           "fastgan.metrics.*", "fastgan.benchmarking"]),
    ("losses, penalties", ["fastgan.losses", "fastgan.penalties", "fastgan.penalties.*"]),
    ("train", ["fastgan.train", "fastgan.train.*"]),
    ("cli", ["fastgan.cli", "fastgan.__main__", "fastgan"]),
    ("bench (the benchmark scripts, outside the package)", ["bench", "bench.*"]),
]
LAZY_TARGETS = ["fastgan._triton", "fastgan._triton.*"]  # kernels/: imports triton, which is optional
# the command line and the benchmark scripts import what a subcommand needs
LAZY_SOURCES = ["fastgan.cli", "fastgan.__main__", "bench", "bench.*"]


def _match(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def layer_of(module: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        if _match(module, patterns):
            return rank
    raise AssertionError(f"{module}: in no layer of tests/test_layers.py (add it to LAYERS)")


def modules() -> dict[str, Path]:
    out = {}
    for name, tree in TREES.items():
        for p in tree.rglob("*.py"):
            if name == "fastgan" and p.is_relative_to(ROOT / "kernels"):
                continue
            parts = (*name.split("."), *p.relative_to(tree).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(mods: dict[str, Path]):
    """(source, target, at module level?) for every import of a fastgan module."""
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods or
                           _match(f"{prefix}.{a.name}", LAZY_TARGETS) else prefix for a in node.names]
            else:
                continue
            for t in targets:
                if t.split(".")[0] in ("fastgan", "bench"):
                    yield mod, t, id(node) in top


def test_imports_only_look_down_and_are_not_cyclic():
    mods = modules()
    edges = [e for e in imports(mods) if not _match(e[1], LAZY_TARGETS)]
    assert len(edges) > 50, "the walker found too few imports to be right"
    reach = {s.split(".")[0] + (".kernels" if s.startswith("fastgan._triton") else "") for s, _, _ in edges}
    assert {"fastgan", "fastgan.kernels", "bench"} <= reach, f"the walker reads only {sorted(reach)}"
    upward = [f"{s} ({LAYERS[layer_of(s)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for s, t, _ in edges if layer_of(t) > layer_of(s)]
    assert not upward, "upward imports:\n" + "\n".join(upward)
    lazy = [f"{s} imports {t} inside a function" for s, t, top in edges if not top and not _match(s, LAZY_SOURCES)]
    assert not lazy, "function-level imports (move them to the top; if that makes a cycle, fix the layering):\n" + \
        "\n".join(lazy)
    graph: dict[str, set] = {}
    for s, t, _ in edges:
        if s != t and not (s.startswith(t + ".")):  # a submodule importing its own package's __init__ is loading it
            graph.setdefault(s, set()).add(t)
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_walker_sees_an_upward_and_a_cyclic_import(tmp_path, monkeypatch):
    """The check itself can fail: a fake ops module importing the trainer is reported."""
    fake = dict(modules())
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef f():\n    from ..train import Trainer\n")
    fake["fastgan.ops.bad"] = bad
    found = [(s, t, top) for s, t, top in imports(fake) if s == "fastgan.ops.bad"]
    assert found == [("fastgan.ops.bad", "fastgan.train.Trainer", False)] or \
        found == [("fastgan.ops.bad", "fastgan.train", False)]
    assert layer_of(found[0][1]) > layer_of("fastgan.ops.bad")


def test_the_package_cannot_reach_up_into_kernels_internals_or_bench(tmp_path):
    """A kernel file importing the ops layer, and a package module importing the benchmark scripts, are upward."""
    fake = dict(modules())
    k = tmp_path / "k.py"
    k.write_text("from ..ops import registry\n")
    fake["fastgan._triton.k"] = k
    b = tmp_path / "b.py"
    b.write_text("from bench.ab_steps import main\n")
    fake["fastgan.train.b"] = b
    found = {s: t for s, t, _ in imports(fake) if s in ("fastgan._triton.k", "fastgan.train.b")}
    assert layer_of(found["fastgan._triton.k"]) > layer_of("fastgan._triton.k")
    assert layer_of(found["fastgan.train.b"]) > layer_of("fastgan.train.b")
