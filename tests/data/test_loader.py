"""The on-device loader: crop and flip as torchvision does them, seeded epochs, normalisation."""

import torch
import torchvision.transforms.functional as TF

from prunebench.data import DeviceLoader, Split
from prunebench.data.loader import random_crop
from prunebench.spec import AugmentSpec


def split(n=20, c=3, side=8) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, c, side, side), generator=g, dtype=torch.uint8), torch.arange(n) % 4)


def test_crop_matches_torchvision_pad_then_crop():
    images = split().images
    g = torch.Generator().manual_seed(1)
    shifts = torch.randint(0, 9, (len(images), 2), generator=g)
    ours = random_crop(images, shifts, 4)
    for img, (dy, dx), out in zip(images, shifts.tolist(), ours):
        expected = TF.crop(TF.pad(img, [4]), dy, dx, 8, 8)  # RandomCrop(8, padding=4) at offset (dy, dx)
        assert torch.equal(out, expected)


def test_batches_cover_epoch_with_augmentation_applied():
    data = split()
    loader = DeviceLoader(data, batch_size=6, mean=(0.0,) * 3, std=(1 / 255,) * 3, augment=AugmentSpec(crop_padding=2, hflip=True))
    assert loader.steps_per_epoch == 4
    plan = loader.plan(7)
    xs, ys = zip(*(loader.batch(plan, b) for b in range(4)))
    x, y = torch.cat(xs), torch.cat(ys)
    assert sorted(plan.order.tolist()) == list(range(20)) and torch.equal(y, data.labels[plan.order])
    expected = random_crop(data.images[plan.order], plan.shifts, 2)
    expected = torch.where(plan.flips.view(-1, 1, 1, 1), expected.flip(-1), expected)
    assert torch.equal(x, expected.float())  # mean 0, std 1/255: normalisation is the identity on pixels
    assert 0 < plan.flips.sum() < 20


def test_epoch_plan_is_a_pure_function_of_the_key():
    loader = DeviceLoader(split(), batch_size=6, mean=(0.5,) * 3, std=(0.25,) * 3, augment=AugmentSpec(crop_padding=2, hflip=True))
    a, b, c = loader.plan(3), loader.plan(3), loader.plan(4)
    assert torch.equal(a.order, b.order) and torch.equal(a.shifts, b.shifts) and torch.equal(a.flips, b.flips)
    assert not torch.equal(a.order, c.order)
    assert torch.equal(loader.batch(a, 2)[0], loader.batch(b, 2)[0])


def test_normalisation_and_drop_last():
    data = split(n=10)
    loader = DeviceLoader(data, batch_size=4, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125), drop_last=True)
    assert loader.steps_per_epoch == 2
    x, _ = next(loader.in_order(10))
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (data.images.float() / 255 - mean) / std)


def test_in_order_is_file_order():
    data = split(n=10)
    loader = DeviceLoader(data, batch_size=4, mean=(0.0,) * 3, std=(1 / 255,) * 3)
    ys = torch.cat([y for _, y in loader.in_order(3)])
    assert torch.equal(ys, data.labels)


def test_resized_crop_equals_torchvision_crop_then_bilinear_resize():
    from prunebench.data.loader import resized_crop

    images = split(n=4, side=16).images.float()
    boxes = torch.tensor([[0, 0, 16, 16], [2, 3, 9, 12], [5, 1, 16, 7], [0, 8, 4, 16]], dtype=torch.float32)
    ours = resized_crop(images, boxes, 24)
    for img, (x1, y1, x2, y2), out in zip(images, boxes.long().tolist(), ours):
        expected = TF.resized_crop(img, y1, x1, y2 - y1, x2 - x1, [24, 24], antialias=False)
        torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-5)


def test_resized_crop_boxes_follow_torchvision_rules():
    from prunebench.data.loader import resized_crop_boxes

    aug = AugmentSpec(random_resized_crop=224)
    boxes = resized_crop_boxes(5000, (64, 64), aug, torch.Generator().manual_seed(0))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 64).all() and (w > 0).all() and (h > 0).all()
    area = w * h / 64**2
    assert area.min() >= 0.07 and area.max() <= 1.0  # scale (0.08, 1) up to rounding
    assert ((w / h) >= 3 / 4 * 0.9).all() and ((w / h) <= 4 / 3 * 1.1).all()
    # the same distribution as torchvision's sampler: compare mean areas (5000 draws each)
    import torchvision.transforms as T

    torch.manual_seed(0)
    tv = torch.tensor([(lambda p: p[2] * p[3] / 64**2)(T.RandomResizedCrop.get_params(torch.zeros(1, 64, 64), [0.08, 1.0], [3 / 4, 4 / 3]))
                       for _ in range(5000)])
    assert abs(area.mean() - tv.float().mean()) < 0.02


def test_eval_resize_then_center_crop():
    data = split(n=3, side=16)
    loader = DeviceLoader(data, batch_size=2, mean=(0.0,) * 3, std=(1 / 255,) * 3, eval_resize=32, eval_crop=28)
    x, _ = next(loader.in_order(3))
    expected = TF.center_crop(TF.resize(data.images.float(), [32, 32], antialias=False), [28, 28])
    torch.testing.assert_close(x, expected, atol=1e-3, rtol=1e-5)
    assert x.shape == (3, 3, 28, 28)


def test_training_batches_with_random_resized_crop_and_flip():
    loader = DeviceLoader(split(n=8, side=16), batch_size=4, mean=(0.5,) * 3, std=(0.25,) * 3,
                          augment=AugmentSpec(random_resized_crop=32, hflip=True))
    x, y = loader.batch(loader.plan(1), 0)
    assert x.shape == (4, 3, 32, 32) and torch.isfinite(x).all()


def test_per_image_standardization_after_crop():
    from prunebench.data.loader import standardize_per_image

    data = split(n=6)
    loader = DeviceLoader(data, batch_size=6, mean=(0.0,) * 3, std=(1.0,) * 3, augment=AugmentSpec(crop_padding=2),
                          per_image_standardization=True)
    plan = loader.plan(0)
    x, _ = loader.batch(plan, 0)
    cropped = random_crop(data.images[plan.order], plan.shifts, 2).double()
    for img, out in zip(cropped, x):
        expected = (img - img.mean()) / max(img.std(unbiased=False), 1 / img.numel() ** 0.5)
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    flat = torch.full((1, 3, 4, 4), 7, dtype=torch.uint8)  # zero variance: the floor keeps it finite
    assert torch.equal(standardize_per_image(flat), torch.zeros(1, 3, 4, 4))


def test_flip_inside_the_crop_gather_is_bitwise_the_flip_after_normalising():
    """The flip is folded into the crop's gather (no copy of its own): the same floats as flipping the
    normalised batch, for any mean and std; channels_last batches are made in that layout directly."""
    from prunebench.data.loader import normalize

    data = split()
    loader = DeviceLoader(data, batch_size=20, mean=(0.49, 0.48, 0.45), std=(0.247, 0.243, 0.261),
                          augment=AugmentSpec(crop_padding=4, hflip=True))
    plan = loader.plan(11)
    x, _ = loader.batch(plan, 0)
    crops = normalize(random_crop(data.images[plan.order], plan.shifts, 4), loader.scale, loader.shift)
    expected = torch.where(plan.flips.view(-1, 1, 1, 1), crops.flip(-1), crops)
    assert torch.equal(x, expected) and 0 < plan.flips.sum() < 20
    loader.memory_format = torch.channels_last
    nhwc, _ = loader.batch(plan, 0)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc, expected)
    assert next(loader.in_order(20))[0].is_contiguous(memory_format=torch.channels_last)
