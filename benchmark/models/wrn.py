"""Wide residual networks for 32x32 inputs, as the RigL code builds them (rigl/cifar_resnet/resnet_model.py).

WRN-d-k: a 3x3 stem of 16 channels, three groups of (d - 4) / 6 pre-activation basic blocks of
16k, 32k and 64k channels (the 2nd and 3rd downsample), a 1x1 projection where the channel count
changes (taken from the pre-activated input, as in that code), dropout between a block's two convs
(the code's default rate 0.3), BN and ReLU before global average pooling, a linear classifier with
bias. Convolutions have no bias. WRN-22-2 is the RigL paper's CIFAR-10 model.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.registry import register_model


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if in_channels != out_channels else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        skip = self.shortcut(pre) if self.shortcut is not None else x
        out = self.conv2(self.dropout(self.relu(self.bn2(self.conv1(pre)))))
        return out + skip


class WideResNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, depth: int = 22, width: int = 2, dropout: float = 0.3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a wide ResNet has depth 6n + 4, got {depth}")
        blocks = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        layers, channels = [], 16
        for group, out_channels in enumerate((16 * width, 32 * width, 64 * width)):
            for b in range(blocks):
                layers.append(PreActBlock(channels, out_channels, 2 if group and b == 0 else 1, dropout))
                channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


@register_model("wrn")
def wrn(num_classes: int, input_shape: tuple[int, int, int], depth: int = 22, width: int = 2, dropout: float = 0.3) -> nn.Module:
    return WideResNet(num_classes, input_shape[0], depth, width, dropout)
