"""R1 in the trainer (Recipe.real_logits, Recipe.r1_weight): one forward of D over the real batch serves the loss and
the penalty and gives the old two-forward gradients (batch norm included: only the running statistics' extra update is
gone), lazy R1 (cfg.extra['r1_every']) on the right steps with the right weight, the options' checks. The fused-vs-
eager twins with R1: tests/test_train.py (test_r1_fused_and_eager_twin_gradients)."""
import pytest
import torch

from fastgan import losses
from fastgan.penalties import gradient_penalty
from fastgan.train import Trainer, config_for
from fastgan.train.recipes import StepContext

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False)


@pytest.fixture
def fp64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _buffers(net):
    return {k: v.clone() for k, v in net.named_buffers()}


@pytest.mark.parametrize("model, kw", [("gan", dict(batch_norm=True)), ("bigan", dict(batch_norm=True)),
                                       ("gan", dict(batch_norm=False)), ("improved", {})])
def test_one_forward_gives_the_two_forward_gradients(model, kw, fp64):
    """D's R1 step from one forward over the real inputs vs the old loss forward + gradient_penalty's own forward:
    the same gradients (fp64, 1e-10). With batch norm the penalty's second forward had updated the running
    statistics a second time with the same batch; now they hold one update per batch, as without R1."""
    t = Trainer(config_for(model, steps=1, extra={"r1": 0.7}, **TINY, **kw))
    recipe, D = t.recipe, t.recipe.nets["D"]
    x = t.train_x[:32].double()
    gen = torch.Generator().manual_seed(5)
    ctx = t.context()
    with torch.no_grad():
        real, fake = recipe.d_inputs(ctx, x, gen) if model != "improved" else ((x,), (recipe.nets["G"](
            recipe.latent(ctx, 32, gen)),))
    params = recipe.params("D")
    start = ({k: v.clone() for k, v in D.state_dict().items()})
    calls = []
    D.register_forward_hook(lambda *a: calls.append(1))

    l_real, l_fake = D(*real), D(*fake)
    pen = gradient_penalty(D, real if len(real) > 1 else real[0], kind="r1", weight=0.7, fused=False)
    old = torch.autograd.grad(losses.gan_d_loss(l_real, l_fake) + pen, params)
    old_buffers, old_calls = _buffers(D), len(calls)

    D.load_state_dict(start)
    with torch.no_grad():
        D(*real), D(*fake)
    one_update = _buffers(D)
    D.load_state_dict(start)
    calls.clear()
    l_real2, r1 = recipe.real_logits(ctx, real)
    new = torch.autograd.grad(losses.gan_d_loss(l_real2, D(*fake)) + r1, params)
    assert (old_calls, len(calls)) == (3, 2)  # D's forwards: real, fake (+ real again for the old penalty)
    torch.testing.assert_close(r1, pen, rtol=1e-12, atol=0)
    scale = max(g.abs().max().item() for g in old)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * scale)
    assert all(torch.equal(v, one_update[k]) for k, v in _buffers(D).items())
    if kw.get("batch_norm"):
        assert any(not torch.equal(v, old_buffers[k]) for k, v in one_update.items() if "running" in k)


def _d_grads(model, step, monkeypatch, **extra):
    t = Trainer(config_for(model, steps=4, extra=extra, **TINY))
    got = []
    monkeypatch.setattr(t.recipe, "apply", lambda ctx, group, g: got.append((group, [y.clone() for y in g])))
    x = t.train_x[:32]
    t.recipe.step(StepContext(opts=t.opts, step=step), lambda: x, t.gen)
    return [g for group, g in got if group == "D"][0]


@pytest.mark.parametrize("model", ["gan", "hinge"])
def test_lazy_r1_weights_its_steps_by_k(model, monkeypatch):
    """--r1-every K: on D's steps k with k % K == 0 the penalty weighs K * gamma (here 4 x 0.5 = 1 x 2, bit for bit),
    on the others there is none (= r1 0)."""
    lazy = dict(r1=0.5, r1_every=4)
    for step, same_as in ((0, dict(r1=2.0)), (1, {}), (4, dict(r1=2.0)), (7, {})):
        a, b = _d_grads(model, step, monkeypatch, **lazy), _d_grads(model, step, monkeypatch, **same_as)
        assert all(torch.equal(x, y) for x, y in zip(a, b)), (model, step)
    a, b = _d_grads(model, 0, monkeypatch, r1=2.0), _d_grads(model, 0, monkeypatch)
    assert not all(torch.equal(x, y) for x, y in zip(a, b))  # the penalty does change D's gradient


def test_the_trainer_hands_the_recipe_the_iteration_and_resumes_the_count(tmp_path, monkeypatch):
    """ctx.step is the iteration's index, and after a resume it continues from the checkpoint's (the schedule of lazy
    R1 is a function of it: nothing else to save)."""
    cfg = config_for("gan", steps=5, n_critic=2, ckpt_every=3, out=str(tmp_path / "r"),
                     extra={"r1": 0.5, "r1_every": 3}, **TINY)
    t = Trainer(cfg)
    seen, weight = [], t.recipe.r1_weight

    def record(ctx, i=0):
        seen.append((ctx.step, i, weight(ctx, i)))
        if len(seen) == 9:  # in iteration 4, after the checkpoint of step 3
            raise KeyboardInterrupt
        return seen[-1][2]

    monkeypatch.setattr(t.recipe, "r1_weight", record)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert [s[:2] for s in seen] == [(s, i) for s in range(5) for i in range(2)][:9]
    t = Trainer(cfg, resume=True)
    assert t.step == 3
    seen.clear()
    weight = t.recipe.r1_weight
    monkeypatch.setattr(t.recipe, "r1_weight",
                        lambda ctx, i=0: seen.append((ctx.step, i, weight(ctx, i))) or seen[-1][2])
    t.run()  # D's steps 6 (penalty, 3 x 0.5), 7, 8, 9 (penalty)
    assert seen == [(3, 0, 1.5), (3, 1, 0.0), (4, 0, 0.0), (4, 1, 1.5)]


def test_lazy_r1_counts_the_steps_of_d():
    t = Trainer(config_for("gan", steps=4, n_critic=3, extra={"r1": 0.25, "r1_every": 2}, **TINY))
    weights = [t.recipe.r1_weight(StepContext(opts=t.opts, step=s), i) for s in range(3) for i in range(3)]
    assert weights == [0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5]  # D's steps 0..8, every second one
    t = Trainer(config_for("gan", steps=4, **TINY))
    assert t.recipe.r1_weight(t.context()) == 0.0  # no R1 on digits by default


@pytest.mark.parametrize("model, extra, match", [
    ("gan", {"r1": -1.0}, r"extra\['r1'\]: expected a finite number >= 0"),
    ("lsgan", {"r1": float("nan")}, r"extra\['r1'\]: expected a finite number >= 0"),
    ("gan", {"r1": 1.0, "r1_every": 0}, r"extra\['r1_every'\]: expected a positive int"),
    ("bigan", {"r1": 1.0, "r1_every": 2.5}, r"extra\['r1_every'\]: expected a positive int"),
    ("infogan", {"r1": 1.0, "r1_every": True}, r"extra\['r1_every'\]: expected a positive int"),
    ("gan", {"r1_every": 16}, r"extra\['r1_every'\]: 16 without the R1 penalty"),
    ("wgan", {"r1": 1.0}, "wgan takes no option 'r1'"),
    ("wgan-gp", {"r1_every": 2}, "wgan-gp takes no option 'r1_every'"),
    ("mmdgan", {"r1": 1.0}, "mmdgan takes no option 'r1'"),
])
def test_r1_option_errors(model, extra, match):
    with pytest.raises(ValueError, match=match):
        Trainer(config_for(model, steps=1, extra=extra, **TINY))


def test_cli_r1_every(tmp_path):
    from fastgan.cli import main

    out = tmp_path / "r"
    assert main(["train", "hinge", "--steps", "2", "--hidden", "8", "--z-dim", "2", "--batch-size", "16",
                 "--no-progress", "--no-eval", "--r1", "0.5", "--r1-every", "4", "--out", str(out)]) == 0
    import json

    assert json.loads((out / "config.json").read_text())["extra"] == {"r1": 0.5, "r1_every": 4}
