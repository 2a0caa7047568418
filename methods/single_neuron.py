"""The single hidden neuron of "Masks, Signs, and Learning Rate Rewinding" (Gadhikar & Burkholz 2024, Sec. 2).

Target y = ReLU(x_1), model f(x) = a * ReLU(w^T x) without biases, x ~ U[-1, 1]^d, mean squared
error, full-batch gradient descent. ``trials`` independent initialisations train at once, as one
vectorised batch. Modes:

- ``dense``: train the d-input neuron.
- ``imp``: train dense, keep the input weight of largest magnitude, rewind to the initialisation
  (w(0) under the mask, a(0)) and train again.
- ``lrr``: train dense, keep that weight, keep the trained values and train again.

A trial succeeds when its test loss (fresh samples) falls below ``threshold``. Level 0 is the dense
network (density 1), level 1 the pruned one (density 1/d); the leaderboard's accuracy is the success
rate. Each level row also holds the rate the closed form predicts and the fraction of trials whose
outcome matches it. With ``init: dominant_a`` (a(0) = ±1, w(0) ~ N(0, 0.01 I/d), fair independent
signs, so |a(0)| > |w(0)|) the rules are exact (shared/references, derived from the Fig. 1 caption
and the conservation of a^2 - |w|^2 under gradient flow): at d = 1 any method succeeds iff w(0) > 0
and a(0) > 0 (1/4); at d > 1 dense and LRR succeed iff a(0) > 0 (1/2), IMP iff also w_1(0) > 0 (1/4).
``init: gaussian`` (w ~ N(0, I/d), a ~ N(0, 1)) makes them approximate. ``init: authors`` is the first
author's own single-neuron code (w ~ N(0, I/d), a(0) = u |w(0)| with u ~ U[-1, 1], so |a(0)| <= |w(0)|):
at d = 1 the conservation rule reduces to w(0) > 0 (a(0) + w(0) = (1 + u) w(0)), probability 1/2; at
d > 1 no closed form is derived.
"""

from typing import Literal

import torch
from pydantic import Field

from prunebench.api import Method, MethodParams, Session, register_method


@register_method("single_neuron")
class SingleNeuron(Method):
    standalone = True

    class Params(MethodParams):
        d: int = Field(ge=1, description="input dimension")
        mode: Literal["dense", "imp", "lrr"] = "dense"
        init: Literal["dominant_a", "gaussian", "authors"] = "dominant_a"
        trials: int = Field(1000, ge=1)
        steps: int = Field(300, ge=1, description="gradient-descent steps per training phase")
        lr: float = Field(0.5, gt=0)
        train_size: int = Field(256, ge=1)
        test_size: int = Field(4096, ge=1)
        threshold: float = Field(1e-3, gt=0, description="a trial succeeds when its test loss is below this")

    def run(self, s: Session, p: Params) -> None:
        g = s.rng("data")
        x_train, x_test = (torch.rand(n, p.d, generator=g, dtype=torch.float64) * 2 - 1 for n in (p.train_size, p.test_size))
        a0, w0 = initialise(p, s.rng("init"))
        dense_mask = torch.ones_like(w0)
        a, w = train(a0, w0, dense_mask, x_train, p)
        s.record(0, density=1.0, epochs=p.steps, **outcome(a, w, dense_mask, x_test, p, a0, w0, "dense"))
        if p.mode == "dense":
            return
        mask = torch.zeros_like(w).scatter_(1, w.abs().argmax(1, keepdim=True), 1.0)  # the single largest input weight
        start = (a0, w0 * mask) if p.mode == "imp" else (a, w * mask)
        a, w = train(*start, mask, x_train, p)
        s.record(1, density=1.0 / p.d, epochs=2 * p.steps, **outcome(a, w, mask, x_test, p, a0, w0, p.mode),
                 mask_on_x1=float(mask[:, 0].mean()))


def initialise(p: SingleNeuron.Params, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, w) of every trial: shapes (trials,) and (trials, d)."""
    if p.init == "dominant_a":
        a = torch.where(torch.rand(p.trials, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
        w = 0.1 * torch.randn(p.trials, p.d, generator=g, dtype=torch.float64) / p.d**0.5
    elif p.init == "authors":
        # The first author's single-neuron code, github.com/AdvaitGadhikar/optml_single_hidden_neuron
        # (file added in commit 4079633, unchanged at HEAD 6939b68), single-neuron-methods.py:142-149, neuron.initialize():
        # layer1 = nn.Linear(d, 1) (line 153) has a (1, d) weight, so line 143 unpacks in_dim = 1, width = d and
        # line 146 draws w = randn(1, d) / sqrt(d), i.e. N(0, I/d); line 149 sets
        # a = (torch.rand(1) * 2 - 1) * sqrt(sum(w ** 2)). Same order of draws: w, then a.
        # (AdvaitGadhikar/imp-lrr-lts, the paper's repository, holds no single-neuron code.)
        w = torch.randn(p.trials, p.d, generator=g, dtype=torch.float64) / p.d**0.5
        a = (torch.rand(p.trials, generator=g, dtype=torch.float64) * 2 - 1) * w.norm(dim=1)
    else:
        a = torch.randn(p.trials, generator=g, dtype=torch.float64)
        w = torch.randn(p.trials, p.d, generator=g, dtype=torch.float64) / p.d**0.5
    return a, w


def predict(a: torch.Tensor, w: torch.Tensor, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f(x) of every trial: (n, trials)."""
    return a * torch.relu(x @ (w * mask).T)


def losses(a: torch.Tensor, w: torch.Tensor, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error of every trial on x: (trials,)."""
    return ((predict(a, w, mask, x) - torch.relu(x[:, :1])) ** 2).mean(0)


def train(a: torch.Tensor, w: torch.Tensor, mask: torch.Tensor, x: torch.Tensor, p: SingleNeuron.Params):
    """``steps`` of full-batch gradient descent on every trial at once (trials do not interact).

    The gradient of the mean squared error is written out (r = f(x) - y, z = w^T x):
    dL/da = 2 mean(r ReLU(z)), dL/dw = 2 mean(r a 1[z > 0] x); four times faster than autograd here,
    and checked against it in the tests.
    """
    y, n = torch.relu(x[:, :1]), x.shape[0]
    w = w * mask
    for _ in range(p.steps):
        z = x @ w.T
        h = z.clamp_min(0)
        r = a * h - y
        grad_a = 2 * (r * h).mean(0)
        grad_w = (2 / n) * ((r * (z > 0)) * a).T @ x
        a, w = a - p.lr * grad_a, w - p.lr * grad_w * mask
    return a, w


def outcome(a, w, mask, x_test, p: SingleNeuron.Params, a0, w0, mode: str) -> dict[str, float]:
    success = losses(a, w, mask, x_test) < p.threshold
    rule = predicted_success(a0, w0, mode)
    return {"accuracy": float(success.double().mean()), "predicted_rate": float(rule.double().mean()),
            "rule_agreement": float((success == rule).double().mean())}


def predicted_success(a0: torch.Tensor, w0: torch.Tensor, mode: str) -> torch.Tensor:
    """The closed-form rule per trial: exact at d = 1 (gradient flow conserves a^2 - w^2, so success iff
    w(0) > 0 and a(0) + w(0) > 0), and exact at d > 1 for ``init: dominant_a`` (the paper's Fig. 1 rule)."""
    if w0.shape[1] == 1:
        return (w0[:, 0] > 0) & (a0 + w0[:, 0] > 0)
    if mode == "imp":
        return (a0 > 0) & (w0[:, 0] > 0)
    return a0 > 0
