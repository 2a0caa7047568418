"""LeNet-5 (6/16 conv, 120/84 fc; Lecun et al. 1998, max pooling and ReLU) and LeNet-300-100."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.registry import register_model


class LeNet5(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, side: int) -> None:
        super().__init__()
        # The classic net sees 32x32 inputs; 28x28 ones (MNIST) get padding 2 on the first conv.
        pad = (32 - side) // 2 if side < 32 else 0
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
        self.conv2 = nn.Conv2d(6, 16, 5)
        after = ((side + 2 * pad - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * after * after, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = x.flatten(1)
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class LeNet300100(nn.Module):
    def __init__(self, num_classes: int, inputs: int, hidden: tuple[int, ...] = (300, 100)) -> None:
        super().__init__()
        widths = [inputs, *hidden]
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.out = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.fc:
            x = torch.relu(layer(x))
        return self.out(x)


@register_model("lenet5")
def lenet5(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    c, h, w = input_shape
    if h != w:
        raise ValueError(f"lenet5 expects square images, got {h}x{w}")
    return LeNet5(num_classes, c, h)


@register_model("lenet_300_100")
def lenet_300_100(num_classes: int, input_shape: tuple[int, int, int], hidden: tuple[int, ...] = (300, 100)) -> nn.Module:
    c, h, w = input_shape
    return LeNet300100(num_classes, c * h * w, tuple(hidden))
