"""A batch loader over a split held whole, as uint8, on the training device.

There is no DataLoader, no worker process and no PIL: each epoch's order, crop offsets, resized-crop
boxes and flips are drawn at once from a CPU generator seeded by the caller's key (so they are the
same on every device, and an epoch can be restarted at any batch), and the batch is cropped,
flipped and normalised on the device. Crop pads with zeros in pixel space, as torchvision's
RandomCrop does on a PIL image before normalisation. A random resized crop samples its box as
torchvision's RandomResizedCrop does and resamples it exactly as cropping then a bilinear resize
without antialiasing would (for Tiny ImageNet's 64px images upsampled to 224 antialiasing is moot).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from prunebench.data.registry import Split
from prunebench.spec import AugmentSpec


@dataclass(frozen=True)
class EpochPlan:
    order: torch.Tensor  # (N,) example indices, on the device
    shifts: torch.Tensor | None  # (N, 2) crop offsets (dy, dx) in [0, 2 * padding]
    flips: torch.Tensor | None  # (N,) bool
    boxes: torch.Tensor | None = None  # (N, 4) resized-crop boxes (x1, y1, x2, y2), pixel edges


def normalize(images: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
              memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 pixels -> (x / 255 - mean) / std, with scale = 1 / (255 std) and shift = mean / std; the
    conversion to float is also the one copy into ``memory_format``."""
    return images.to(torch.float32, memory_format=memory_format).mul_(scale).sub_(shift)


def standardize_per_image(images: torch.Tensor) -> torch.Tensor:
    """TF's per_image_standardization: (x - mean) / max(std, 1 / sqrt(N)) over each image's pixels."""
    x = images.float()
    n = x[0].numel()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp(min=n**-0.5)
    return (x - mean) / std


class DeviceLoader:
    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: AugmentSpec = AugmentSpec(),
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        eval_resize: int | None = None,
        eval_crop: int | None = None,
        per_image_standardization: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.augment = augment
        self.drop_last = drop_last
        self.eval_resize, self.eval_crop = eval_resize, eval_crop
        self.per_image = per_image_standardization
        self.memory_format = torch.contiguous_format  # of the batches (the Trainer sets channels_last)
        channels = self.images.shape[1]
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = mean_t / std_t
        if len(self) < batch_size and drop_last:
            raise ValueError(f"{len(self)} examples cannot fill one batch of {batch_size} with drop_last")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """One image as the model sees it in training (after a resized crop, if any)."""
        c, h, w = self.images.shape[1:]
        side = self.augment.random_resized_crop
        return (c, side, side) if side else (c, h, w)

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self), self.batch_size, self.drop_last)

    def plan(self, key: int) -> EpochPlan:
        """The order and augmentation of one epoch, a pure function of ``key``."""
        g = torch.Generator().manual_seed(key)
        n, pad = len(self), self.augment.crop_padding
        order = torch.randperm(n, generator=g)
        shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=g) if pad else None
        boxes = resized_crop_boxes(n, self.images.shape[-2:], self.augment, g) if self.augment.random_resized_crop else None
        flips = torch.rand(n, generator=g) < 0.5 if self.augment.hflip else None
        to = lambda t: None if t is None else t.to(self.device, non_blocking=True)  # noqa: E731
        return EpochPlan(to(order), to(shifts), to(flips), to(boxes))

    def batch(self, plan: EpochPlan, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of the epoch: normalised float images and labels."""
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        idx = plan.order[sl]
        images = self.images[idx]
        flips = plan.flips[sl] if plan.flips is not None else None
        if plan.shifts is not None and plan.boxes is None and not self.per_image:
            # The flip is a reversed column order of the crop's gather: no copy of its own (exact, as
            # the per-channel affine that follows acts on each pixel alone).
            return self._normalize(random_crop(images, plan.shifts[sl], self.augment.crop_padding, flips)), self.labels[idx]
        if plan.shifts is not None:
            images = random_crop(images, plan.shifts[sl], self.augment.crop_padding)
        images = self._normalize(images)  # affine per channel or per image: commutes with resampling and flips
        if plan.boxes is not None:
            images = resized_crop(images, plan.boxes[sl], self.augment.random_resized_crop)
        if flips is not None:
            images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
        return images.contiguous(memory_format=self.memory_format), self.labels[idx]

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        if self.per_image:
            return standardize_per_image(images).contiguous(memory_format=self.memory_format)
        return normalize(images, self.scale, self.shift, self.memory_format)

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split in file order, without augmentation (evaluation)."""
        for start in range(0, len(self), batch_size):
            images = self._normalize(self.images[start : start + batch_size])
            if self.eval_resize:
                images = F.interpolate(images, size=(self.eval_resize, self.eval_resize), mode="bilinear", align_corners=False)
            if self.eval_crop:
                images = center_crop(images, self.eval_crop)
            yield images.contiguous(memory_format=self.memory_format), self.labels[start : start + batch_size]


def steps_per_epoch(examples: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps of one epoch (the planner counts with the same rule the loader batches by)."""
    return examples // batch_size if drop_last else -(-examples // batch_size)


def random_crop(images: torch.Tensor, shifts: torch.Tensor, padding: int, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Crop every image of a batch at its own offset after zero padding, in one gather; with ``flips``
    (bool per image), the flipped images are gathered in reversed column order."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = (shifts[:, 0:1] + torch.arange(h, device=images.device)).view(b, 1, h, 1)
    columns = torch.arange(w, device=images.device)
    if flips is not None:
        columns = torch.where(flips.view(b, 1), columns.flip(0), columns)
    cols = (shifts[:, 1:2] + columns).view(b, 1, 1, w)
    batch = torch.arange(b, device=images.device).view(b, 1, 1, 1)
    chan = torch.arange(c, device=images.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


def center_crop(images: torch.Tensor, side: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top : top + side, left : left + side]


def resized_crop_boxes(n: int, hw: tuple[int, int], augment: AugmentSpec, g: torch.Generator, attempts: int = 10) -> torch.Tensor:
    """torchvision's RandomResizedCrop.get_params for n images at once: (n, 4) boxes (x1, y1, x2, y2).

    Up to ``attempts`` candidate boxes per image; the first that fits wins, else the central crop
    clamped to the ratio range (torchvision's fallback).
    """
    height, width = hw
    area = height * width
    lo, hi = augment.rrc_scale
    log_lo, log_hi = math.log(augment.rrc_ratio[0]), math.log(augment.rrc_ratio[1])
    target = area * (lo + (hi - lo) * torch.rand(n, attempts, generator=g, dtype=torch.float64))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, attempts, generator=g, dtype=torch.float64))
    w = torch.sqrt(target * aspect).round().long()
    h = torch.sqrt(target / aspect).round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    u = torch.rand(n, attempts, 2, generator=g, dtype=torch.float64)
    top = (u[..., 0] * (height - h + 1).clamp(min=1)).floor().long()
    left = (u[..., 1] * (width - w + 1).clamp(min=1)).floor().long()
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    in_ratio = width / height
    if in_ratio < augment.rrc_ratio[0]:
        fw, fh = width, round(width / augment.rrc_ratio[0])
    elif in_ratio > augment.rrc_ratio[1]:
        fw, fh = round(height * augment.rrc_ratio[1]), height
    else:
        fw, fh = width, height
    rows = torch.arange(n)
    pick = first.clamp(min=0)
    ok = first >= 0
    x1 = torch.where(ok, left[rows, pick], torch.full((n,), (width - fw) // 2))
    y1 = torch.where(ok, top[rows, pick], torch.full((n,), (height - fh) // 2))
    x2 = x1 + torch.where(ok, w[rows, pick], torch.full((n,), fw))
    y2 = y1 + torch.where(ok, h[rows, pick], torch.full((n,), fh))
    return torch.stack([x1, y1, x2, y2], 1).float()


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, side: int) -> torch.Tensor:
    """Crop each image to its box, then resize to side x side, bilinear without antialiasing: exactly
    torchvision's crop-then-resize (F.interpolate, align_corners=False), batched as two gathers."""
    b, c = images.shape[:2]
    x0, y0, x1, y1 = boxes.to(torch.float64).unbind(1)
    rows_lo, rows_hi, fy = _source_pixels(y0, y1 - y0, side)
    cols_lo, cols_hi, fx = _source_pixels(x0, x1 - x0, side)
    width = images.shape[-1]
    gather_rows = lambda idx: images.gather(2, idx.view(b, 1, side, 1).expand(b, c, side, width))  # noqa: E731
    rows = torch.lerp(gather_rows(rows_lo), gather_rows(rows_hi), fy.view(b, 1, side, 1))
    gather_cols = lambda idx: rows.gather(3, idx.view(b, 1, 1, side).expand(b, c, side, side))  # noqa: E731
    return torch.lerp(gather_cols(cols_lo), gather_cols(cols_hi), fx.view(b, 1, 1, side))


def _source_pixels(start: torch.Tensor, length: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each output pixel: the two source pixels and the weight of the second (PyTorch's linear rule)."""
    t = torch.arange(side, dtype=torch.float64, device=start.device) + 0.5
    src = (t[None, :] * (length[:, None] / side) - 0.5).clamp(min=0)
    lo = src.floor()
    hi = torch.minimum(lo + 1, length[:, None] - 1)
    weight = (src - lo).to(torch.float32)
    return (start[:, None] + lo).long(), (start[:, None] + hi).long(), weight
