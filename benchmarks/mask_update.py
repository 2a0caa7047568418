"""The cost of one in-training mask update against one training step, on the harness's own Session.

For a model and batch shape on synthetic data, builds a TrainingSession exactly as `bench run` does
(prunebench.runner.build_session), prunes it to ``--density`` with random ERK counts, runs one
training step (so the parameters hold that step's gradients), then times, alternating:

- ``step``: one training step (forward, backward, SGD, mask multiply), the loop RigL runs between updates;
- ``rigl``: one RigL update (drop by magnitude, grow by dense-gradient magnitude, zero the grown
  weights and their momentum, enforce the new masks);
- ``set``: one SET update (random growth);
- ``gmp``: one nested magnitude prune with ERK counts (GMP's update), to a slightly lower density.

Each figure is the median of ``--repeats`` timings; ``per step`` is the update's cost spread over the
``--every`` steps between two updates (RigL's CIFAR-10 setting: 100). Nothing here asserts a speed.

    python benchmarks/mask_update.py --model wrn --data-shape 3x32x32 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from prunebench.api import DropGrow, GradualPrune  # noqa: E402
from prunebench.data import DataCache  # noqa: E402
from prunebench.runner import build_session, configure_torch, cpu_name, resolve_device  # noqa: E402
from prunebench.spec import ExecSettings, RunSpec  # noqa: E402
from prunebench.store import RunDir  # noqa: E402


def spec_for(model: str, shape: tuple[int, int, int], batch: int, steps: int) -> RunSpec:
    c, h, _ = shape
    return RunSpec.model_validate({
        "suite": "bench", "label": "mask_update", "method": "dense", "params": {}, "seed": 0,
        "data": {"dataset": "synthetic", "synthetic": {"channels": c, "size": h, "classes": 10, "train_size": batch * steps,
                                                        "test_size": batch}, "mean": [0.5] * c, "std": [0.25] * c},
        "model": {"name": model},
        "train": {"epochs": 1, "batch_size": batch, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                  "schedule": {"name": "constant"}},
        "prune": {"scorer": "random", "allocation": "erk"},
    })


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="wrn")
    ap.add_argument("--data-shape", default="3x32x32")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--every", type=int, default=100, help="steps between two updates, to spread the cost over")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    shape = tuple(int(x) for x in args.data_shape.split("x"))
    settings = ExecSettings(device=args.device, threads=args.threads)
    configure_torch(settings)
    device = resolve_device(args.device)
    spec = spec_for(args.model, shape, args.batch_size, args.repeats + 2)
    with __import__("tempfile").TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp), spec)
        run.start({})
        s = build_session(spec, run, settings, DataCache(), device)
        s.prune(s.score("random"), density=args.density)
        total = s.trainer.total_steps
        step = {"next": 0}

        def train_step() -> None:
            s.trainer.train(step["next"], step["next"] + 1, lambda e: 0, lambda stats: None)
            step["next"] = (step["next"] + 1) % total

        train_step()  # warm-up; leaves the step's gradients in .grad
        updates = {
            "rigl": lambda: s._update_masks(DropGrow("gradient", 0.3, "constant"), 0, 0, 1),
            "set": lambda: s._update_masks(DropGrow("random", 0.3, "constant"), 0, 0, 1),
            "gmp": lambda: s._update_masks(GradualPrune(s.target_density, s.target_density * 0.99), 1, 0, 1),
        }
        times: dict[str, list[float]] = {"step": [], **{k: [] for k in updates}}
        for _ in range(args.repeats):
            for name, fn in updates.items():
                times["step"].append(timed(train_step, device))
                times[name].append(timed(fn, device))
    medians = {k: statistics.median(v) for k, v in times.items()}
    weights = sum(m.numel() for m in s.masks.values())
    print(f"model {args.model}, batch {args.batch_size}x{args.data_shape}, {weights:,} prunable weights at density "
          f"{args.density}, device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_name()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"\n| operation | seconds (median) | x one training step | per step at one update every {args.every} steps |")
    print("|---|--:|--:|--:|")
    for name, seconds in medians.items():
        spread = "" if name == "step" else f"{seconds / args.every:.5f} s ({seconds / args.every / medians['step']:.1%} of a step)"
        print(f"| {name} | {seconds:.4f} | {seconds / medians['step']:.2f} | {spread} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "medians_s": medians, "platform": platform.platform(),
                                               "torch": torch.__version__, "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
