"""Layer-distribution rules: exact global counts, capacities, and each rule's per-layer counts.

The expected per-layer counts are computed here by other means than prunebench.masks uses (the
iterated capacity fix of the ERK literature; numpy's polynomial roots for pyramidal, as in the
authors' code), so a shared mistake cannot pass.
"""

import numpy as np
import pytest
import torch

from prunebench.masks import MaskError, allocate, mask_stats, target_count

RULES = ["erk", "er", "balanced", "pyramidal"]
DENSITIES = [1.0, 0.5, 0.1, 0.0137, 0.001, 0.0]
# conv stem, a wide conv, a 1x1 conv, two linears: very different ERK/ER ratios and sizes
SHAPES = {"stem": (16, 3, 3, 3), "conv": (32, 16, 3, 3), "skip": (32, 16, 1, 1), "fc1": (64, 512), "fc2": (10, 64)}


def masks_of(shapes=SHAPES):
    return {name: torch.ones(shape, dtype=torch.bool) for name, shape in shapes.items()}


def random_scores(masks, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(m.shape, generator=g) for n, m in masks.items()}


def counts(masks):
    return {name: kept for name, (kept, _) in mask_stats(masks).layers.items()}


def water_filled(sizes: dict[str, int], weight: dict[str, float], total: int) -> dict[str, float]:
    """Counts proportional to weight, capped at size: the capacity fix iterated until consistent."""
    dense: set[str] = set()
    while True:
        free = total - sum(sizes[n] for n in dense)
        scale = free / sum(weight[n] for n in sizes if n not in dense)
        over = {n for n in sizes if n not in dense and scale * weight[n] > sizes[n]}
        if not over:
            return {n: float(sizes[n]) if n in dense else scale * weight[n] for n in sizes}
        dense |= over


def expected_counts(rule: str, masks, density: float) -> dict[str, float]:
    sizes = {n: m.numel() for n, m in masks.items()}
    total = target_count(density, sum(sizes.values()))
    if rule == "pyramidal":  # sum_l n_l r^l = total, density of layer l = r^l (Gadhikar et al.'s code)
        if total == sum(sizes.values()):
            return {n: float(s) for n, s in sizes.items()}
        roots = np.roots([*reversed(list(sizes.values())), -total])
        r = next(x.real for x in roots if abs(x.imag) < 1e-12 and -1e-12 <= x.real <= 1)
        return {n: s * max(r, 0.0) ** (i + 1) for i, (n, s) in enumerate(sizes.items())}
    shapes = {n: m.shape for n, m in masks.items()}
    weight = {
        "erk": {n: float(sum(s)) / np.prod(s) for n, s in shapes.items()},  # density ∝ sum / product of dims
        "er": {n: (s[0] + s[1]) / (s[0] * s[1]) for n, s in shapes.items()},  # ∝ (n_in + n_out) / (n_in n_out)
        "balanced": {n: 1.0 / sizes[n] for n in shapes},  # the same count everywhere
    }[rule]
    return water_filled(sizes, {n: weight[n] * sizes[n] for n in sizes}, total)  # density weight -> count weight


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("density", DENSITIES)
def test_rule_keeps_exact_global_count_within_capacity_as_it_defines(rule, density):
    masks = masks_of()
    new = allocate(random_scores(masks), masks, density, rule)
    got = counts(new)
    total = sum(m.numel() for m in masks.values())
    assert sum(got.values()) == target_count(density, total)
    want = expected_counts(rule, masks, density)
    for name, mask in masks.items():
        assert 0 <= got[name] <= mask.numel(), name
        assert abs(got[name] - want[name]) < 1, (name, got[name], want[name])  # largest remainder moves < 1


def test_erk_capacity_fix_keeps_an_overfull_layer_dense_and_rescales_the_rest():
    """ERK wants density ∝ (2+2)/(2*2) = 1 for 'tiny' and (100+100)/100^2 = 0.02 for 'big': at a global
    density of 0.5 the scale is 5002 / (4*1 + 10000*0.02) = 24.5, so 'tiny' would get density 24.5.
    It stays dense (4 weights) and 'big' takes the rest: 5002 - 4."""
    masks = masks_of({"tiny": (2, 2), "big": (100, 100)})
    got = counts(allocate(random_scores(masks), masks, 0.5, "erk"))
    assert got == {"tiny": 4, "big": 4998}


def test_balanced_redistributes_and_breaks_ties_by_position():
    masks = masks_of({"a": (10,), "b": (10,), "c": (10,)})
    assert counts(allocate(random_scores(masks), masks, 1 / 3, "balanced")) == {"a": 4, "b": 3, "c": 3}
    masks = masks_of({"small": (2,), "x": (100,), "y": (100,)})  # 101 kept: small is full, 99 split 50/49
    assert counts(allocate(random_scores(masks), masks, 101 / 202, "balanced")) == {"small": 2, "x": 50, "y": 49}


def test_pyramidal_density_falls_with_depth():
    masks = masks_of()
    new = allocate(random_scores(masks), masks, 0.1, "pyramidal")
    densities = list(mask_stats(new).layer_density().values())
    assert all(a > b for a, b in zip(densities, densities[1:]))


@pytest.mark.parametrize("rule", RULES)
def test_rules_prune_iteratively_with_nested_exact_masks(rule):
    """Inside an iterative method: capacity is what a layer still keeps, so masks only shrink."""
    masks = masks_of()
    total = sum(m.numel() for m in masks.values())
    for level in range(1, 12):
        new = allocate(random_scores(masks, seed=level), masks, 0.6**level, rule)
        assert all(not (new[n] & ~masks[n]).any() for n in masks)
        assert mask_stats(new).kept == target_count(0.6**level, total)
        masks = new


def test_random_pruning_with_a_rule_keeps_the_rule_counts_and_random_positions():
    masks = masks_of()
    a, b = (allocate(random_scores(masks, seed), masks, 0.1, "erk") for seed in (1, 2))
    assert counts(a) == counts(b)
    assert any(not torch.equal(a[n], b[n]) for n in masks)


def test_cannot_keep_more_than_is_left():
    masks = {"a": torch.tensor([True, False, False, False]), "b": torch.tensor([True, False, False, False])}
    with pytest.raises(MaskError, match="masks only shrink"):
        allocate(random_scores(masks), masks, 0.5, "erk")
