"""ResNets the pruning papers use.

* ``resnet18`` / ``resnet50``: torchvision's ImageNet ResNets, by default with the CIFAR stem most pruning
  papers use at 32px (3x3/1 conv, no max pool), so the first stage still sees 32x32 maps. torchvision's
  module names are kept (``conv1``, ``layer2.0.downsample.0``, ``fc``) because suites pick prunable layers
  by globs on parameter names. Option ``width`` (default 64, torchvision's network itself) sets the
  channels of the stem and the first stage; the stages have width, 2x, 4x and 8x (times 4 at the output
  of ResNet-50's bottlenecks), as the ``small-dense-inc`` ResNet-18 of the LRR authors' code.
* ``resnet20`` / ``resnet56`` and ``cifar_resnet`` (option ``depth``: any 6n+2, e.g. 32 or 110): the CIFAR
  ResNets of He et al. (2016) as in OpenLTH's ``cifar_resnet``, with option-B projection shortcuts and
  module names ``conv``, ``blocks.<i>.conv1``, ``blocks.<i>.shortcut.0``, ``fc``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.models.registry import register_model

STANDARD_WIDTH = 64  # torchvision's stem and first stage: ``width`` at this value builds its network unchanged
_BLOCKS = {"resnet18": ("BasicBlock", [2, 2, 2, 2]), "resnet50": ("Bottleneck", [3, 4, 6, 3])}


def _stem_conv(in_channels: int, kernel: int, stride: int, width: int = STANDARD_WIDTH) -> nn.Conv2d:
    """A bias-free stem conv initialised as torchvision initialises every other conv of its ResNets."""
    conv = nn.Conv2d(in_channels, width, kernel, stride=stride, padding=kernel // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _check_width(width: object) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (channels of the first stage; {STANDARD_WIDTH}: the standard "
                         f"network), got {width!r}")
    return width


def _widened(arch: str, num_classes: int, width: int) -> nn.Module:
    """torchvision's ResNet with stages of width, 2x, 4x, 8x planes: its own constructor and init loop,
    each stage's planes scaled by width / 64. The stem conv, its BN and the classifier, which torchvision
    builds at 64 and 512 * expansion channels, are replaced at the new width (conv1 again by the caller
    for a CIFAR stem or a grey input). At width 64 its stages are torchvision's, draw for draw (a test
    checks it); only the replaced stem conv and classifier are drawn anew. ``resnet18(width=64)`` does not
    come here: it is torchvision's model itself."""
    from torchvision.models import resnet  # lazily, as in _torchvision_resnet

    class WidthResNet(resnet.ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # torchvision's signature
            if not hasattr(self, "layer1"):  # layer1 takes the stem's channels: width, not torchvision's 64
                self.inplanes = width
            return super()._make_layer(block, planes * width // STANDARD_WIDTH, blocks, stride, dilate)

    block_name, layers = _BLOCKS[arch]
    block = getattr(resnet, block_name)
    model = WidthResNet(block, layers, num_classes=num_classes)
    model.conv1 = _stem_conv(3, 7, 2, width)
    model.bn1 = nn.BatchNorm2d(width)  # torchvision's BN init (weight 1, bias 0) is BatchNorm2d's own
    model.fc = nn.Linear(8 * width * block.expansion, num_classes)
    return model


def _torchvision_resnet(
    arch: str, num_classes: int, input_shape: tuple[int, int, int], stem: Literal["cifar", "imagenet"], classifier_bias: bool,
    width: int = STANDARD_WIDTH,
) -> nn.Module:
    """Adapt a torchvision ResNet in place, keeping its module names and its init everywhere else."""
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    width = _check_width(width)
    import torchvision.models  # 2 s of imports (its whole model zoo): paid by the first ResNet built, not by every command

    if width == STANDARD_WIDTH:
        model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    else:
        model = _widened(arch, num_classes, width)
    in_channels = input_shape[0]
    if stem == "cifar":
        model.conv1 = _stem_conv(in_channels, 3, 1, width)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = _stem_conv(in_channels, 7, 2, width)
    if not classifier_bias:
        # torchvision leaves fc at nn.Linear's default init; a fresh bias-free Linear gets the same.
        model.fc = nn.Linear(model.fc.in_features, num_classes, bias=False)
    return model


@register_model("resnet18")
def resnet18(
    num_classes: int,
    input_shape: tuple[int, int, int],
    stem: Literal["cifar", "imagenet"] = "cifar",
    classifier_bias: bool = True,
    width: int = STANDARD_WIDTH,
) -> nn.Module:
    """ResNet-18; ``stem="imagenet"`` keeps the 7x7/2 conv and max pool (e.g. Tiny ImageNet at 224px);
    ``width`` W gives stages of W, 2W, 4W, 8W channels (64: the standard network)."""
    return _torchvision_resnet("resnet18", num_classes, input_shape, stem, classifier_bias, width)


@register_model("resnet50")
def resnet50(
    num_classes: int,
    input_shape: tuple[int, int, int],
    stem: Literal["cifar", "imagenet"] = "cifar",
    classifier_bias: bool = True,
    width: int = STANDARD_WIDTH,
) -> nn.Module:
    """ResNet-50 (bottleneck blocks); stem, classifier and width options as for ``resnet18`` (a stage's
    blocks have its width inside and 4x at their output)."""
    return _torchvision_resnet("resnet50", num_classes, input_shape, stem, classifier_bias, width)


class CifarBlock(nn.Module):
    """Two 3x3 convs; a 1x1 conv + BN projection shortcut where the shape changes (option B), or
    wherever ``project`` asks (the TF official ResNet projects in the first block of every stage)."""

    def __init__(self, f_in: int, f_out: int, stride: int, project: bool = False, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out, momentum=bn_momentum)
        if project or stride != 1 or f_in != f_out:
            self.shortcut: nn.Module = nn.Sequential(nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False),
                                                     nn.BatchNorm2d(f_out, momentum=bn_momentum))
        else:
            self.shortcut = nn.Sequential()  # parameter-free, so no 'shortcut.*' names to match

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem conv, three stages of ``n`` blocks (width, 2x, 4x; stride 2 entering stages 2 and 3),
    global average pooling and a Linear classifier with bias."""

    def __init__(self, depth: int, width: int, num_classes: int, in_channels: int,
                 projection: str = "when_needed", bn_momentum: float = 0.1) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2 (n >= 1), got {depth}")
        if projection not in ("when_needed", "every_stage"):
            raise ValueError(f"projection must be 'when_needed' or 'every_stage', got {projection!r}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width, momentum=bn_momentum)
        blocks: list[nn.Module] = []
        f_in = width
        for stage, f_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(CifarBlock(f_in, f_out, stride=2 if stage > 0 and i == 0 else 1,
                                         project=projection == "every_stage" and i == 0, bn_momentum=bn_momentum))
                f_in = f_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(f_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("cifar_resnet")
def cifar_resnet(num_classes: int, input_shape: tuple[int, int, int], depth: int = 20, width: int = 16,
                 projection: str = "when_needed", bn_momentum: float = 0.1) -> nn.Module:
    """A CIFAR ResNet of any depth 6n+2.

    Left at PyTorch's default layer init on purpose: OpenLTH/SynFlow re-initialise with kaiming normal,
    which a suite gets by naming ``init: kaiming_normal_fan_in`` (or ``_fan_out``) in its model spec.
    ``projection: every_stage`` and ``bn_momentum: 0.003`` (TF's decay 0.997) with ``init:
    tf_variance_scaling`` give the TF official ResNet v1 of Renda et al. 2020.
    """
    return CifarResNet(depth, width, num_classes, input_shape[0], projection, bn_momentum)


@register_model("resnet20")
def resnet20(num_classes: int, input_shape: tuple[int, int, int], width: int = 16,
             projection: str = "when_needed", bn_momentum: float = 0.1) -> nn.Module:
    """CIFAR ResNet-20 (n=3); PyTorch default init unless the suite's ``init`` overrides it."""
    return CifarResNet(20, width, num_classes, input_shape[0], projection, bn_momentum)


@register_model("resnet56")
def resnet56(num_classes: int, input_shape: tuple[int, int, int], width: int = 16,
             projection: str = "when_needed", bn_momentum: float = 0.1) -> nn.Module:
    """CIFAR ResNet-56 (n=9); PyTorch default init unless the suite's ``init`` overrides it."""
    return CifarResNet(56, width, num_classes, input_shape[0], projection, bn_momentum)
