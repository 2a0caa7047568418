"""CIFAR VGGs as in OpenLTH's ``cifar_vgg`` and SynFlow's ``Models/lottery_vgg.py``.

conv3x3 (padding 1, with bias as in both references) + BN + ReLU modules with max pools between stages,
no pool after the last stage, then one Linear 512 -> classes (no hidden fc layers, unlike ImageNet VGG).

Head: both references apply ``nn.AvgPool2d(2)`` to the last feature map, which is 2x2 at 32px, so it is a
global average pool there. We use ``AdaptiveAvgPool2d(1)``: identical at 32px, and still 512 features at
other sizes (where the references' fc would get the wrong width).

Names: ``layers.<i>.conv``, ``layers.<i>.bn`` (max pools take indices too), ``fc``. PyTorch default init
unless the suite's ``init`` overrides it (the references use kaiming normal, fan_in).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.models.registry import register_model

PLANS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
}


class ConvModule(nn.Module):
    def __init__(self, f_in: int, f_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(f_in, f_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(f_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class CifarVGG(nn.Module):
    def __init__(self, plan: list[int | str], num_classes: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        f_in = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(spec, int)
                layers.append(ConvModule(f_in, spec))
                f_in = spec
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(f_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(x)).flatten(1))


@register_model("vgg11_bn")
def vgg11_bn(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """CIFAR VGG-11 with batch norm (8 convs + 1 fc)."""
    return CifarVGG(PLANS[11], num_classes, input_shape[0])


@register_model("vgg16_bn")
def vgg16_bn(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """CIFAR VGG-16 with batch norm (13 convs + 1 fc), the SynFlow / OpenLTH ``vgg16_bn``."""
    return CifarVGG(PLANS[16], num_classes, input_shape[0])
