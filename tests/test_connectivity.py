"""Effective connectivity: weights on no input-to-output path, layer collapse, and its record in level rows."""

import torch
from torch import nn

from prunebench.connectivity import effective_density, effective_masks
from prunebench.data import DataCache
from prunebench.masks import full_masks, mask_stats, prunable_parameters
from prunebench.models import build_model
from prunebench.runner import build_session
from prunebench.spec import ExecSettings, ModelSpec, PrunableSpec
from prunebench.store import RunDir
from tests.conftest import tiny_spec


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))


def test_weights_cut_off_upstream_or_downstream_are_ineffective():
    model = mlp()
    masks = full_masks(prunable_parameters(model, PrunableSpec()))
    masks["2.weight"][:, 0] = False  # hidden unit 0 of the first layer feeds nothing: its 4 inputs are dead
    masks["2.weight"][1, :] = False  # unit 1 of the second layer gets nothing: its 2 outputs are dead
    got = effective_masks(model, masks, (4,))
    expected = {name: m.clone() for name, m in masks.items()}
    expected["0.weight"][0, :] = False
    expected["4.weight"][:, 1] = False
    assert all(torch.equal(got[n], expected[n]) for n in masks)
    total = sum(m.numel() for m in masks.values())
    assert effective_density(model, masks, (4,)) == (mask_stats(masks).kept - 4 - 2) / total


def test_a_fully_pruned_layer_cuts_every_path():
    model = mlp()
    masks = full_masks(prunable_parameters(model, PrunableSpec()))
    masks["2.weight"][:] = False
    assert effective_density(model, masks, (4,)) == 0.0


def test_dense_conv_net_with_max_pools_is_fully_effective_and_left_unchanged():
    """A max routes its gradient to one input only; the path network averages, so every weight counts."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(name="lenet5"), 10, (1, 28, 28))
    masks = full_masks(prunable_parameters(model, PrunableSpec()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert effective_density(model, masks, (1, 28, 28)) == 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training


def test_residual_branch_pruned_away_leaves_the_shortcut_path():
    """ResNet-20: with a block's first conv gone its second conv is dead, but the identity shortcut keeps
    everything downstream connected; BN layers must not block paths, whatever their statistics."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(name="resnet20", options={"width": 4}), 10, (3, 8, 8))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.fill_(5.0)  # as after training: in eval mode BN would map 1 to a negative number
    masks = full_masks(prunable_parameters(model, PrunableSpec()))
    masks["blocks.1.conv1.weight"][:] = False
    got = effective_masks(model, masks, (3, 8, 8))
    assert not got["blocks.1.conv2.weight"].any()
    assert all(torch.equal(got[n], masks[n]) for n in masks if n != "blocks.1.conv2.weight")


def test_deep_networks_stay_in_range():
    """Path counts through 40 ReLU layers of width 64 (64^k) overflow float32, and inf * a pruned 0 is
    NaN; reachability stays in {0, 1}."""
    model = nn.Sequential(*[m for _ in range(40) for m in (nn.Linear(64, 64, bias=False), nn.ReLU())])
    masks = full_masks(prunable_parameters(model, PrunableSpec()))
    masks["60.weight"][:, 1:] = False  # layer 31 reads only unit 0 of layer 30...
    got = effective_masks(model, masks, (64,))
    assert torch.equal(got["60.weight"], masks["60.weight"])
    assert got["58.weight"][0].all() and not got["58.weight"][1:].any()  # ...so only that unit's inputs count there
    assert all(got[n].all() for n in masks if n not in ("58.weight", "60.weight"))


def test_layer_collapse_is_recorded_in_the_level_row(tmp_path):
    """Magnitude pruning at init with one layer of tiny weights removes that whole layer at high sparsity:
    the row names it and its effective density is 0, far below the nominal density."""
    spec = tiny_spec()
    run = RunDir(tmp_path, spec)
    run.start({})
    s = build_session(spec, run, ExecSettings(), DataCache(), torch.device("cpu"))
    with torch.no_grad():
        s.prunable["fc.1.weight"].mul_(1e-3)
    s.prune(s.score("magnitude"), density=0.05)
    s.record(0)
    row = s.levels[0]
    assert row.collapsed_layers == ["fc.1.weight"]
    assert row.effective_density == 0.0 < row.density == round(0.05 * row.prunable) / row.prunable
