"""Linear mode connectivity and Hessian curvature, against closed forms and explicit Hessians."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.landscape import Curvature, error_barrier, interpolate, linear_path


def test_interpolation_ends_are_the_states_bitwise_and_counters_stay_integers():
    a = {"w": torch.tensor([-0.0, 1.0, 2.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([0.0, 3.0, -2.0]), "n": torch.tensor(9)}
    assert torch.equal(interpolate(a, b, 0)["w"].signbit(), a["w"].signbit())
    assert torch.equal(interpolate(a, b, 1)["w"].signbit(), b["w"].signbit())
    mid = interpolate(a, b, 0.25)
    assert torch.allclose(mid["w"], torch.tensor([0.0, 1.5, 1.0]))
    assert mid["n"].dtype == torch.int64 and int(mid["n"]) == 7
    with pytest.raises(ValueError, match="different models"):
        interpolate(a, {"w": b["w"]}, 0.5)


def test_error_barrier_is_the_peak_above_the_ends_mean():
    assert error_barrier([0.1, 0.3, 0.6, 0.2, 0.3]) == pytest.approx(0.6 - 0.2)
    assert error_barrier([0.2, 0.15, 0.2]) == pytest.approx(0.0)  # a dip in between is no barrier: the ends are the max


def test_linear_path_loads_each_state_in_turn():
    model = nn.Linear(1, 1, bias=False)
    a, b = {"weight": torch.tensor([[0.0]])}, {"weight": torch.tensor([[2.0]])}
    rows = linear_path(model, a, b, lambda: {"w": float(model.weight.detach())}, points=5)
    assert [r["alpha"] for r in rows] == [0, 0.25, 0.5, 0.75, 1]
    assert [r["w"] for r in rows] == [0.0, 0.5, 1.0, 1.5, 2.0]


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    scale = torch.tensor([3.0, 1.0, 1.0, 1.0])  # one input dominates: a clear gap under the top eigenvalue
    batches = [(torch.randn(16, 4) * scale, torch.randint(0, 3, (16,))) for _ in range(2)]
    return model, batches


def _explicit_hessian(model: nn.Linear, batches, keep: torch.Tensor) -> torch.Tensor:
    """The Hessian of the mean of the batches' losses over (weight, bias) flattened, on the kept coordinates."""
    def loss(flat: torch.Tensor) -> torch.Tensor:
        w, b = flat[:12].view(3, 4), flat[12:]
        return sum(F.cross_entropy(x @ w.T + b, y) for x, y in batches) / len(batches)
    flat = torch.cat([model.weight.detach().flatten(), model.bias.detach()]).double()
    batches = [(x.double(), y) for x, y in batches]
    h = torch.autograd.functional.hessian(loss, flat)
    index = torch.nonzero(keep).flatten()
    return h[index][:, index]


def test_top_eigenvalue_and_trace_match_the_explicit_hessian_on_the_unpruned_coordinates():
    model, batches = _problem()
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[0, 1] = mask[2, 3] = mask[1, 0] = False
    with torch.no_grad():
        model.weight[~mask] = 0
    h = _explicit_hessian(model, batches, torch.cat([mask.flatten(), torch.ones(3, dtype=torch.bool)]))
    curvature = Curvature(model, {"weight": mask}, batches)
    top, used = curvature.top_eigenvalue(100, torch.Generator().manual_seed(0), tol=1e-7)
    assert top == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-5)
    assert 2 < used < 100  # stopped by the tolerance
    trace = curvature.trace(4000, torch.Generator().manual_seed(0))
    assert trace == pytest.approx(float(torch.diagonal(h).sum()), rel=0.05)
    assert curvature.products == used + 4000
    assert curvature.top_eigenvalue(3, torch.Generator().manual_seed(0), tol=0)[1] == 3  # the cap


def test_the_full_hessian_has_a_larger_top_eigenvalue_than_a_masked_one():
    """Cauchy interlacing: a principal submatrix's top eigenvalue is at most the whole's (a mask that did
    nothing would give equal values)."""
    model, batches = _problem(1)
    full, _ = Curvature(model, {}, batches).top_eigenvalue(100, torch.Generator().manual_seed(0), tol=1e-7)
    h = _explicit_hessian(model, batches, torch.ones(15, dtype=torch.bool))
    assert full == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-5)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:, 0] = True
    masked, _ = Curvature(model, {"weight": mask}, batches).top_eigenvalue(100, torch.Generator().manual_seed(0), tol=1e-7)
    assert masked < full - 1e-3


def test_curvature_leaves_the_model_and_its_bn_statistics_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))]
    Curvature(model, {}, batches).top_eigenvalue(3, torch.Generator().manual_seed(0))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
