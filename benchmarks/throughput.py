"""Training throughput: the harness against the usual PyTorch loop and against the compute floor.

Three loops train the same model (same init, same SGD) on synthetic data of one shape:

(a) ``harness``: the Trainer exactly as a suite runs it, built by ``prunebench.runner.build_session``
    with an 80%-sparse global magnitude mask: data resident on the device as uint8, batched
    crop/flip there, masks by one foreach multiply after the step, the given execution settings;
(b) ``reference``: the loop most pruning codebases use: an in-memory Dataset of PIL images,
    torchvision transforms (RandomCrop(padding), RandomHorizontalFlip, ToTensor, Normalize) in
    DataLoader workers, the same mask through ``torch.nn.utils.prune.custom_from_mask`` forward
    hooks, fp32, eager, contiguous memory, ``loss.item()`` per step;
(c) ``floor``: forward, backward and optimizer step on batches staged on the device beforehand,
    with (a)'s precision, memory format and compile setting, and no mask, no augmentation.

A timed "epoch" is ``--steps`` batches. After ``--warmup`` epochs of each loop, the loops take
turns epoch by epoch (a, b, c, a, b, c, ...), so a change in the machine's load hits all three
alike; each figure is the median of ``--repeats`` epochs. ``--breakdown`` then times the parts of
(a)'s step (data, forward, backward, optimizer, mask), synchronising the device after each.

    python benchmarks/throughput.py --model resnet18 --data-shape 3x32x32 --batch-size 128 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset

from prunebench.data import DataCache, Prepared, Split
from prunebench.masks import Masks, apply_masks
from prunebench.models import build_model
from prunebench.runner import build_session, configure_torch, provenance, resolve_device
from prunebench.seeds import derive_seed
from prunebench.spec import ExecSettings, RunSpec
from prunebench.store import RunDir
from prunebench.train import Trainer, compiled_forward_loss, forward_loss, make_optimizer

LOOPS = ("harness", "reference", "floor")


@dataclass(frozen=True)
class Config:
    model: str = "resnet18"
    data_shape: tuple[int, int, int] = (3, 32, 32)
    classes: int = 10
    batch_size: int = 128
    steps: int = 10  # batches per timed epoch
    warmup: int = 1  # untimed epochs of each loop
    repeats: int = 3  # timed epochs of each loop
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"
    threads: int | None = None
    num_workers: int = 2  # (b)'s DataLoader workers
    sparsity: float = 0.8
    crop_padding: int = 4
    hflip: bool = True


def run_spec(cfg: Config) -> RunSpec:
    """A RunSpec for (a): the shape's synthetic data, one level long enough for every timed epoch."""
    c, h, w = cfg.data_shape
    if h != w:
        raise SystemExit(f"--data-shape must be square (the synthetic dataset is), got {h}x{w}")
    return RunSpec.model_validate({
        "suite": "throughput", "label": "harness", "method": "dense", "params": {}, "seed": 0,
        "data": {"dataset": "synthetic", "augment": {"crop_padding": cfg.crop_padding, "hflip": cfg.hflip},
                 "synthetic": {"channels": c, "size": h, "classes": cfg.classes,
                               "train_size": cfg.batch_size * cfg.steps, "test_size": cfg.batch_size}},
        "model": {"name": cfg.model},
        "train": {"epochs": cfg.warmup + cfg.repeats, "batch_size": cfg.batch_size, "drop_last": True,
                  "precision": cfg.precision,
                  "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4},
                  "schedule": {"name": "cosine", "unit": "step"}},
        "prune": {"scorer": "magnitude", "allocation": "global"},
    })


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------- loops
class Harness:
    """(a): the Trainer of a suite's run, pruned to ``1 - sparsity`` by global magnitude."""

    def __init__(self, spec: RunSpec, settings: ExecSettings, device: torch.device, sparsity: float, records: Path) -> None:
        data = DataCache()
        session = build_session(spec, RunDir(records, spec), settings, data, device)
        session.prune(session.score(), density=1.0 - sparsity)
        self.trainer: Trainer = session.trainer
        self.masks: Masks = session.masks
        self.prepared: Prepared = data.get(spec.data, None)  # cached: the data the trainer holds
        self.epoch = 0

    def run_epoch(self) -> None:
        spe = self.trainer.steps_per_epoch
        self.trainer.train(self.epoch * spe, (self.epoch + 1) * spe, lambda e: e, lambda stats: None)
        self.epoch += 1


class PILImages(Dataset):
    """uint8 images served as PIL images, as torchvision's CIFAR10 / FashionMNIST datasets do."""

    def __init__(self, split: Split, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.arrays = split.images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as CIFAR-10 is stored
        self.labels = split.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        a = self.arrays[i]
        return self.transform(Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)), self.labels[i]


class Reference:
    """(b): DataLoader + PIL transforms in workers, masks through forward hooks, fp32 eager."""

    def __init__(self, cfg: Config, spec: RunSpec, prepared: Prepared, masks: Masks, device: torch.device) -> None:
        transform = T.Compose([
            T.RandomCrop(cfg.data_shape[1], padding=cfg.crop_padding),
            *([T.RandomHorizontalFlip()] if cfg.hflip else []),
            T.ToTensor(),
            T.Normalize(prepared.mean, prepared.std),
        ])
        workers = cfg.num_workers
        self.loader = DataLoader(PILImages(prepared.train, transform), batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                 num_workers=workers, persistent_workers=workers > 0, pin_memory=device.type == "cuda")
        self.model = fresh_model(spec, device, torch.contiguous_format)
        for name, mask in masks.items():
            module_name, _, param = name.rpartition(".")
            prune.custom_from_mask(self.model.get_submodule(module_name), param, mask.to(device))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=spec.train.optimizer.lr,
                                         momentum=spec.train.optimizer.momentum, weight_decay=spec.train.optimizer.weight_decay)
        self.device = device

    def run_epoch(self) -> None:
        running_loss = 0.0
        for x, y in self.loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            running_loss += loss.item()  # the usual per-step host sync


class Floor:
    """(c): the step alone on staged batches: (a)'s precision, memory format and compile setting."""

    def __init__(self, cfg: Config, spec: RunSpec, device: torch.device) -> None:
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = fresh_model(spec, device, fmt)
        self.optimizer = make_optimizer(self.model, spec.train.optimizer)
        g = torch.Generator().manual_seed(0)
        self.batches = [
            (torch.randn(cfg.batch_size, *cfg.data_shape, generator=g).to(device).contiguous(memory_format=fmt),
             torch.randint(0, cfg.classes, (cfg.batch_size,), generator=g).to(device))
            for _ in range(cfg.steps)
        ]
        self.forward_loss = compiled_forward_loss() if cfg.compile else forward_loss
        self.bf16 = cfg.precision == "bf16"
        self.device = device

    def run_epoch(self) -> None:
        for x, y in self.batches:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                _, loss = self.forward_loss(self.model, x, y, 0.0)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def fresh_model(spec: RunSpec, device: torch.device, fmt: torch.memory_format) -> nn.Module:
    """The same architecture and init as (a)'s model (build_session seeds the init the same way)."""
    torch.manual_seed(derive_seed(spec.seed, "init"))
    c = spec.data.synthetic
    return build_model(spec.model, c.classes, (c.channels, c.size, c.size)).to(device, memory_format=fmt)


# ------------------------------------------------------------------------------------ measuring
def timed(run_epoch: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    run_epoch()
    synchronize(device)
    return time.perf_counter() - start


def breakdown(h: Harness, steps: int, device: torch.device) -> dict[str, float]:
    """Milliseconds per step of each part of (a)'s step, the device synchronised after each part."""
    t, loader, opt = h.trainer, h.trainer.train_loader, h.trainer.optimizer
    parts = dict.fromkeys(("data", "forward", "backward", "optimizer", "mask"), 0.0)

    @contextmanager
    def part(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        synchronize(device)
        parts[name] += time.perf_counter() - start

    with part("data"):
        plan = loader.plan(10_000)
    for i in range(steps):
        with part("data"):
            x, y = loader.batch(plan, i)
            x = x.contiguous(memory_format=t.memory_format)
        with part("forward"), t._autocast():
            _, loss = t._forward_loss(t.model, x, y, t.spec.label_smoothing)
        with part("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with part("optimizer"):
            opt.step()
        with part("mask"):
            apply_masks(*t._masked)
    return {name: 1000 * seconds / steps for name, seconds in parts.items()}


def measure(cfg: Config, breakdown_parts: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    settings = ExecSettings(device=cfg.device, threads=cfg.threads, channels_last=cfg.channels_last, compile=cfg.compile)
    configure_torch(settings)
    device = resolve_device(cfg.device)
    spec = run_spec(cfg)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as records:
        harness = Harness(spec, settings, device, cfg.sparsity, Path(records))
        loops = {"harness": harness, "reference": Reference(cfg, spec, harness.prepared, harness.masks, device),
                 "floor": Floor(cfg, spec, device)}
        warmup_s = {name: [timed(loop.run_epoch, device) for _ in range(cfg.warmup)] for name, loop in loops.items()}
        epochs_s: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(cfg.repeats):
            for name, loop in loops.items():
                epochs_s[name].append(timed(loop.run_epoch, device))
        parts = breakdown(harness, cfg.steps, device) if breakdown_parts else None
    images = cfg.batch_size * cfg.steps
    ips = {name: images / statistics.median(times) for name, times in epochs_s.items()}
    prov = provenance(settings, device)
    return {
        "settings": {**asdict(cfg), "data_shape": "x".join(map(str, cfg.data_shape)),
                     "images_per_epoch": images, "reference_loop": "fp32, eager, contiguous, forward-hook masks"},
        "device": {"type": device.type, "name": prov["device_name"]},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "images_per_s": ips,
        "ratios": {"harness_over_reference": ips["harness"] / ips["reference"],
                   "harness_over_floor": ips["harness"] / ips["floor"]},
        "epoch_s": epochs_s,
        "warmup_s": warmup_s,
        "breakdown_ms_per_step": parts,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "wall_time_s": time.perf_counter() - started,
        "git": prov["git"],
        "command": " ".join(["python", *sys.argv]),
        "time": prov["time"],
    }


def table(result: dict[str, Any]) -> str:
    s, ips, ratios = result["settings"], result["images_per_s"], result["ratios"]
    cifar_epoch = {name: 50_000 / v for name, v in ips.items()}
    lines = [
        f"{s['model']} on {s['data_shape']}, batch {s['batch_size']}, {s['images_per_epoch']} images per timed epoch, "
        f"median of {s['repeats']} after {s['warmup']} warm-up; precision {s['precision']}, compile {s['compile']}, "
        f"channels_last {s['channels_last']}, sparsity {s['sparsity']}, reference workers {s['num_workers']}",
        f"device {result['device']['name']} ({result['device']['type']}), torch {result['torch']}, {result['threads']} threads",
        "",
        "| loop | images/s | s per 50k-image epoch |",
        "|---|---:|---:|",
        *(f"| ({'abc'[i]}) {name} | {ips[name]:.1f} | {cifar_epoch[name]:.1f} |" for i, name in enumerate(LOOPS)),
        "",
        f"(a)/(b) = {ratios['harness_over_reference']:.2f}x, (a)/(c) = {ratios['harness_over_floor']:.3f}",
    ]
    if result["breakdown_ms_per_step"]:
        parts = result["breakdown_ms_per_step"]
        total = sum(parts.values())
        lines.append("(a) per step: " + ", ".join(f"{k} {v:.2f} ms ({100 * v / total:.1f}%)" for k, v in parts.items()))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=Config.model, help="a registered model (bench list models)")
    p.add_argument("--data-shape", default="3x32x32", help="CxHxW of the synthetic images (square)")
    p.add_argument("--classes", type=int, default=Config.classes)
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--steps", type=int, default=Config.steps, help="batches per timed epoch")
    p.add_argument("--warmup", type=int, default=Config.warmup, help="untimed epochs of each loop first")
    p.add_argument("--repeats", type=int, default=Config.repeats, help="timed epochs of each loop (median reported)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=Config.precision, help="of (a) and (c); (b) is fp32")
    p.add_argument("--compile", action="store_true", help="(a) and (c) through torch.compile")
    p.add_argument("--channels-last", action="store_true", help="(a) and (c) in channels_last")
    p.add_argument("--device", default=Config.device)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--num-workers", type=int, default=Config.num_workers, help="(b)'s DataLoader workers")
    p.add_argument("--sparsity", type=float, default=Config.sparsity)
    p.add_argument("--crop-padding", type=int, default=Config.crop_padding)
    p.add_argument("--no-breakdown", action="store_true", help="skip timing the parts of (a)'s step")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (batch 8, 2 steps, 1 warm-up, 2 repeats): seconds")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    a = p.parse_args(argv)
    shape = tuple(int(v) for v in a.data_shape.lower().split("x"))
    if len(shape) != 3:
        p.error(f"--data-shape is CxHxW, got {a.data_shape!r}")
    sizes = dict(batch_size=8, steps=2, warmup=1, repeats=2) if a.smoke else \
        dict(batch_size=a.batch_size, steps=a.steps, warmup=a.warmup, repeats=a.repeats)
    cfg = Config(model=a.model, data_shape=shape, classes=a.classes, precision=a.precision, compile=a.compile,
                 channels_last=a.channels_last, device=a.device, threads=a.threads, num_workers=a.num_workers,
                 sparsity=a.sparsity, crop_padding=a.crop_padding, **sizes)
    return cfg, a


def main(argv: list[str] | None = None) -> None:
    cfg, args = parse_args(argv)
    result = measure(cfg, breakdown_parts=not args.no_breakdown)
    print(table(result))
    print(f"wall time {result['wall_time_s']:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
