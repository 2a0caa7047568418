"""The loss landscape at kept weights: linear mode connectivity and the Hessian's curvature.

- **Linear mode connectivity** (Frankle et al. 2020): the test error of the network whose state is
  (1 - alpha) * a + alpha * b, at evenly spaced alpha from 0 to 1. Every floating tensor of the
  state is interpolated, BN statistics included, as the authors' ``linear_mode.py`` does
  (github AdvaitGadhikar/imp-lrr-lts); each endpoint carries its own mask (its pruned weights are
  zero), so the path runs through the union of the two supports. The **error barrier** is the
  highest error on the path above the mean of its two ends' errors (Frankle et al.'s instability);
  two states are linearly connected when it is about 0.
- **Curvature**: the largest eigenvalue of the Hessian of the training loss (power iteration on
  Hessian-vector products) and its trace (Hutchinson's estimator with Rademacher probes, the
  quantity of the authors' ``hessian_trace``, through pyhessian). Both are taken over the trainable
  coordinates only: pruned weights are fixed at zero, so their rows and columns are left out (the
  probes are masked). The loss is that of training: BN in train mode (batch statistics), as the
  authors' code computes it, on a copy, so the state's running statistics stay as they were.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

State = Mapping[str, torch.Tensor]
Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def interpolate(a: State, b: State, alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * a + alpha * b for every floating tensor; integer tensors (BN's batch counters)
    are a's. The ends are the states themselves, exactly."""
    if set(a) != set(b):
        raise ValueError(f"states of different models: {sorted(set(a) ^ set(b))[:3]}")
    if alpha == 0:
        return {k: v.clone() for k, v in a.items()}
    if alpha == 1:
        return {k: (b[k] if v.is_floating_point() else v).clone() for k, v in a.items()}
    return {k: torch.lerp(v, b[k].to(v.dtype), alpha) if v.is_floating_point() else v.clone() for k, v in a.items()}


def error_barrier(errors: Sequence[float]) -> float:
    """The highest error on the path above the mean of its two ends' (errors in order of alpha)."""
    return max(errors) - (errors[0] + errors[-1]) / 2


def linear_path(model: nn.Module, a: State, b: State, evaluate: Callable[[], Mapping[str, float]],
                points: int = 11) -> list[dict[str, float]]:
    """The test metrics of ``model`` loaded with the states on the line from a to b, at ``points``
    evenly spaced alphas (0 and 1 included): ``evaluate()`` measures the model as loaded."""
    rows = []
    for i in range(points):
        alpha = i / (points - 1)
        model.load_state_dict(interpolate(a, b, alpha))
        rows.append({"alpha": alpha, **evaluate()})
    return rows


def _trainable(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    return list(params), [masks[n].to(p.device, p.dtype) if n in masks else None for n, p in zip(names, params)]


def _masked(vectors: Iterable[torch.Tensor], masks: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    return [v if m is None else v * m for v, m in zip(vectors, masks)]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


class Curvature:
    """Hessian-vector products of the mean training loss over fixed batches, on the trainable
    (unpruned) coordinates of a copy of the model."""

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor], batches: Batches) -> None:
        self.model = copy.deepcopy(model).train()
        self.params, self.masks = _trainable(self.model, masks)
        self.batches = batches
        self.products = 0  # Hessian-vector products computed (each one pass per batch)

    def hvp(self, v: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        total = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            loss = F.cross_entropy(self.model(x).float(), y)
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            for t, h in zip(total, torch.autograd.grad(grads, self.params, grad_outputs=list(v))):
                t += h / len(self.batches)
        self.products += 1
        return _masked(total, self.masks)

    def top_eigenvalue(self, iterations: int, generator: torch.Generator, tol: float = 1e-4) -> tuple[float, int]:
        """Power iteration from a keyed random start, as pyhessian's ``eigenvalues()``: the eigenvalue of
        largest magnitude (the top one near a minimum, where the Hessian is nearly positive
        semi-definite), and the products it took: it stops when an estimate moves by less than ``tol``
        relative to the last, or after ``iterations``."""
        v = _masked([torch.randn(p.shape, generator=generator).to(p.device, p.dtype) for p in self.params], self.masks)
        eigenvalue, used = 0.0, 0
        while used < iterations:
            norm = math.sqrt(_dot(v, v))
            v = [x / norm for x in v]
            hv = self.hvp(v)
            used += 1
            previous, eigenvalue = eigenvalue, _dot(v, hv)
            v = hv
            if used > 1 and abs(eigenvalue - previous) <= tol * abs(previous):
                break
        return eigenvalue, used

    def trace(self, samples: int, generator: torch.Generator) -> float:
        """Hutchinson's estimate: the mean of v^T H v over Rademacher probes v on the trainable coordinates."""
        total = 0.0
        for _ in range(samples):
            v = _masked([(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(p.device, p.dtype)
                         for p in self.params], self.masks)
            total += _dot(v, self.hvp(v))
        return total / samples
