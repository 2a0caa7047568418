"""Shared fixtures. Under pytest-xdist each worker gets its share of this process's CPUs (its affinity
mask), so the runs it starts default to that many torch threads, as on any shared node
(prunebench.cpus), and its subprocesses inherit it: two workers on two cores do not oversubscribe
them (bitwise reproducibility is promised per thread count)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from prunebench.api import get_method
from prunebench.data import DatasetError, locate
from prunebench.spec import RunSpec
from prunebench.suite import resolved_params

if os.environ.get("PYTEST_XDIST_WORKER") and hasattr(os, "sched_setaffinity"):
    _cpus = sorted(os.sched_getaffinity(0))
    _worker, _workers = int(os.environ["PYTEST_XDIST_WORKER"].lstrip("gw")), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _mine = _cpus[_worker % len(_cpus)::_workers] or _cpus
    os.sched_setaffinity(0, _mine)
    torch.set_num_threads(len(_mine))

REPO = Path(__file__).resolve().parent.parent


def _fashion_mnist_present() -> bool:
    try:
        locate("fashion_mnist")
        return True
    except DatasetError:
        return False


requires_fashion_mnist = pytest.mark.skipif(
    not _fashion_mnist_present() and not os.environ.get("CI"),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); CI always installs it",
)


def deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_update(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def tiny_spec(**override: Any) -> RunSpec:
    """A fast run: a small MLP on 256 synthetic 1x8x8 images, 2 epochs of 8 steps per level."""
    base = {
        "suite": "test", "label": "x", "seed": 0, "method": "dense", "params": {},
        "data": {"dataset": "synthetic", "synthetic": {"channels": 1, "size": 8, "classes": 4, "train_size": 256, "test_size": 64},
                 "mean": [0.5], "std": [0.25]},
        "model": {"name": "lenet_300_100", "options": {"hidden": [32, 16]}},
        "train": {"epochs": 2, "batch_size": 32,
                  "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
                  "schedule": {"name": "cosine", "unit": "step"}},
        "prune": {"scorer": "magnitude", "allocation": "global"},
    }
    if "model" in override:  # a model replaces the default one whole (its options do not mix)
        base["model"] = override.pop("model")
    raw = deep_update(base, override)
    # as a suite expands it: every parameter written out, the run id hashing those not at their default
    raw["params"], raw["id_params"] = resolved_params(get_method(raw["method"]).Params.model_validate(raw["params"]))
    return RunSpec.model_validate(raw)


@pytest.fixture
def spec_factory():
    return tiny_spec


def synthetic_suite(name: str, methods: str, *, hidden: str = "[16]", train_size: int = 128, epochs: int = 2,
                    batch_size: int = 32, lr: float = 0.1, seeds: str = "[0, 1]") -> str:
    """Suite YAML on synthetic 1x8x8 images with a small MLP; ``methods`` is the YAML list's lines."""
    return f"""\
name: {name}
data:
  dataset: synthetic
  synthetic: {{channels: 1, size: 8, classes: 4, train_size: {train_size}, test_size: 64}}
model: {{name: lenet_300_100, options: {{hidden: {hidden}}}}}
train:
  epochs: {epochs}
  batch_size: {batch_size}
  optimizer: {{name: sgd, lr: {lr}, momentum: 0.9}}
  schedule: {{name: cosine, unit: step}}
methods:
{methods}seeds: {seeds}
"""


TINY_SUITE = synthetic_suite("tiny", "  - name: dense\n  - {name: lrr, levels: 2, fraction: 0.5}\n")


def bench_process(*args: str) -> subprocess.Popen:
    """`bench ARGS` in a child process (from the repository root), output captured as text."""
    return subprocess.Popen([sys.executable, "-m", "prunebench.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
