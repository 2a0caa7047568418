"""ATen operators per optimizer step of the harness's training loop, by part, from the torch profiler.

Each operator the step dispatches is a kernel launch (or a few) on a GPU, and on a fast GPU with
small images the launches, not the arithmetic, set the pace; so the count is the CPU-side measure of
how ready the step loop is for a GPU. The loop is the Trainer exactly as `bench run` builds it
(benchmarks/throughput.py's harness loop: ``prunebench.runner.build_session``, 80% global
magnitude mask, synthetic data with crop and flip), with the execution settings given on the
command line. ``--steps`` steps are profiled after one warm-up epoch; an operator counts once, at
the top of the dispatch (the operators it calls inside are not counted again), and falls in the part
it ran in:

- ``data``: ``DeviceLoader.batch`` (gather, crop, normalise, flip) and the memory-format conversion;
- ``forward``: the forward pass and the loss;
- ``backward``: the autograd engine (zeroing the gradients included);
- ``optimizer``: ``optimizer.step()`` (with ``--compile-update``, the mask multiply compiled with it);
- ``mask``: the mask multiply;
- ``other``: the rest of the step (the epoch's loss and accuracy accumulators, the learning rate).

    python benchmarks/step_ops.py --model resnet18 --data-shape 3x32x32
    python benchmarks/step_ops.py --model resnet18 --data-shape 3x32x32 --optimizer-impl loop   # the old step

Nothing here asserts a count; results/step_ops_cpu.md holds the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import Config, Harness, run_spec  # noqa: E402

import prunebench.train as train_module  # noqa: E402
from prunebench.runner import configure_torch, cpu_name, resolve_device  # noqa: E402
from prunebench.spec import ExecSettings  # noqa: E402

PARTS = ("data", "forward", "backward", "optimizer", "mask", "other")


def labelled(fn: Any, name: str) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(f"part::{name}"):
            return fn(*args, **kwargs)
    return wrapper


def part_of(event: Any) -> str | None:
    """The part of the step an operator ran in, or None when it is inside another operator."""
    parent, part = event.cpu_parent, None  # the innermost label names the part
    while parent is not None:
        if parent.name.startswith("aten::"):
            return None
        if part is None and parent.name.startswith("part::"):
            part = parent.name.removeprefix("part::")
        elif part is None and parent.name.startswith("Optimizer.step"):
            part = "optimizer"
        elif part is None and parent.name.startswith(("autograd::engine", "Optimizer.zero_grad")):
            part = "backward"
        parent = parent.cpu_parent
    return part or "other"


def count(model: str, shape: tuple[int, int, int], batch: int, steps: int, settings: ExecSettings) -> dict[str, Any]:
    cfg = Config(model=model, data_shape=shape, batch_size=batch, steps=steps, warmup=1, repeats=1,
                 compile=settings.compile, channels_last=settings.channels_last)
    device = resolve_device(settings.device)
    with tempfile.TemporaryDirectory() as records:
        h = Harness(run_spec(cfg), settings, device, 0.8, Path(records))
        h.run_epoch()  # warm-up: lazy state (momentum buffers), compiled graphs
        t = h.trainer
        t.train_loader.batch = labelled(t.train_loader.batch, "data")
        t._forward_loss = labelled(t._forward_loss, "forward")
        t._update = labelled(t._update, "optimizer")  # the step and (inside it, unless compiled) the mask multiply
        saved = train_module.apply_masks
        train_module.apply_masks = labelled(saved, "mask")
        try:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                h.run_epoch()
        finally:
            train_module.apply_masks = saved
    parts: Counter[str] = Counter()
    names: dict[str, Counter[str]] = {p: Counter() for p in PARTS}
    for event in prof.events():
        if event.name.startswith("aten::") and (part := part_of(event)) is not None:
            parts[part] += 1
            names[part][event.name] += 1
    per_step = {p: parts[p] / steps for p in PARTS}
    return {"model": model, "per_step": per_step, "total": sum(per_step.values()),
            "top": {p: dict(names[p].most_common(4)) for p in PARTS}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", help="model name (repeatable; default lenet5, resnet20, resnet18)")
    ap.add_argument("--data-shape", default=None, help="CxHxW (default 1x28x28 for LeNet-5 and ResNet-20, 3x32x32 for ResNet-18)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optimizer-impl", default=None, help="ExecSettings.optimizer_impl (default: the harness's)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-update", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


SHAPES = {"lenet5": (1, 28, 28), "resnet20": (1, 28, 28), "resnet18": (3, 32, 32)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fields = {"device": "cpu", "threads": args.threads, "compile": args.compile}
    if args.optimizer_impl:
        fields["optimizer_impl"] = args.optimizer_impl
    if args.compile_update:
        fields["compile_update"] = True
    settings = ExecSettings(**fields)
    configure_torch(settings)
    rows = []
    for model in args.model or list(SHAPES):
        shape = tuple(int(v) for v in args.data_shape.split("x")) if args.data_shape else SHAPES.get(model, (3, 32, 32))
        rows.append(count(model, shape, args.batch_size, args.steps, settings) | {"shape": "x".join(map(str, shape))})
    print(f"ATen ops per optimizer step; batch {args.batch_size}, {args.steps} profiled steps; torch {torch.__version__}, "
          f"{cpu_name()} ({platform.machine()}), {args.threads} thread(s); settings: "
          + ", ".join(f"{k}={v}" for k, v in settings.model_dump().items() if k in ("optimizer_impl", "compile", "compile_update")))
    print()
    print("| model | input | " + " | ".join(PARTS) + " | total |")
    print("|---|---|" + "--:|" * (len(PARTS) + 1))
    for r in rows:
        print(f"| {r['model']} | {r['shape']} | " + " | ".join(f"{r['per_step'][p]:g}" for p in PARTS) + f" | {r['total']:g} |")
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.model_dump(), "rows": rows, "torch": torch.__version__}, indent=2))


if __name__ == "__main__":
    main()
