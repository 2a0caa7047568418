"""Cyclic training and SCULPT-ing."""

from benchmark.masks import unpack
from benchmark.runner import run_one
from benchmark.spec import ExecSettings
from benchmark.store import RunDir
from tests.conftest import tiny_spec


def test_cyclic_training_restarts_the_schedule_every_cycle(tmp_path):
    spec = tiny_spec(method="cyclic", params={"density": 0.3, "cycles": 3}, prune={"scorer": "random"},
                     train={"schedule": {"name": "triangular", "unit": "step"}})
    run_one(spec, tmp_path, ExecSettings())
    run = RunDir(tmp_path, spec)
    epochs = [m for m in run.metrics() if m["kind"] == "epoch"]
    per_cycle = [[m["lr"] for m in epochs if m["level"] == c] for c in range(3)]
    assert per_cycle[0] == per_cycle[1] == per_cycle[2] and len(per_cycle[0]) == 2
    levels = run.result()["levels"]
    assert [r["epochs_trained"] for r in levels] == [2, 4, 6]
    assert all(abs(r["density"] - 0.3) < 0.01 for r in levels)
    masks = [unpack(run.load_masks(c)) for c in range(3)]
    assert all((masks[0][n] == masks[c][n]).all() for c in (1, 2) for n in masks[0])  # one fixed mask


def test_sculpt_ends_at_the_exact_target_density(tmp_path):
    spec = tiny_spec(method="sculpt", params={"init_density": 0.8, "density": 0.07, "cycles": 2}, prune={"scorer": "snip"})
    run_one(spec, tmp_path, ExecSettings())
    levels = RunDir(tmp_path, spec).result()["levels"]
    total = levels[-1]["prunable"]
    assert [r["kept"] for r in levels] == [round(0.8 * total)] * 2 + [round(0.07 * total)]
    assert [r["epochs_trained"] for r in levels] == [2, 4, 6]  # the epoch budget beside the accuracy
