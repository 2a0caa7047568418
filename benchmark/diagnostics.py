"""Per-level diagnostics of iterative pruning: signs, mask overlap and training cost.

- **Sign flips**: the fraction of the currently unpruned weights whose sign differs from a reference
  (the initialisation, or the end of the previous level). A weight's sign is stored as one bit,
  "negative", so a level's signs cost what its mask costs.
- **Mask overlap**: intersection over union of two masks (previous level; another method's run).
- **Training FLOPs**: 3 x the forward FLOPs per example (backward ~ 2 x forward), with every prunable
  layer's multiply-accumulates scaled by its density (the ideal sparse cost; non-prunable conv and
  linear layers count dense; norm layers, activations and pooling are not counted).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from prunebench.masks import Masks, kept_counts, on_host
from prunebench.models.init import CONV_LINEAR

Signs = dict[str, torch.Tensor]  # name -> bool tensor, True where the weight is negative

def negative(params: Mapping[str, torch.Tensor]) -> Signs:
    return on_host({name: p.detach() < 0 for name, p in params.items()})


@dataclass(frozen=True)
class SignFlips:
    """Unpruned weights whose sign differs from a reference, per layer: (flipped, kept) by name."""

    counts: dict[str, tuple[int, int]]

    @property
    def fraction(self) -> float:
        """Over all layers: flipped / kept (0 with nothing kept)."""
        flipped, kept = (sum(c[i] for c in self.counts.values()) for i in (0, 1))
        return flipped / kept if kept else 0.0

    def by_layer(self) -> dict[str, float]:
        """Each layer's flipped / kept (0 for a fully pruned layer)."""
        return {name: flipped / kept if kept else 0.0 for name, (flipped, kept) in self.counts.items()}


def sign_flips(now: Signs, reference: Signs, masks: Masks) -> SignFlips:
    """The unpruned weights whose sign differs between ``now`` and ``reference``, layer by layer."""
    counts = {}
    for name, mask in masks.items():
        m = mask.cpu()  # a no-op for the host masks a level record passes
        counts[name] = int((now[name] != reference[name])[m].sum()), int(m.sum())
    return SignFlips(counts)


def mask_iou(a: Masks, b: Masks) -> float:
    """|a and b| / |a or b| over all tensors (1.0 for two empty masks)."""
    inter = sum(int((a[n].cpu() & b[n].cpu()).sum()) for n in a)
    union = sum(int((a[n].cpu() | b[n].cpu()).sum()) for n in a)
    return inter / union if union else 1.0


def layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates of one example's forward pass, per conv/linear weight (by parameter name).

    Measured by hooks on a copy of the model on the meta device: no memory, no computation, and the
    model itself (BN statistics included) is untouched.
    """
    meta = copy.deepcopy(model).to("meta").eval()
    macs: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs, output) -> None:
            # each output element costs one weight row: in_features (linear) or in/groups * kernel (conv)
            macs[name] = macs.get(name, 0) + (output.numel() // output.shape[0]) * module.weight[0].numel()
        return record

    handles = [module.register_forward_hook(hook(f"{mname}.weight" if mname else "weight"))
               for mname, module in meta.named_modules() if isinstance(module, CONV_LINEAR)]
    with torch.no_grad():
        meta(torch.empty((1, *input_shape), device="meta"))
    for h in handles:
        h.remove()
    return macs


def forward_flops(macs: Mapping[str, int], masks: Masks) -> float:
    """FLOPs (2 per multiply-accumulate) of one example's forward pass at the masks' densities."""
    total, kept = 0.0, kept_counts({name: masks[name] for name in macs if name in masks})
    for name, count in macs.items():
        density = kept[name] / masks[name].numel() if name in kept else 1.0
        total += 2.0 * count * density
    return total
