"""Initialisation schemes a suite can name; ``default`` keeps the builder's own initialisation."""

from __future__ import annotations

from torch import nn

CONV_LINEAR: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # the layers whose weights are prunable
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)  # affine params never pruned


# TF's truncated normal keeps draws within 2 std; this is the std of such a draw (TF1 variance_scaling).
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def apply_init(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv/linear weights (biases to zero, norm layers to identity) by ``scheme``."""
    if scheme == "default":
        return
    if scheme == "tf_variance_scaling":
        _tf_variance_scaling(model)
        return
    if scheme == "glorot_uniform":  # TF's default kernel initializer (tf.layers with kernel_initializer=None)
        for module in model.modules():
            if isinstance(module, CONV_LINEAR):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, NORM_LAYERS) and getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        return
    mode, kind = {
        "kaiming_normal_fan_out": ("fan_out", nn.init.kaiming_normal_),
        "kaiming_normal_fan_in": ("fan_in", nn.init.kaiming_normal_),
        "kaiming_uniform_fan_in": ("fan_in", nn.init.kaiming_uniform_),
    }[scheme]
    for module in model.modules():
        if isinstance(module, CONV_LINEAR):
            kind(module.weight, mode=mode, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, NORM_LAYERS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _tf_variance_scaling(model: nn.Module) -> None:
    """TF official ResNet (Renda et al. 2020): convs ``variance_scaling_initializer()`` (scale 1,
    fan_in, truncated normal), the dense layer N(0, 0.01), biases zero, norm layers identity."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            std = (1.0 / module.weight[0].numel()) ** 0.5 / _TRUNCATED_NORMAL_STD
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
        elif isinstance(module, NORM_LAYERS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
        else:
            continue
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
