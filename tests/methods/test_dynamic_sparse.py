"""Training-time sparsity: SET, RigL, GMP and AC/DC keep their invariants at every mask update.

Every test watches the Session's own update step (TrainingSession._update_masks) or its operations,
on a small MLP with synthetic data: exact per-layer counts, grown weights at zero with zero momentum,
masks that really change, the cubic schedule, AC/DC's phases, the FLOP count, resume and seeds.
"""

from __future__ import annotations

import pytest
import torch

from prunebench.data import DataCache
from prunebench.diagnostics import mask_iou
from prunebench.runner import build_session, run_one
from prunebench.session import TrainingSession
from prunebench.sparsity import cubic_density
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from tests.conftest import tiny_spec
from tests.test_runner import Interrupt, interrupt_after

# 256 examples in batches of 32: 8 steps an epoch; 2 epochs a level unless said otherwise
ERK = {"prune": {"allocation": "erk"}}


def spec_of(method: str, epochs: int = 4, seed: int = 0, **params):
    return tiny_spec(method=method, params=params, train={"epochs": epochs}, seed=seed, **ERK)


class Watch:
    """Masks, weights and momentum right after every in-training mask update."""

    def __init__(self, monkeypatch) -> None:
        self.updates: list[dict] = []
        original = TrainingSession._update_masks
        watch = self

        def spy(session, rule, step, begin, end):
            before = {n: m.clone() for n, m in session.masks.items()}
            original(session, rule, step, begin, end)
            momentum = {n: session.trainer.optimizer.state[p]["momentum_buffer"].clone()
                        for n, p in session.prunable.items()}
            watch.updates.append({"step": step, "before": before, "after": {n: m.clone() for n, m in session.masks.items()},
                                  "weights": {n: p.detach().clone() for n, p in session.prunable.items()},
                                  "momentum": momentum, "target": session.target_density})

        monkeypatch.setattr(TrainingSession, "_update_masks", spy)


def run(tmp_path, spec):
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete", RunDir(tmp_path, spec).failure()
    return RunDir(tmp_path, spec).result()


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_every_update_keeps_each_layer_count_and_grows_at_zero(tmp_path, monkeypatch, method):
    watch = Watch(monkeypatch)
    result = run(tmp_path, spec_of(method, density=0.3, every="3it", anneal="constant", drop_fraction=0.3))
    steps = [u["step"] for u in watch.updates]
    assert steps == list(range(0, 24, 3))  # 0, 3, ... up to 75% of 32 steps (the last update step: 23)
    for u in watch.updates:
        for name, before in u["before"].items():
            after = u["after"][name]
            assert int(after.sum()) == int(before.sum()), f"{name}: the layer's count changed at step {u['step']}"
            dropped, grown = before & ~after, after & ~before
            assert int(dropped.sum()) == int(grown.sum())
            assert int(dropped.sum()) <= int(0.3 * int(before.sum()))  # at most floor(f * kept) moved
            assert torch.count_nonzero(u["weights"][name][grown]) == 0, "grown weights start at zero"
            assert torch.count_nonzero(u["momentum"][name][grown]) == 0, "grown weights start with zero momentum"
    assert min(mask_iou(u["after"], u["before"]) for u in watch.updates) < 1, "the masks never changed"
    assert result.levels[0].density == pytest.approx(watch.updates[0]["target"], abs=0.01)


def test_pruned_weights_stay_zero_between_updates(tmp_path, monkeypatch):
    spec = spec_of("rigl", density=0.3, every="5it")
    run_dir = RunDir(tmp_path, spec)
    run_dir.start({})
    s = build_session(spec, run_dir, ExecSettings(), DataCache(), torch.device("cpu"))
    seen = []
    original = s.trainer.train

    def train(start, stop, key, on_epoch, should_stop=None, carry=None, after_step=None):
        def checked(step, examples):
            after_step(step, examples)
            seen.append(step)

        def on_epoch_checked(stats):
            for name, p in s.prunable.items():
                assert torch.count_nonzero(p[~s.masks[name].to(p.device)]) == 0
            on_epoch(stats)

        return original(start, stop, key, on_epoch_checked, should_stop, carry, checked)

    s.trainer.train = train
    from prunebench.methods.dynamic_sparse import RigL

    RigL().run(s, RigL.Params(density=0.3, every="5it"))
    assert seen == list(range(32))


def test_rigl_grows_the_pruned_weights_with_the_largest_gradient():
    from prunebench.masks import drop_and_grow

    mask = {"w": torch.tensor([[True, True, True, False, False, False]])}
    magnitude = {"w": torch.tensor([[0.5, 0.1, 0.9, 0.0, 0.0, 0.0]])}
    gradient = {"w": torch.tensor([[9.0, 0.5, 9.0, 0.2, 3.0, 1.0]])}
    new, grown = drop_and_grow(mask, magnitude, gradient, fraction=0.34)  # floor(0.34 * 3) = 1 moves
    assert new["w"].tolist() == [[True, False, True, False, True, False]]  # 0.1 dropped, the gradient 3.0 grown
    assert grown["w"].tolist() == [[False, False, False, False, True, False]]
    new, grown = drop_and_grow(mask, magnitude, gradient, fraction=0.67)  # 2 move: 0.1 and 0.5 dropped
    assert new["w"].tolist() == [[True, False, True, False, True, False]]  # 9.0 (just dropped) and 3.0 grown
    assert grown["w"].tolist() == [[True, False, False, False, True, False]]
    # RigL's code re-zeroes only connections that were not active before the update; SET's all grown ones
    assert (grown["w"] & ~mask["w"]).tolist() == [[False, False, False, False, True, False]]


def test_gmp_density_at_each_update_is_the_cubic_schedule(tmp_path, monkeypatch):
    watch = Watch(monkeypatch)
    result = run(tmp_path, spec_of("gmp", density=0.1, begin="4it", end="26it", every="4it", allocation="layerwise"))
    assert [u["step"] for u in watch.updates] == [4, 8, 12, 16, 20, 24]  # the last update on the grid: 24
    for u in watch.updates:
        wanted = cubic_density(u["step"], 1.0, 0.1, 4, 24)
        assert u["target"] == pytest.approx(wanted)
        for name, mask in u["after"].items():  # layerwise: every tensor at the schedule's density, exactly
            assert int(mask.sum()) == round(wanted * mask.numel())
        for name in u["after"]:
            assert not (u["after"][name] & ~u["before"][name]).any(), "GMP's masks are nested"
    assert result.levels[0].target_density == pytest.approx(0.1)


def test_acdc_phases_start_and_end_at_the_configured_steps(tmp_path, monkeypatch):
    calls = []
    for name in ("train", "prune", "revive"):
        original = getattr(TrainingSession, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            if _name == "train":
                calls.append(("train", self.steps(kwargs.get("start"), 0), self.steps(kwargs.get("stop"), 0),
                              round(sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values()), 2)))
            else:
                calls.append((_name,))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(TrainingSession, name, spy)
    run(tmp_path, spec_of("acdc", epochs=6, density=0.2, warmup="1ep", sparse="1ep", dense="1ep", finetune="5ep"))
    assert calls == [
        ("train", 0, 8, 1.0),
        ("prune",), ("train", 8, 16, 0.2), ("revive",), ("train", 16, 24, 1.0),
        ("prune",), ("train", 24, 32, 0.2), ("revive",), ("train", 32, 40, 1.0),
        ("prune",), ("train", 40, 48, 0.2),
    ]


def test_training_flops_count_the_rigl_paper_way(tmp_path):
    """Two-layer MLP 64 -> 32 -> 4 (the tiny spec with hidden [32]); hand-computed FLOPs per example."""
    dense_forward = 2 * (64 * 32 + 32 * 4)
    spec = tiny_spec(method="rigl", params={"density": 0.25, "every": "4it", "end": "15it"}, train={"epochs": 2},
                     model={"name": "lenet_300_100", "options": {"hidden": [32]}}, prune={"allocation": "layerwise"})
    level = run(tmp_path, spec).levels[0]
    sparse_forward = 2 * (round(0.25 * 64 * 32) + round(0.25 * 32 * 4))
    examples, updates = 256 * 2, 4  # updates after steps 0, 4, 8, 12; every batch has 32 examples
    expected = 3 * sparse_forward * examples + updates * 32 * (dense_forward - sparse_forward)
    assert level.train_flops == pytest.approx(expected, rel=1e-12)
    assert level.dense_train_flops == pytest.approx(3 * dense_forward * examples, rel=1e-12)
    assert level.inference_flops == pytest.approx(sparse_forward) and level.dense_inference_flops == dense_forward
    # per RigL's formula over one period of dt regular steps and one update step: (3 f_S dt + 2 f_S + f_D)
    dt = 3
    assert 3 * sparse_forward * dt + (2 * sparse_forward + dense_forward) == \
        3 * sparse_forward * (dt + 1) + (dense_forward - sparse_forward)


@pytest.mark.parametrize("method, params", [
    ("rigl", {"density": 0.3, "every": "3it"}),
    ("set", {"density": 0.3, "every": "3it"}),
    ("gmp", {"density": 0.2, "begin": "2it", "end": "20it", "every": "3it"}),
    ("acdc", {"density": 0.2, "warmup": "1ep", "sparse": "1ep", "dense": "1ep", "finetune": "3ep"}),
])
def test_kill_between_updates_resumes_bitwise(tmp_path, monkeypatch, method, params):
    spec = spec_of(method, **params)
    expected = run(tmp_path / "once", spec)
    interrupt_after(monkeypatch, 2)
    settings = ExecSettings(checkpoint_every=1, checkpoint_interval_s=0.0)
    with pytest.raises(Interrupt):
        run_one(spec, tmp_path / "killed", settings)
    monkeypatch.undo()
    assert run_one(spec, tmp_path / "killed", settings).status == "complete"
    resumed = RunDir(tmp_path / "killed", spec).result()
    strip = lambda r: [lv.model_dump(exclude={"wall_time_s"}) for lv in r.levels]  # noqa: E731
    assert strip(resumed) == strip(expected)
    a, b = RunDir(tmp_path / "once", spec).load_masks(0), RunDir(tmp_path / "killed", spec).load_masks(0)
    assert all(torch.equal(a[n]["bits"], b[n]["bits"]) for n in a)


def test_same_seed_same_masks_and_another_seed_others(tmp_path):
    spec = spec_of("rigl", density=0.3, every="3it")
    results = [run(tmp_path / d, spec) for d in ("a", "b")]
    assert results[0].levels[0].model_dump(exclude={"wall_time_s"}) == results[1].levels[0].model_dump(exclude={"wall_time_s"})
    other = spec_of("rigl", seed=1, density=0.3, every="3it")
    assert run(tmp_path / "c", other).levels[0].test_loss != results[0].levels[0].test_loss
