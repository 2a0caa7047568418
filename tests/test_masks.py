import pytest
import torch
from torch import nn

from prunebench.masks import (
    MaskError,
    allocate,
    full_masks,
    mask_stats,
    pack,
    prunable_parameters,
    target_count,
    unpack,
)
from prunebench.models import build_model
from prunebench.registry import UnknownName
from prunebench.spec import ModelSpec, PrunableSpec


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 6 * 6, 20), nn.Linear(20, 5))


def test_prunable_selection_by_type_and_name():
    model = net()
    assert list(prunable_parameters(model, PrunableSpec())) == ["0.weight", "3.weight", "4.weight"]
    assert list(prunable_parameters(model, PrunableSpec(types=["conv"]))) == ["0.weight"]
    assert list(prunable_parameters(model, PrunableSpec(exclude=["4.*"]))) == ["0.weight", "3.weight"]
    assert list(prunable_parameters(model, PrunableSpec(include=["3.*", "4.*"]))) == ["3.weight", "4.weight"]


def test_prunable_pattern_matching_nothing_is_an_error():
    with pytest.raises(MaskError, match="'fc.*' matches no"):
        prunable_parameters(net(), PrunableSpec(exclude=["fc.*"]))


def test_resnet18_prunable_count_and_exclusions():
    """The LRR paper prunes every conv (first conv and shortcuts included) and the classifier."""
    with torch.device("meta"):
        model = build_model(ModelSpec(name="resnet18", options={"classifier_bias": False}), 10, (3, 32, 32))
    params = prunable_parameters(model, PrunableSpec())
    assert sum(p.numel() for p in params.values()) == 11_164_352
    no_first = prunable_parameters(model, PrunableSpec(exclude=["conv1.weight", "fc.weight", "*downsample*"]))
    assert "conv1.weight" not in no_first and not any("downsample" in n for n in no_first)


def random_scores(masks, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(m.shape, generator=g) for n, m in masks.items()}


@pytest.mark.parametrize("density", [1.0, 0.8, 0.5, 0.2, 0.0137, 0.0])
def test_global_allocation_keeps_exact_count(density):
    masks = full_masks(prunable_parameters(net(), PrunableSpec()))
    new = allocate(random_scores(masks), masks, density, "global")
    stats = mask_stats(new)
    assert stats.kept == target_count(density, stats.total)


@pytest.mark.parametrize("density", [0.8, 0.5, 0.1])
def test_layerwise_allocation_exact_per_layer(density):
    masks = full_masks(prunable_parameters(net(), PrunableSpec()))
    new = allocate(random_scores(masks), masks, density, "layerwise")
    for name, (kept, total) in mask_stats(new).layers.items():
        assert kept == target_count(density, total), name


def test_global_keeps_the_highest_scores():
    masks = {"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(3, dtype=torch.bool)}
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.3]), "b": torch.tensor([0.8, 0.2, 0.6])}
    new = allocate(scores, masks, 3 / 7, "global")
    assert new["a"].tolist() == [False, True, False, False]
    assert new["b"].tolist() == [True, False, True]


def test_ties_broken_by_position_deterministically():
    masks = {"a": torch.ones(6, dtype=torch.bool)}
    new = allocate({"a": torch.ones(6)}, masks, 0.5, "global")
    assert new["a"].tolist() == [True, True, True, False, False, False]


def test_iterative_masks_are_nested_and_never_revive():
    masks = full_masks(prunable_parameters(net(), PrunableSpec()))
    for level in range(1, 8):
        # fresh random scores each level: pruned weights score high now, but must stay pruned
        new = allocate(random_scores(masks, seed=level), masks, 0.8**level, "global")
        for name in masks:
            assert not (new[name] & ~masks[name]).any()
        masks = new
    assert mask_stats(masks).kept == target_count(0.8**7, mask_stats(masks).total)


def test_cannot_grow_or_score_nan():
    masks = {"a": torch.tensor([True, False, False, False])}
    with pytest.raises(MaskError, match="masks only shrink"):
        allocate({"a": torch.rand(4)}, masks, 0.5, "global")
    with pytest.raises(MaskError, match="NaN"):
        allocate({"a": torch.tensor([float("nan"), 0, 0, 0])}, {"a": torch.ones(4, dtype=torch.bool)}, 0.5, "global")
    with pytest.raises(UnknownName, match=r"unknown allocation 'erk2'; known: .*erk.*\. Did you mean 'erk'\?"):
        allocate({"a": torch.rand(4)}, {"a": torch.ones(4, dtype=torch.bool)}, 0.5, "erk2")


def test_pack_roundtrip():
    g = torch.Generator().manual_seed(1)
    masks = {"w": torch.rand(7, 3, 5, generator=g) > 0.5, "v": torch.rand(13, generator=g) > 0.3}
    packed = pack(masks)
    assert packed["w"]["bits"].numel() == -(-105 // 8)
    out = unpack(packed)
    assert all(torch.equal(out[k], masks[k]) for k in masks)


def test_on_host_and_kept_counts_read_every_tensor_back_in_one_transfer():
    from prunebench.masks import kept_counts, on_host

    g = torch.Generator().manual_seed(0)
    tensors = {"a": torch.rand(3, 4, generator=g) < 0.5, "b": torch.randn(5, generator=g), "c": torch.rand(2, 2, 2, generator=g) < 0.3}
    copied = on_host(tensors)
    assert list(copied) == list(tensors)
    assert all(torch.equal(copied[n], tensors[n]) and copied[n].dtype == tensors[n].dtype for n in tensors)
    tensors["b"].add_(1.0)  # a copy: later changes to the originals do not reach it
    assert not torch.equal(copied["b"], tensors["b"])
    masks = {"a": tensors["a"], "c": tensors["c"]}
    assert kept_counts(masks) == {n: int(m.sum()) for n, m in masks.items()} and kept_counts({}) == {}
