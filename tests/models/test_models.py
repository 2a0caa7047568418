"""Architecture tests: parameter counts the papers report, shapes, names suites glob on, and init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunebench.models import ModelError, build_model, check_model
from prunebench.spec import ModelSpec


def _build(name: str, num_classes: int, shape: tuple[int, int, int], **options: object) -> nn.Module:
    return build_model(ModelSpec(name=name, options=options), num_classes, shape)


def _prunable(model: nn.Module) -> int:
    """Weights of every Conv2d and Linear (biases excluded): what the papers' sparsities are relative to."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _total(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


CIFAR = (3, 32, 32)


@pytest.mark.parametrize(
    ("name", "classes", "shape", "prunable", "total"),
    [
        ("resnet18", 10, CIFAR, 11_164_352, 11_173_962),
        ("resnet18", 100, CIFAR, 11_210_432, 11_220_132),
        ("resnet18", 200, (3, 64, 64), 11_261_632, 11_271_432),
        ("resnet50", 100, CIFAR, 23_652_032, 23_705_252),
        ("resnet20", 10, CIFAR, 270_896, 272_474),
    ],
)
def test_param_counts_match_table(name: str, classes: int, shape: tuple[int, int, int], prunable: int, total: int) -> None:
    model = _build(name, classes, shape)
    assert (_prunable(model), _total(model)) == (prunable, total)


def test_resnet20_count_by_hand() -> None:
    convs = 3 * 16 * 9 + 6 * 16 * 16 * 9  # stem + stage 1
    convs += 16 * 32 * 9 + 5 * 32 * 32 * 9 + 16 * 32  # stage 2 (+ 1x1 projection)
    convs += 32 * 64 * 9 + 5 * 64 * 64 * 9 + 32 * 64  # stage 3 (+ 1x1 projection)
    bn = 2 * (16 + 6 * 16 + 7 * 32 + 7 * 64)  # stem, 6 block BNs per stage, projection BNs
    model = _build("resnet20", 10, CIFAR)
    assert _prunable(model) == convs + 64 * 10 == 270_896
    assert _total(model) == convs + 64 * 10 + 10 + bn


def test_resnet56_count() -> None:
    # The commonly quoted ~0.85M: n=9 blocks per stage.
    model = _build("resnet56", 10, CIFAR)
    convs = 3 * 16 * 9 + 18 * 16 * 16 * 9 + 16 * 32 * 9 + 17 * 32 * 32 * 9 + 16 * 32 + 32 * 64 * 9 + 17 * 64 * 64 * 9 + 32 * 64
    assert _prunable(model) == convs + 640
    assert _total(model) == 855_770


def test_cifar_resnet_generic_depth_and_width() -> None:
    assert _prunable(_build("cifar_resnet", 10, CIFAR, depth=20)) == 270_896
    assert sum(isinstance(m, nn.Conv2d) for m in _build("cifar_resnet", 10, CIFAR, depth=32).modules()) == 1 + 30 + 2
    wide = _build("resnet20", 10, CIFAR, width=32)
    assert wide.fc.in_features == 128 and wide.conv.out_channels == 32
    with pytest.raises(ValueError, match="6n\\+2"):
        _build("cifar_resnet", 10, CIFAR, depth=21)


def _vgg_weights(plan: list[int | str], classes: int) -> tuple[int, int]:
    """(prunable, total) from the plan: conv3x3 weights + bias, BN weight + bias, fc 512 -> classes."""
    prunable, total, f_in = 0, 0, 3
    for f in plan:
        if f != "M":
            prunable += f_in * f * 9
            total += f_in * f * 9 + f + 2 * f
            f_in = f
    return prunable + 512 * classes, total + 512 * classes + classes


@pytest.mark.parametrize(
    ("name", "plan"),
    [
        ("vgg16_bn", [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]),
        ("vgg11_bn", [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512]),
    ],
)
def test_vgg_counts(name: str, plan: list[int | str]) -> None:
    model = _build(name, 10, CIFAR)
    assert (_prunable(model), _total(model)) == _vgg_weights(plan, 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 512


def test_vgg16_known_size() -> None:
    # OpenLTH's cifar_vgg_16 on CIFAR-10: 14,728,266 parameters (13 convs with bias, 13 BNs, 1 fc).
    assert _total(_build("vgg16_bn", 10, CIFAR)) == 14_728_266


def test_lenet5_count_by_hand() -> None:
    # 28x28 input padded to 32: conv 5x5 -> 28, pool -> 14, conv 5x5 -> 10, pool -> 5: 16*5*5 = 400 features.
    weights = 1 * 6 * 25 + 6 * 16 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert weights == 61_470
    model = _build("lenet5", 10, (1, 28, 28))
    assert _prunable(model) == weights
    assert _total(model) == weights + 6 + 16 + 120 + 84 + 10


def test_lenet_300_100_count_by_hand() -> None:
    weights = 784 * 300 + 300 * 100 + 100 * 10
    assert weights == 266_200
    model = _build("lenet_300_100", 10, (1, 28, 28))
    assert _prunable(model) == weights
    assert _total(model) == weights + 300 + 100 + 10


def test_resnet18_without_classifier_bias() -> None:
    model = _build("resnet18", 10, CIFAR, classifier_bias=False)
    names = dict(model.named_parameters())
    assert "fc.bias" not in names and names["fc.weight"].shape == (10, 512)
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert _total(model) == _prunable(model) + bn
    assert _prunable(model) == 11_164_352


@pytest.mark.parametrize(
    ("name", "classes", "shape", "options"),
    [
        ("resnet18", 10, CIFAR, {}),
        ("resnet18", 200, (3, 64, 64), {"stem": "imagenet"}),
        ("resnet18", 10, (1, 32, 32), {"stem": "imagenet"}),
        ("resnet50", 100, CIFAR, {}),
        ("resnet50", 200, (3, 64, 64), {"stem": "imagenet"}),
        ("resnet20", 10, CIFAR, {}),
        ("resnet56", 100, CIFAR, {}),
        ("resnet20", 10, (1, 28, 28), {}),
        ("vgg16_bn", 10, CIFAR, {}),
        ("vgg11_bn", 100, CIFAR, {}),
        ("vgg16_bn", 200, (3, 64, 64), {}),
        ("lenet5", 10, (1, 28, 28), {}),
        ("lenet_300_100", 10, (1, 28, 28), {}),
    ],
)
def test_output_shape(name: str, classes: int, shape: tuple[int, int, int], options: dict[str, object]) -> None:
    model = _build(name, classes, shape, **options).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, classes)


def test_resnet_stems() -> None:
    cifar = _build("resnet18", 10, CIFAR)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1) and cifar.conv1.padding == (1, 1)
    assert cifar.conv1.bias is None and isinstance(cifar.maxpool, nn.Identity)
    imagenet = _build("resnet18", 10, CIFAR, stem="imagenet")
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)
    gray = _build("resnet50", 10, (1, 64, 64), stem="imagenet")
    assert gray.conv1.weight.shape == (64, 1, 7, 7) and gray.conv1.stride == (2, 2)
    with pytest.raises(ValueError, match="stem"):
        _build("resnet18", 10, CIFAR, stem="tiny")


def test_parameter_names_for_layer_globs() -> None:
    r18 = dict(_build("resnet18", 10, CIFAR).named_parameters())
    assert {"conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "fc.weight"} <= r18.keys()
    r50 = dict(_build("resnet50", 10, CIFAR).named_parameters())
    assert {"conv1.weight", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "fc.weight"} <= r50.keys()
    r20 = dict(_build("resnet20", 10, CIFAR).named_parameters())
    assert {"conv.weight", "blocks.0.conv1.weight", "blocks.3.shortcut.0.weight", "blocks.6.shortcut.0.weight", "fc.weight"} <= r20.keys()
    assert not any(n.startswith(("blocks.0.shortcut", "blocks.1.shortcut")) for n in r20)
    vgg = dict(_build("vgg16_bn", 10, CIFAR).named_parameters())
    assert {"layers.0.conv.weight", "layers.0.bn.weight", "fc.weight"} <= vgg.keys()


@pytest.mark.parametrize("name", ["resnet18", "resnet20", "vgg16_bn", "lenet5"])
def test_same_seed_same_init(name: str) -> None:
    shape = (1, 28, 28) if name == "lenet5" else CIFAR

    def state() -> dict[str, torch.Tensor]:
        torch.manual_seed(7)
        return _build(name, 10, shape).state_dict()

    a, b = state(), state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(8)
    c = _build(name, 10, shape).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(("stem", "shape", "kernel"), [("cifar", CIFAR, 3), ("imagenet", (1, 64, 64), 7)])
def test_replaced_stem_init_is_kaiming_fan_out(stem: str, shape: tuple[int, int, int], kernel: int) -> None:
    torch.manual_seed(0)
    weight = _build("resnet18", 10, shape, stem=stem).conv1.weight
    expected = math.sqrt(2.0 / (64 * kernel * kernel))  # fan_out = out_channels * kh * kw
    assert abs(weight.std().item() / expected - 1) < 0.1
    assert abs(weight.mean().item()) < 0.1 * expected


def test_init_scheme_overrides_default() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(name="resnet20", init="kaiming_normal_fan_out")
    model = build_model(spec, 10, CIFAR)
    w = model.blocks[8].conv2.weight  # 64 * 64 * 9 weights, fan_out = 64 * 9
    assert abs(w.std().item() / math.sqrt(2.0 / (64 * 9)) - 1) < 0.05


def test_timm_model_through_build_model() -> None:
    model = build_model(ModelSpec(name="timm:resnet18"), 7, (1, 32, 32))
    assert model.conv1.weight.shape[1] == 1
    assert model.get_classifier().out_features == 7
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def test_unknown_option_names_valid_ones() -> None:
    with pytest.raises(ModelError) as err:
        check_model(ModelSpec(name="resnet18", options={"depth": 18}))
    message = str(err.value)
    assert "'depth'" in message and "stem" in message and "classifier_bias" in message
    with pytest.raises(ModelError, match="width"):
        build_model(ModelSpec(name="resnet20", options={"widht": 32}), 10, CIFAR)


def test_renda_tf_resnet20_variant():
    """TF official ResNet v1 (Renda et al. 2020): a projection in the first block of every stage,
    BN decay 0.997, variance-scaling truncated-normal convs, N(0, 0.01) dense."""
    from prunebench.models import build_model
    from prunebench.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(name="resnet20", init="tf_variance_scaling", options={"projection": "every_stage", "bn_momentum": 0.003})
    model = build_model(spec, 10, (3, 32, 32))
    shortcuts = sorted({n.split(".shortcut")[0] for n, _ in model.named_parameters() if ".shortcut." in n})
    assert shortcuts == ["blocks.0", "blocks.3", "blocks.6"]  # the 16->16 stage projects too
    assert all(m.momentum == 0.003 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    w = model.blocks[1].conv1.weight  # fan_in 16 * 9
    std = (1 / 144) ** 0.5 / 0.87962566103423978
    assert w.abs().max() <= 2 * std + 1e-7 and abs(w.std().item() - (1 / 144) ** 0.5) < 0.1 * (1 / 144) ** 0.5
    assert abs(model.fc.weight.std().item() - 0.01) < 0.002 and torch.count_nonzero(model.fc.bias) == 0
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def _resnet18_counts(width: int, classes: int, in_channels: int = 3) -> tuple[int, int]:
    """(prunable, BN) weights of a CIFAR-stem ResNet-18 of stages W, 2W, 4W, 8W and a bias-free classifier."""
    w = [width, 2 * width, 4 * width, 8 * width]
    convs = in_channels * w[0] * 9  # the 3x3 stem
    bn = 2 * w[0]
    f_in = w[0]
    for f in w:
        convs += f_in * f * 9 + f * f * 9 + 2 * f * f * 9  # block 1 (3x3 in, 3x3), block 2 (two 3x3)
        bn += 2 * 4 * f
        if f_in != f:
            convs += f_in * f  # the 1x1 projection of block 1
            bn += 2 * f
        f_in = f
    return convs + w[3] * classes, bn


@pytest.mark.parametrize("width", [16, 32, 64, 128])
def test_resnet18_width_counts_by_formula(width: int) -> None:
    prunable, bn = _resnet18_counts(width, 10)
    model = _build("resnet18", 10, CIFAR, classifier_bias=False, width=width)
    assert _prunable(model) == prunable and _total(model) == prunable + bn
    assert model.conv1.out_channels == model.bn1.num_features == width
    assert [getattr(model, f"layer{i}")[1].conv2.out_channels for i in (1, 2, 3, 4)] == [width, 2 * width, 4 * width, 8 * width]
    assert model.fc.weight.shape == (10, 8 * width)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, *CIFAR)).shape == (2, 10)


def test_resnet18_width_64_is_the_standard_network() -> None:
    assert _resnet18_counts(64, 10)[0] == 11_164_352  # the formula agrees with the count the papers state
    torch.manual_seed(0)
    default = _build("resnet18", 10, CIFAR, classifier_bias=False).state_dict()
    torch.manual_seed(0)
    explicit = _build("resnet18", 10, CIFAR, classifier_bias=False, width=64).state_dict()
    assert list(default) == list(explicit) and all(torch.equal(default[k], explicit[k]) for k in default)
    assert sum(v.numel() for k, v in default.items() if k.endswith("weight") and v.dim() > 1) == 11_164_352
    # Other widths keep every name (suites glob on them), with their shapes scaled.
    narrow = _build("resnet18", 10, CIFAR, classifier_bias=False, width=32).state_dict()
    assert list(narrow) == list(default)
    assert narrow["layer3.0.downsample.0.weight"].shape == (128, 64, 1, 1) and narrow["fc.weight"].shape == (10, 256)


def test_widened_path_at_width_64_draws_torchvisions_stages() -> None:
    """The width path is torchvision's constructor with scaled planes: at 64 its stages are torchvision's
    weights draw for draw (only the replaced stem conv and classifier are drawn again)."""
    import torchvision.models

    from prunebench.models.resnet import _widened

    for arch in ("resnet18", "resnet50"):
        torch.manual_seed(1)
        ours = _widened(arch, 10, 64).state_dict()
        torch.manual_seed(1)
        theirs = getattr(torchvision.models, arch)(weights=None, num_classes=10).state_dict()
        assert list(ours) == list(theirs) and all(ours[k].shape == theirs[k].shape for k in ours)
        assert all(torch.equal(ours[k], theirs[k]) for k in ours if k.startswith(("layer", "bn1")))


def test_resnet50_width() -> None:
    model = _build("resnet50", 100, CIFAR, width=32)
    assert model.layer1[0].conv2.out_channels == 32 and model.layer1[0].conv3.out_channels == 128
    assert model.layer4[0].conv3.out_channels == 32 * 8 * 4 and model.fc.in_features == 1024
    imagenet = _build("resnet50", 10, (1, 64, 64), stem="imagenet", width=16)
    assert imagenet.conv1.weight.shape == (16, 1, 7, 7) and imagenet.bn1.num_features == 16


@pytest.mark.parametrize("width", [0, -8, 32.0, True, "64"])
def test_bad_width_is_a_clear_error(width: object) -> None:
    with pytest.raises(ValueError, match=r"width must be a positive integer .* got"):
        _build("resnet18", 10, CIFAR, width=width)
