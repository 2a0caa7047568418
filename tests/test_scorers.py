"""Scorers against hand computations, GraSP's sign, SynFlow's conservation, and that scoring changes nothing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.api import ScoreContext, get_scorer
from prunebench.data import DataCache
from prunebench.masks import allocate, full_masks, prunable_parameters
from prunebench.runner import build_session
from prunebench.spec import ExecSettings, PrunableSpec
from prunebench.store import RunDir
from tests.conftest import tiny_spec

SCORERS = ["magnitude", "random", "snip", "grasp", "synflow"]


def tiny_net(*widths: int, bias: bool = True, act: type[nn.Module] = nn.Tanh) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b, bias=bias), act()]
    return nn.Sequential(*layers[:-1]).double()


def context(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks=None) -> ScoreContext:
    """A ScoreContext over fixed data, served in batches of 3 (so scorers must accumulate correctly)."""
    params = prunable_parameters(model, PrunableSpec())

    def batches(n):
        for i in range(0, min(n, len(x)), 3):
            yield x[i:min(i + 3, n)], y[i:min(i + 3, n)]

    return ScoreContext(model, params, masks or full_masks(params), batches, torch.Generator().manual_seed(0), 3)


def data(n: int = 8, features: int = 5):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, features, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_snip_is_abs_grad_times_weight_on_the_same_batch():
    model = tiny_net(5, 4, 3)
    x, y = data()
    scores = get_scorer("snip")(context(model, x, y), examples=7)
    F.cross_entropy(model(x[:7]), y[:7]).backward()  # hand computation: one batch of the same 7 examples
    for name, p in prunable_parameters(model, PrunableSpec()).items():
        expected = (p.grad * p).abs()
        assert (scores[name] - expected).abs().max() < 1e-15 * expected.abs().max().clamp(min=1), name


def flat_loss(model: nn.Module, names: list[str], x, y, temperature: float):
    """The mean loss as a function of the prunable weights flattened into one vector."""
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]

    def loss(theta):
        chunks = theta.split([s.numel() for s in shapes])
        weights = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return F.cross_entropy(torch.func.functional_call(model, weights, (x,)) / temperature, y)

    return loss, torch.cat([params[n].detach().reshape(-1) for n in names])


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_equals_weight_times_explicit_hessian_times_gradient(temperature):
    model = tiny_net(5, 4, 3)
    x, y = data()
    names = list(prunable_parameters(model, PrunableSpec()))
    scores = get_scorer("grasp")(context(model, x, y), examples=8, temperature=temperature)
    loss, theta = flat_loss(model, names, x, y, temperature)
    hessian = torch.autograd.functional.hessian(loss, theta)
    gradient = torch.autograd.functional.jacobian(loss, theta)
    expected = theta * (hessian @ gradient)
    got = torch.cat([scores[n].reshape(-1) for n in names])
    assert (got - expected).abs().max() <= 1e-12 * expected.abs().max()


def test_grasp_prunes_first_the_weight_whose_removal_raises_gradient_flow_most():
    """Wang et al. remove the top of S = -w * Hg: removing weight q changes |g|^2 by about 2 S_q, so the
    weight whose removal increases the gradient norm most goes first and the one whose removal
    decreases it most stays last. Measured here by finite differences of |g|^2, independent of any Hessian."""
    model = tiny_net(5, 4, 3)
    x, y = data()
    names = list(prunable_parameters(model, PrunableSpec()))
    ctx = context(model, x, y)
    scores = get_scorer("grasp")(ctx, examples=8, temperature=1.0)
    loss, theta = flat_loss(model, names, x, y, 1.0)

    def flow(t):
        return torch.autograd.functional.jacobian(loss, t).pow(2).sum()

    eps = 1e-6
    change = torch.stack([(flow(theta - eps * theta[q] * torch.eye(len(theta), dtype=theta.dtype)[q]) - flow(theta)) / eps
                          for q in range(len(theta))])  # d|g|^2 when weight q moves towards removal
    n = len(theta)
    pruned_first = allocate(scores, ctx.masks, (n - 1) / n, "global")
    kept_last = allocate(scores, ctx.masks, 1 / n, "global")
    flat = lambda masks: torch.cat([masks[k].reshape(-1) for k in names])  # noqa: E731
    assert (~flat(pruned_first)).nonzero().item() == change.argmax().item()
    assert flat(kept_last).nonzero().item() == change.argmin().item()


def test_synflow_matches_the_closed_form_of_a_two_layer_linear_network():
    """R = 1'|W2||W1|1, so score(W1) = |W1| * (column sums of |W2|) per row and score(W2) = |W2| * (row sums of |W1|)."""
    model = tiny_net(5, 4, 3, bias=False, act=nn.Identity).float()
    x, y = data()
    masks = full_masks(prunable_parameters(model, PrunableSpec()))
    masks["0.weight"][1, 2] = False
    w1, w2 = (model[0].weight.detach().double() * masks["0.weight"]).abs(), model[2].weight.detach().double().abs()
    scores = get_scorer("synflow")(context(model, x.float(), y, masks))
    assert scores["0.weight"].dtype == torch.float64
    assert scores["0.weight"][1, 2] == 0
    expected = {"0.weight": w1 * w2.sum(0)[:, None], "2.weight": w2 * w1.sum(1)[None, :]}
    for name, e in expected.items():
        assert (scores[name] - e).abs().max() <= 1e-15 * e.max(), name


def test_synflow_conserves_flow_layer_by_layer():
    """In a bias-free linear chain every layer's scores sum to the same total R (Tanaka et al., Theorem 1)."""
    model = tiny_net(6, 9, 4, 7, 3, bias=False, act=nn.Identity)
    x, y = data(features=6)
    sums = torch.stack([s.sum() for s in get_scorer("synflow")(context(model, x, y)).values()])
    assert (sums.max() - sums.min()) <= 1e-13 * sums.max()


def bn_session(tmp_path, seed=0):
    spec = tiny_spec(seed=seed, model={"name": "resnet20", "options": {"width": 4}})
    run = RunDir(tmp_path, spec)
    run.start({})
    return build_session(spec, run, ExecSettings(), DataCache(), torch.device("cpu"))


@pytest.mark.parametrize("training", [True, False])
def test_scoring_changes_no_weight_buffer_statistic_grad_or_mode(tmp_path, training):
    s = bn_session(tmp_path)
    s.train(stop="3it")  # non-trivial BN statistics, gradients and momentum
    s.prune(s.score("magnitude"), density=0.5)
    s.model.train(training)
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in s.model.named_parameters()}
    for name in SCORERS:
        scores = s.score(name)
        assert set(scores) == set(s.prunable) and all(scores[n].shape == p.shape for n, p in s.prunable.items())
        assert all(torch.isfinite(v).all() for v in scores.values()), name
        after = s.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), name  # incl. running_mean/var, num_batches_tracked
        assert all(torch.equal(grads[n], p.grad) for n, p in s.model.named_parameters()), name
        assert all(m.training == training for m in s.model.modules()), name


def test_scores_are_reproducible_for_a_seed(tmp_path):
    first, second, other = (bn_session(tmp_path / d, seed) for d, seed in (("a", 0), ("b", 0), ("c", 1)))
    for name in SCORERS:
        a, b, c = first.score(name), second.score(name), other.score(name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert any(not torch.equal(a[k], c[k]) for k in a), name  # another seed: other init (and data, draws)
