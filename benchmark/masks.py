"""Masks: parameter name -> bool tensor, and the rules that turn scores into masks.

A mask keeps exactly the number of weights its target asks for: ``round(density * n)`` over the
whole prunable set (global allocation and the layer-distribution rules erk, er, balanced, pyramidal,
whose per-layer counts are rounded by largest remainder) or over each tensor (layerwise). Ties are broken
deterministically by position (a stable sort), so the same scores always give the same mask.
Weights that are already pruned are never revived: their score is treated as minus infinity, which
makes the masks of an iterative method nested.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunebench.models.init import CONV_LINEAR
from prunebench.registry import Registry
from prunebench.spec import PrunableSpec

Masks = dict[str, torch.Tensor]
Scores = Mapping[str, torch.Tensor]

_MODULE_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": tuple(t for t in CONV_LINEAR if t is not nn.Linear),
    "linear": (nn.Linear,),
}


class MaskError(ValueError):
    """A pruning request that cannot be met exactly (bad target, bad scores, bad selection)."""


def prunable_parameters(model: nn.Module, spec: PrunableSpec) -> dict[str, nn.Parameter]:
    """The weights that count as prunable, in model order, keyed by parameter name ("fc.weight")."""
    types = tuple(t for name in spec.types for t in _MODULE_TYPES[name])
    candidates = {
        f"{module_name}.weight" if module_name else "weight": module.weight
        for module_name, module in model.named_modules()
        if isinstance(module, types) and isinstance(getattr(module, "weight", None), nn.Parameter)
    }
    if not candidates:
        raise MaskError(f"the model has no {' or '.join(spec.types)} layer with a weight")
    for pattern in [*spec.include, *spec.exclude]:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in candidates):
            sample = ", ".join(list(candidates)[:8])
            raise MaskError(f"prunable pattern {pattern!r} matches no {'/'.join(spec.types)} weight; names look like: {sample}")
    return {
        name: param
        for name, param in candidates.items()
        if any(fnmatch.fnmatchcase(name, p) for p in spec.include)
        and not any(fnmatch.fnmatchcase(name, p) for p in spec.exclude)
    }


def full_masks(params: Mapping[str, torch.Tensor]) -> Masks:
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}


# ------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class MaskStats:
    kept: int
    total: int
    layers: dict[str, tuple[int, int]]  # name -> (kept, total)

    @property
    def density(self) -> float:
        return self.kept / self.total if self.total else 1.0

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    def layer_density(self) -> dict[str, float]:
        return {name: k / t for name, (k, t) in self.layers.items()}


def on_host(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of ``tensors`` in host memory, moved in one transfer per dtype instead of one (and one
    device sync) per tensor."""
    groups: dict[torch.dtype, list[str]] = {}
    for name, t in tensors.items():
        groups.setdefault(t.dtype, []).append(name)
    out: dict[str, torch.Tensor] = {}
    for names in groups.values():
        flat = torch.cat([tensors[n].detach().reshape(-1) for n in names]).cpu()
        for name, part in zip(names, flat.split([tensors[n].numel() for n in names])):
            out[name] = part.view(tensors[name].shape)
    return {name: out[name] for name in tensors}


def kept_counts(masks: Masks) -> dict[str, int]:
    """Kept weights per tensor, read back in one transfer (a device sync per tensor otherwise)."""
    if not masks:
        return {}
    where = next(iter(masks.values())).device
    counts = torch.stack([m.sum().to(where) for m in masks.values()]).tolist()
    return dict(zip(masks, counts))


def mask_stats(masks: Masks) -> MaskStats:
    layers = {name: (kept, masks[name].numel()) for name, kept in kept_counts(masks).items()}
    return MaskStats(sum(k for k, _ in layers.values()), sum(t for _, t in layers.values()), layers)


# ------------------------------------------------------------------------------------- allocation
def target_count(density: float, n: int) -> int:
    """Weights kept for a density target: round half to even, as Python's round."""
    return int(round(density * n))


def _keep_top(scores: torch.Tensor, current: torch.Tensor, keep: int) -> torch.Tensor:
    """A mask (shape of ``scores``) keeping the ``keep`` highest-scored weights that ``current`` keeps."""
    flat_mask = current.reshape(-1).to(scores.device)  # masks may live elsewhere (CPU after a resume)
    kept_now = int(flat_mask.sum())
    if keep > kept_now:
        raise MaskError(f"cannot keep {keep} weights: only {kept_now} are unpruned (masks only shrink)")
    flat = scores.reshape(-1).to(torch.float64)
    if torch.isnan(flat).any():
        raise MaskError("scores contain NaN")
    flat = torch.where(flat_mask, flat, torch.full_like(flat, -torch.inf))
    order = torch.sort(flat, descending=True, stable=True).indices
    out = torch.zeros_like(flat_mask)
    out[order[:keep]] = True
    return out.reshape(scores.shape)


def global_masks(scores: Scores, current: Masks, density: float) -> Masks:
    """One threshold across all prunable tensors: keep the top round(density * N) scores."""
    names = list(current)
    sizes = [current[n].numel() for n in names]
    keep = target_count(density, sum(sizes))
    flat_scores = torch.cat([scores[n].reshape(-1).to(torch.float64) for n in names])
    flat_current = torch.cat([current[n].reshape(-1).to(flat_scores.device) for n in names])
    flat = _keep_top(flat_scores, flat_current, keep)
    return {n: part.reshape(current[n].shape) for n, part in zip(names, flat.split(sizes))}


LayerCounts = Callable[[Masks, float], dict[str, int]]
# An allocation is a layer rule, (current masks, global density) -> weights kept per tensor, or None
# for "global" (one threshold over all tensors, so the per-layer split follows the scores).
ALLOCATIONS: Registry[LayerCounts | None] = Registry("allocation")
ALLOCATIONS.add("global", None)


def register_allocation(name: str) -> Callable[[LayerCounts], LayerCounts]:
    """Register a layerwise rule: (current masks, global density) -> weights kept per tensor.

    A rule returns integer counts, not densities, so that it decides the rounding itself: the rules
    below keep exactly ``round(density * N)`` weights in total, which per-layer rounding cannot.
    No count may exceed the weights its tensor still keeps (masks only shrink).
    """
    return ALLOCATIONS.register(name)


@register_allocation("layerwise")
def uniform_counts(current: Masks, density: float) -> dict[str, int]:
    """Every prunable tensor keeps the same fraction of its weights, rounded per tensor."""
    return {name: target_count(density, mask.numel()) for name, mask in current.items()}


def fill_counts(current: Masks, density: float, wanted: Callable[[float], dict[str, float]], top: float) -> dict[str, int]:
    """Exact per-layer counts from a one-parameter family of real-valued wishes.

    ``wanted(t)`` gives each layer's wished-for number of kept weights, non-decreasing in ``t``, with
    ``wanted(top)`` at least every layer's capacity (the weights it still keeps). Layers are capped at
    capacity and ``t`` is found by bisection so that the capped wishes add up to the global target
    ``round(density * N)``: a layer that would overflow stays full and the rest is scaled up to meet
    the target (the ERK "capacity fix", found in one search instead of by repeated rescaling). The
    real-valued counts are then rounded by largest remainder, so the integers add up exactly.
    """
    capacity = {name: int(mask.sum()) for name, mask in current.items()}
    total = target_count(density, sum(mask.numel() for mask in current.values()))
    if total > sum(capacity.values()):
        raise MaskError(f"cannot keep {total} weights: only {sum(capacity.values())} are unpruned (masks only shrink)")

    def capped(t: float) -> dict[str, float]:
        return {name: min(float(capacity[name]), value) for name, value in wanted(t).items()}

    low, high = 0.0, top
    for _ in range(200):  # bisection to float64 resolution
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if sum(capped(mid).values()) >= total:
            high = mid
        else:
            low = mid
    return largest_remainder(capped(high), capacity, total)


def largest_remainder(values: dict[str, float], capacity: dict[str, int], total: int) -> dict[str, int]:
    """Integers that add up to ``total``: floors, plus one for the largest fractional parts (ties by position).

    ``values`` add up to at least ``total`` and lie within ``capacity``, so the floors add up to at
    most ``total`` and every layer given one more stays within its capacity.
    """
    counts = {name: int(np.floor(v)) for name, v in values.items()}
    order = sorted(values, key=lambda n: -(values[n] - counts[n]))  # stable: earlier layers first on ties
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def _proportional(current: Masks, density: float, weight: dict[str, float]) -> dict[str, int]:
    """Counts proportional to ``weight`` (per layer), capped at capacity, exact in total."""
    top = max(mask.numel() / weight[name] for name, mask in current.items())
    return fill_counts(current, density, lambda t: {name: t * weight[name] for name in current}, top)


@register_allocation("erk")
def erk_counts(current: Masks, density: float) -> dict[str, int]:
    """Erdős–Rényi-Kernel (Evci et al. 2020, RigL): density ∝ (sum of dims) / (product of dims).

    The kept count of a layer is then ∝ the sum of its dims (out + in + kernel height + width).
    Layers whose density would exceed 1 stay dense and the others share what is left.
    """
    return _proportional(current, density, {name: float(sum(mask.shape)) for name, mask in current.items()})


@register_allocation("er")
def er_counts(current: Masks, density: float) -> dict[str, int]:
    """Erdős–Rényi (Mocanu et al. 2018): density ∝ (n_in + n_out) / (n_in * n_out), in channels for convs.

    So the kept count of a layer is ∝ (n_in + n_out) * kernel size; capacity as for ``erk``.
    """
    weight = {}
    for name, mask in current.items():  # conv/linear weights: (out, in, *kernel)
        n_out, n_in = mask.shape[:2]
        weight[name] = float((n_in + n_out) * (mask.numel() // (n_in * n_out)))
    return _proportional(current, density, weight)


@register_allocation("balanced")
def balanced_counts(current: Masks, density: float) -> dict[str, int]:
    """The same number of kept weights in every layer (Gadhikar et al. 2023); a layer too small stays full
    and the others share its surplus equally."""
    return _proportional(current, density, {name: 1.0 for name in current})


@register_allocation("pyramidal")
def pyramidal_counts(current: Masks, density: float) -> dict[str, int]:
    """Density falling geometrically with depth (Gadhikar, Mukherjee & Burkholz 2023, "Why Random Pruning
    Is All We Need to Start Sparse"): layer l (1-based, in model order) keeps density r^l, with r in
    [0, 1] solving sum_l n_l r^l = density * N, as the authors' code does (numpy roots of that polynomial).
    Depth is the position among the prunable tensors in model order (a ResNet's 1x1 shortcut comes after
    the block's second conv), as in that code.
    """
    names = list(current)
    return fill_counts(
        current, density, lambda r: {n: current[n].numel() * r ** (i + 1) for i, n in enumerate(names)}, 1.0
    )


def allocation_names() -> list[str]:
    return ALLOCATIONS.names()


def allocate(scores: Scores, current: Masks, density: float, allocation: str) -> Masks:
    """New masks at ``density`` (a fraction of all prunable weights), nested in ``current``."""
    if not 0.0 <= density <= 1.0:
        raise MaskError(f"density must lie in [0, 1], got {density}")
    missing = set(current) - set(scores)
    if missing:
        raise MaskError(f"scores missing for {sorted(missing)}")
    for name, mask in current.items():
        if scores[name].shape != mask.shape:
            raise MaskError(f"score shape {tuple(scores[name].shape)} != weight shape {tuple(mask.shape)} for {name}")
    rule = ALLOCATIONS.get(allocation)
    if rule is None:
        return global_masks(scores, current, density)
    counts = rule(current, density)
    return {name: _keep_top(scores[name], mask, counts[name]) for name, mask in current.items()}


def drop_and_grow(current: Masks, drop_scores: Scores, grow_scores: Scores, fraction: float) -> tuple[Masks, Masks]:
    """A non-nested update at fixed density (SET, RigL): in every tensor drop the floor(fraction * kept)
    active weights of lowest ``drop_scores`` and grow as many of highest ``grow_scores`` among the
    weights not kept after the drop (a weight just dropped may come back, as in the RigL code).
    Every tensor keeps exactly its count; ties are broken by position. Returns (new masks, grown):
    the weights the grow step chose (some may have been active before the drop)."""
    new, grown = {}, {}
    for name, mask in current.items():
        flat = mask.reshape(-1)
        kept = int(flat.sum())
        n = int(kept * fraction)  # floor, as RigL's int cast
        keep = _keep_top(drop_scores[name], mask, kept - n).reshape(-1)
        flat_grow = grow_scores[name].reshape(-1).to(torch.float64)
        if torch.isnan(flat_grow).any():
            raise MaskError(f"grow scores of {name} contain NaN")
        candidates = torch.where(keep.to(flat_grow.device), torch.full_like(flat_grow, -torch.inf), flat_grow)
        order = torch.sort(candidates, descending=True, stable=True).indices[:n]
        out = keep.clone()
        out[order.to(out.device)] = True
        new[name] = out.reshape(mask.shape)
        grown[name] = (out & ~keep).reshape(mask.shape)
    return new, grown


# ---------------------------------------------------------------------------------------- storage
def pack(masks: Masks) -> dict[str, dict[str, torch.Tensor]]:
    """Bit-packed masks (1 bit per weight) for level records; torch.load(weights_only=True)-safe."""
    return {
        name: {
            "bits": torch.from_numpy(np.packbits(m.detach().cpu().numpy().reshape(-1))),
            "shape": torch.tensor(list(m.shape), dtype=torch.int64),
        }
        for name, m in masks.items()
    }


def unpack(packed: Mapping[str, Mapping[str, torch.Tensor]]) -> Masks:
    out: Masks = {}
    for name, entry in packed.items():
        shape = [int(s) for s in entry["shape"]]
        n = int(np.prod(shape)) if shape else 1
        bits = np.unpackbits(entry["bits"].numpy(), count=n).astype(bool)
        out[name] = torch.from_numpy(bits.reshape(shape))
    return out


def apply_masks(params: Iterable[torch.Tensor], masks: Iterable[torch.Tensor]) -> None:
    """Zero pruned weights in place (``masks`` already in the parameters' dtype and device)."""
    with torch.no_grad():
        torch._foreach_mul_(list(params), list(masks))
