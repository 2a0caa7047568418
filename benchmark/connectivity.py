"""Effective connectivity of a masked network: which kept weights lie on an input-to-output path.

A kept weight with nothing unpruned upstream (no path from the input reaches it) or downstream (it
reaches no output) does nothing, whatever its value. Pruning at initialisation at high sparsity
leaves many such weights, and in the extreme a whole layer is pruned (layer collapse, Tanaka et al.
2020) and with it every path. The effective density counts only weights on some path, so it can lie
far below the nominal density.

The test is a SynFlow-style pass on a copy of the network turned into a positive path counter:
prunable weights become their 0/1 masks, other weights 1, biases 0 (the input is the only source),
norm layers the identity, max pools average pools (a max sends its gradient to one input only; an
average to every input it connects), eval mode, and the input all ones. A weight is effective iff
|dR/dw| > 0 for R the sum of the outputs. To keep the numbers in range at any depth, every leaf
module's output is replaced by the indicator of its positive entries and every gradient flowing back
through it by the indicator of its positive entries (reachability, not path counts: a ResNet-110's
path counts would overflow float64).

Assumes activations map 0 to 0 and positive inputs to positive outputs (ReLU and its relatives);
max pooling written as a function call inside ``forward`` rather than as a module is not replaced.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prunebench.masks import Masks, kept_counts
from prunebench.models.init import NORM_LAYERS

_MAX_TO_AVG: dict[type[nn.Module], type[nn.Module]] = {
    nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d,
    nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d,
}


class _Reach(torch.autograd.Function):
    """Forward: 1 where the input is positive. Backward: 1 where the incoming gradient is positive."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return (grad > 0).to(grad.dtype)


def _replacement(module: nn.Module) -> nn.Module | None:
    """The path-counting stand-in for a module, or None to keep it."""
    if isinstance(module, NORM_LAYERS):
        return nn.Identity()
    avg = _MAX_TO_AVG.get(type(module))
    if avg is None:
        return None
    if hasattr(module, "output_size"):
        return avg(module.output_size)
    return avg(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)


def path_network(model: nn.Module, masks: Masks) -> nn.Module:
    """A copy of ``model`` whose forward on all-ones input marks the units reachable from the input."""
    net = copy.deepcopy(model).float().eval()
    for name, module in list(net.named_modules()):
        new = _replacement(module)
        if new is not None:
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, new)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in masks:
                p.copy_(masks[name])
            else:
                p.fill_(0.0 if name.rsplit(".", 1)[-1] == "bias" else 1.0)
    for module in net.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda m, inputs, out: _Reach.apply(out) if isinstance(out, torch.Tensor) else out)
    return net


def effective_masks(model: nn.Module, masks: Masks, input_shape: tuple[int, ...]) -> Masks:
    """The kept weights that lie on at least one input-to-output path (a subset of ``masks``)."""
    if not masks:
        return {}
    net = path_network(model, masks)
    params = dict(net.named_parameters())
    weights = [params[name] for name in masks]
    device = weights[0].device
    out = net(torch.ones((1, *input_shape), device=device))
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    return {
        name: masks[name].to(device) & (g > 0) if g is not None else torch.zeros_like(masks[name])
        for name, g in zip(masks, grads)
    }


def effective_density(model: nn.Module, masks: Masks, input_shape: tuple[int, ...]) -> float:
    """Fraction of all prunable weights that are kept and on some input-to-output path (1.0 if none are prunable)."""
    total = sum(m.numel() for m in masks.values())
    if not total:
        return 1.0
    return sum(kept_counts(effective_masks(model, masks, input_shape)).values()) / total
