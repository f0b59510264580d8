"""fastgan.fuse: finds Linear / Conv layers followed by an activation (and a scale, a clamp) in a model fastgan did not
write, and makes each pair one GEMM / conv without bias plus one fastgan.bias_act. See docs/fuse.md."""
from __future__ import annotations

import copy
import inspect
from collections import Counter
from dataclasses import dataclass, field

from torch import fx, nn
from torch.nn.parallel import DistributedDataParallel

from ...backend import IMPLS, NATIVE_LINEAR_CPU, NATIVE_LINEAR_WHY
from .layers import Epilogue, FusedAway, FusedLayer, fused_class, stock_base
from .match import Refused, Step, module_step, node_step

__all__ = ["fuse", "FuseReport", "FusedPair", "NotFused"]

_RANK = {"identity": 0, "act": 1, "scale": 2, "clamp": 3}


@dataclass(frozen=True)
class FusedPair:
    """One fused layer: its module path, what it absorbed (module paths, or `path.forward: node` for fx calls), the
    bias_act it now runs, how it was found ('sequential' | 'fx' | 'already fused') and a note on exactness."""

    layer: str
    absorbed: tuple
    epilogue: Epilogue
    how: str
    note: str | None = None


@dataclass(frozen=True)
class NotFused:
    """A layer (or a module) that looked fusable and was left exactly as it was, and why."""

    path: str
    reason: str


@dataclass
class FuseReport:
    impl: str | None  # None: the backend in force when the fused ops run
    fused: list = field(default_factory=list)  # FusedPair, fused by this call
    already_fused: list = field(default_factory=list)  # FusedPair, found fused (fusing is idempotent)
    not_fused: list = field(default_factory=list)  # NotFused: pairs left as they were
    untraced: list = field(default_factory=list)  # NotFused: modules torch.fx could not rewrite (walked child by child)

    def __str__(self) -> str:
        lines = [f"fastgan.fuse (impl={self.impl!r}): {len(self.fused)} fused, {len(self.already_fused)} already "
                 f"fused, {len(self.not_fused)} not fused"]
        for p in self.fused + self.already_fused:
            what = " + ".join(p.absorbed) if p.absorbed else "-"
            lines.append(f"  {p.how:13s} {p.layer or '<root>'} <- {what}: {p.epilogue}" + (f" [{p.note}]" if p.note
                                                                                           else ""))
        lines += [f"  not fused     {n.path or '<root>'}: {n.reason}" for n in self.not_fused]
        lines += [f"  not traced    {n.path or '<root>'}: {n.reason}" for n in self.untraced]
        return "\n".join(lines)


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


@dataclass
class _Candidate:
    layer_path: str
    layer: nn.Module
    base: type
    steps: list  # [(Step, ref)]: ref the Sequential key or the fx node
    how: str
    container: nn.Module
    container_path: str
    node: fx.Node | None = None  # the layer's call (fx)


class _LeafTracer(fx.Tracer):
    """Every submodule is a leaf: a module's graph shows the calls of its submodules, each analysed on its own."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _trace(m: nn.Module) -> fx.Graph | str:
    """The graph of m.forward, or why torch.fx cannot stand in for it."""
    if "forward" in vars(m):
        return "its forward is replaced on the instance"
    sig = inspect.signature(type(m).forward)
    params = list(sig.parameters.values())[1:]
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.default is not p.empty for p in params):
        return "forward has optional, keyword-only or variadic arguments (fx would specialise them)"
    mods = list(m.modules())
    before = [dict(vars(s)) for s in mods]
    training = [s.training for s in mods]
    codes = []
    try:
        for mode in (True, False):
            for s in mods:
                s.training = mode
            graph = _LeafTracer().trace(m)
            codes.append(graph.python_code("self").src)
    except Exception as e:  # noqa: BLE001  (any failure of tracing: the module is walked child by child)
        return f"torch.fx cannot trace its forward ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    finally:
        changed = False
        for s, b, t in zip(mods, before, training):
            s.training = t
            b["training"] = t
            if set(vars(s)) != set(b) or any(vars(s)[k] is not v for k, v in b.items()):
                changed = True
                vars(s).clear()
                vars(s).update(b)
    if changed:
        return "its forward writes module attributes (a traced graph would not)"
    if codes[0] != codes[1]:
        return "its forward depends on self.training (a traced graph would fix one mode)"
    return graph


class _Planner:
    def __init__(self, model: nn.Module, impl: str | None, trace: bool):
        self.model, self.impl, self.trace = model, impl, trace
        self.report = FuseReport(impl)
        self.candidates: list[_Candidate] = []
        self.calls: Counter = Counter()
        self.paths: dict[int, list] = {}
        for path, m in model.named_modules(remove_duplicate=False):
            self.paths.setdefault(id(m), []).append(path)
        self.graphs: dict[int, tuple] = {}  # id(container) -> (container, graph)

    def walk(self) -> None:
        for path, m in self.model.named_modules():
            if isinstance(m, FusedLayer):
                self.report.already_fused.append(FusedPair(path, (), m.fastgan_epilogue, "already fused"))
            elif isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
                self._sequential(path, m)
            elif self.trace and not type(m).__module__.startswith("torch.") and not isinstance(m, FusedAway) and \
                    any(stock_base(d) is not None or isinstance(d, FusedLayer) for d in m.modules() if d is not m):
                self._fx(path, m)

    @staticmethod
    def _chain(first, nxt, classify):
        """[(Step, ref)] after a layer: ref = first, then nxt(ref) while it returns one; classify(prev, ref) is the
        element ref is. Also the Refused that stopped the chain before its first element (else None)."""
        steps, rank, prev, ref = [], 0, None, first
        while ref is not None:
            st = classify(prev, ref)
            if isinstance(st, Refused):
                return steps, (st if not steps else None)
            if st is None or (_RANK[st.kind] <= rank and st.kind != "identity"):
                break
            steps.append((st, ref))
            rank = max(rank, _RANK[st.kind])
            if st.kind == "clamp":
                break
            prev, ref = ref, nxt(ref)
        return steps, None

    def _sequential(self, path: str, seq: nn.Sequential) -> None:
        keys = list(seq._modules)
        i = 0
        while i < len(keys):
            layer = seq._modules[keys[i]]
            base = stock_base(layer)
            if base is None:
                i += 1
                continue
            self.calls[id(layer)] += 1
            pos = {k: j for j, k in enumerate(keys)}
            steps, refused = self._chain(
                keys[i + 1] if i + 1 < len(keys) else None,
                lambda k: keys[pos[k] + 1] if pos[k] + 1 < len(keys) else None,
                lambda _, k: module_step(seq._modules[k]))
            lp = _join(path, keys[i])
            if refused:
                self.report.not_fused.append(NotFused(lp, f"followed by {refused.what}: {refused.reason}"))
            if steps:
                self.candidates.append(_Candidate(lp, layer, base, steps, "sequential", seq, path))
            i += 1 + len(steps)

    def _fx(self, path: str, m: nn.Module) -> None:
        graph = _trace(m)
        if isinstance(graph, str):
            self.report.untraced.append(NotFused(path, graph + "; its children are walked one by one"))
            return
        modules = dict(m.named_modules())
        found = False
        for node in graph.nodes:
            if node.op != "call_module":
                continue
            sub = modules[node.target]
            self.calls[id(sub)] += 1
            base = stock_base(sub)
            if base is None:
                continue
            users = list(node.users)
            lp = _join(path, node.target)
            if len(users) > 1:
                if any(isinstance(node_step(u, node, modules), (Step, Refused)) for u in users):
                    self.report.not_fused.append(NotFused(lp, f"its output is used {len(users)} times in "
                                                              f"{path or '<root>'}.forward (fusing would change "
                                                              "what the other users read)"))
                continue

            steps, refused = self._chain(
                users[0] if users else None,
                lambda n: next(iter(n.users)) if len(n.users) == 1 else None,
                lambda p, n, first=node: node_step(n, first if p is None else p, modules))
            if refused:
                self.report.not_fused.append(NotFused(lp, f"followed by {refused.what}: {refused.reason}"))
            if steps:
                found = True
                self.candidates.append(_Candidate(lp, sub, base, steps, "fx", m, path, node))
        if found:
            self.graphs[id(m)] = (m, graph)

    def check(self) -> list[_Candidate]:
        """Drops the candidates that cannot be fused (reported), raises on hooks fusing would bypass."""
        keep, errors = [], []
        for c in self.candidates:
            reason = None
            if len(self.paths[id(c.layer)]) > 1:
                reason = f"the same module is registered at {len(self.paths[id(c.layer)])} paths " \
                         f"({', '.join(p or '<root>' for p in self.paths[id(c.layer)])})"
            elif self.calls[id(c.layer)] != 1:
                reason = f"it is called from {self.calls[id(c.layer)]} places"
            elif c.layer.bias is None:
                reason = "it has no bias (bias=False): there is no bias to fuse with the activation"
            elif isinstance(c.layer, nn.modules.lazy.LazyModuleMixin):
                reason = "it is a lazy module not yet initialised (run one forward first)"
            if reason:
                self.report.not_fused.append(NotFused(c.layer_path, reason))
                continue
            for kind in ("_forward_hooks", "_backward_hooks", "_backward_pre_hooks"):
                if getattr(c.layer, kind):
                    errors.append(f"{c.layer_path!r} ({type(c.layer).__name__}) has {kind[1:]}: they would see the "
                                  "activated output")
            for st, ref in c.steps:
                if c.how == "sequential":
                    mod, mpath = c.container._modules[ref], _join(c.container_path, ref)
                elif ref.op == "call_module":
                    mod, mpath = c.container.get_submodule(ref.target), _join(c.container_path, ref.target)
                else:
                    continue
                for kind in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks"):
                    if getattr(mod, kind):
                        errors.append(f"{mpath!r} ({type(mod).__name__}) has {kind[1:]}: fusing removes its call")
            keep.append(c)
        if errors:
            raise ValueError("fuse: module hooks on modules it would fuse (remove them, or register them after "
                             "fusing):\n  " + "\n  ".join(errors))
        return keep

    def apply(self, keep: list[_Candidate]) -> None:
        rewrite = set()
        for c in keep:
            st = {s.kind: s for s, _ in c.steps}
            act = st.get("act")
            ep = Epilogue(act.act if act else "linear", act.alpha if act else 0.0,
                          st["scale"].value if "scale" in st else 1.0,
                          st["clamp"].value if "clamp" in st else None, self.impl)
            c.layer.__class__ = fused_class(type(c.layer), c.base)
            c.layer.fastgan_epilogue = ep
            key = c.layer_path[len(c.container_path) + 1:] if c.container_path else c.layer_path
            if c.how == "sequential":
                absorbed = tuple(f"{_join(c.container_path, k)} ({s.what})" for s, k in c.steps)
                for s, k in c.steps:
                    c.container._modules[k] = FusedAway(key, s.what)
            else:
                absorbed = tuple(f"{c.container_path or '<root>'}.forward: {n.name} ({s.what})" for s, n in c.steps)
                c.steps[-1][1].replace_all_uses_with(c.node)
                for _, n in reversed(c.steps):
                    n.graph.erase_node(n)
                rewrite.add(id(c.container))
            note = next((s.note for s, _ in c.steps if s.note), None)
            if c.base is nn.Linear and ep.act in NATIVE_LINEAR_CPU and ep.gain == 1.0 and ep.clamp is None:
                note = f"{note}; {NATIVE_LINEAR_WHY}" if note else NATIVE_LINEAR_WHY
            self.report.fused.append(FusedPair(c.layer_path, absorbed, ep, c.how, note))
        for cid in rewrite:
            m, graph = self.graphs[cid]
            graph.lint()
            forward = type(fx.GraphModule(m, graph, class_name=type(m).__name__)).forward
            cls = type(m)
            m.__class__ = type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__,
                                                      "_fastgan_fx_rewritten": True})


def fuse(module: nn.Module, inplace: bool = False, impl: str | None = None, *, trace: bool = True,
         report: bool = False):
    """Fuses each Linear / Conv / ConvTranspose layer with a bias that is followed by an activation (and optionally a
    positive constant scale and a symmetric Hardtanh clamp) into the GEMM / conv without bias plus one fastgan.bias_act.

    inplace: False (default) fuses a deep copy (new Parameter objects); True fuses `module` itself (the same
        Parameter objects: optimisers and DistributedDataParallel keep working).
    impl: the backend the fused ops run on; None (default): the backend in force when they run
        (fastgan.current_backend(), as for every fastgan module; under torch.compile, the one in force when the graph
        was traced).
    trace: also find pairs in the forward of modules other than nn.Sequential with torch.fx (default True).
    report: also return a FuseReport: (fused_module, report).
    The state_dict keys and named_parameters() order are those of `module`. See docs/fuse.md.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    for name, v in (("inplace", inplace), ("trace", trace), ("report", report)):
        if not isinstance(v, bool):
            raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    if impl is not None and (not isinstance(impl, str) or impl not in IMPLS):
        raise ValueError(f"impl: expected None or one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_meta:
            raise ValueError(f"module: {name!r} is on the meta device; fuse needs a materialised model (to_empty(), "
                             "then load its state_dict)")
    if isinstance(module, DistributedDataParallel) and not inplace:
        raise TypeError("module: a DistributedDataParallel cannot be deep-copied; fuse the model before wrapping it "
                        "(DistributedDataParallel(fuse(model))), or pass inplace=True to fuse its .module in place "
                        "(the Parameter objects DDP holds stay the same)")
    model = module if inplace else copy.deepcopy(module)
    planner = _Planner(model, impl, trace)
    planner.walk()
    planner.apply(planner.check())
    return (model, planner.report) if report else model
