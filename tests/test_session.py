"""The Session: rewinding restores exactly what it names, LRR keeps weights, replay after resume."""

import pytest
import torch

from prunebench.api import UnknownName, get_method
from prunebench.data import DataCache
from prunebench.planner import PlanSession
from prunebench.runner import build_session
from prunebench.session import TrainingSession as Session
from prunebench.session import state_keys
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from tests.conftest import tiny_spec

BN_MODEL = {"model": {"name": "resnet20", "options": {"width": 4}}}


def session(tmp_path, **override) -> Session:
    spec = tiny_spec(**{**BN_MODEL, **override})
    run = RunDir(tmp_path, spec)
    run.start({})
    return build_session(spec, run, ExecSettings(), DataCache(), torch.device("cpu"))


def clone_state(s: Session) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in s.model.state_dict().items()}


def momentum(s: Session) -> dict[int, torch.Tensor]:
    return {i: st["momentum_buffer"].clone() for i, st in s.trainer.optimizer.state_dict()["state"].items()}


@pytest.mark.parametrize("what", [
    ("weights", "bn_affine", "optimizer"),  # the LRR paper's IMP
    ("weights",),
    ("bn_affine", "bn_stats"),
    ("bn_stats",),
    ("optimizer",),
])
def test_restore_touches_exactly_what_it_names(tmp_path, what):
    s = session(tmp_path)
    s.train(stop="1ep")
    s.snapshot("rewind")
    at_rewind, momentum_at_rewind = clone_state(s), momentum(s)
    s.train(start="1ep")
    trained, momentum_trained = clone_state(s), momentum(s)
    s.prune(s.score("magnitude"), remove=0.5)
    pruned = clone_state(s)
    s.restore("rewind", what=what)
    now, keys = clone_state(s), state_keys(s.model)
    assert keys["weights"] and keys["bn_affine"] and keys["bn_stats"]
    for part, names in keys.items():
        for name in names:
            expected = at_rewind[name] if part in what else pruned[name]
            if name in s.masks:  # a rewound weight is rewound under the current mask
                expected = expected * s.masks[name]
            assert torch.equal(now[name], expected), (part, name)
    assert any(not torch.equal(trained[n], at_rewind[n]) for n in keys["bn_stats"])
    expected_momentum = momentum_at_rewind if "optimizer" in what else momentum_trained
    assert all(torch.equal(m, expected_momentum[i]) for i, m in momentum(s).items())


def test_lrr_step_keeps_weights_and_momentum_and_restarts_schedule(tmp_path):
    s = session(tmp_path)
    s.train()
    s.record(0)
    trained, buffers = clone_state(s), momentum(s)
    s.prune(s.score("magnitude"), remove=0.5)
    for name, w in s.model.state_dict().items():
        mask = s.masks.get(name)
        assert torch.equal(w, trained[name] if mask is None else trained[name] * mask), name
    assert all(torch.equal(m, buffers[i]) for i, m in momentum(s).items())
    s.train()
    s.record(1)
    rows = [r for r in s.recorder.metrics() if r["kind"] == "epoch"]
    level0 = [r["lr"] for r in rows if r["level"] == 0]
    level1 = [r["lr"] for r in rows if r["level"] == 1]
    assert level0 == level1 and len(level0) == 2


def test_reset_optimizer_clears_momentum(tmp_path):
    s = session(tmp_path)
    s.train(stop="1ep")
    assert momentum(s)
    s.reset_optimizer()
    assert s.trainer.optimizer.state_dict()["state"] == {}


def test_prune_density_and_remove_compose_exactly(tmp_path):
    s = session(tmp_path)
    s.prune(s.score("random"), remove=0.2)
    s.prune(s.score("random"), remove=0.2)
    assert s.target_density == pytest.approx(0.64)
    s.prune(s.score("random"), density=0.3)
    kept = sum(int(m.sum()) for m in s.masks.values())
    total = sum(m.numel() for m in s.masks.values())
    assert kept == round(0.3 * total)
    with pytest.raises(ValueError, match="exactly one"):
        s.prune({}, density=0.1, remove=0.1)


def test_points_beyond_the_level_are_rejected(tmp_path):
    s = session(tmp_path)
    with pytest.raises(ValueError, match="beyond"):
        s.train(stop="3ep")


def test_random_scores_depend_on_seed_and_operation_only(tmp_path):
    a = session(tmp_path / "a").score("random")
    b = session(tmp_path / "b").score("random")
    c = session(tmp_path / "c", seed=1).score("random")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_unknown_method_lists_known_and_suggests():
    with pytest.raises(UnknownName, match=r"unknown method 'lr'; known: .*imp.*lrr.* Did you mean 'lrr'"):
        get_method("lr")


@pytest.mark.parametrize("method,params,epochs", [
    ("dense", {}, 2),
    ("imp", {"levels": 3, "rewind": "1ep"}, 2 + 3 * 1),
    ("imp", {"levels": 2, "rewind": "3it"}, 2 + 2 * (16 - 3) / 8),
    ("lrr", {"levels": 3}, 2 * 4),
    ("lrr", {"levels": 2, "retrain_from": "1ep"}, 2 + 2),
    ("oneshot_magnitude", {"density": 0.3}, 4),
])
def test_plan_counts_what_a_run_trains(tmp_path, method, params, epochs):
    spec = tiny_spec(method=method, params=params)
    m = get_method(method)
    plan = PlanSession(spec, steps_per_epoch=8)
    m().run(plan, m.Params.model_validate(params))
    run = RunDir(tmp_path, spec)
    run.start({})
    s = build_session(spec, run, ExecSettings(), DataCache(), torch.device("cpu"))
    m().run(s, m.Params.model_validate(params))
    assert plan.epochs_trained == pytest.approx(epochs) == s.epochs_trained
    assert len(plan.levels) == len(s.levels)



class CountingRun(RunDir):
    """A run directory that notes where each checkpoint resumes (level, step)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.checkpoints: list[tuple[int, int | None]] = []

    def save_checkpoint(self, state) -> None:
        self.checkpoints.append((state["counters"]["level"], state["step"]))
        super().save_checkpoint(state)


@pytest.mark.parametrize("split", ["1ep", "2ep", "12it"])
def test_a_level_in_segments_is_checkpointed_as_often_as_one_in_one_call(tmp_path, split):
    """Periodic checkpoints fall on the epoch ends of the level's schedule wherever its segments
    stop (before the fix a segment's last epoch was never checkpointed, so a crash, unlike a stop
    signal, lost it); the level's end is checkpointed by record()."""
    spec = tiny_spec(train={"epochs": 4})

    def checkpoints(where: str, segments) -> list[tuple[int, int | None]]:
        run = CountingRun(tmp_path / where, spec)
        run.start({})
        s = build_session(spec, run, ExecSettings(checkpoint_every=1, checkpoint_interval_s=0.0), DataCache(),
                          torch.device("cpu"))
        s.checkpoint_interval_s = 0.0
        segments(s)
        s.record(0)
        return [step for _, step in run.checkpoints if step is not None] + [None] * sum(step is None for _, step in run.checkpoints)

    one = checkpoints("one", lambda s: s.train())
    split_ = checkpoints("split", lambda s: (s.train(stop=split), s.train(start=split)))
    assert one == split_ == [8, 16, 24, None]  # epochs end at steps 8, 16, 24 (8 steps each); None: the level's end


# ---- kept weights (keep_weights) and runs that start from them (load_weights)
KEPT = [{"level": 0, "at": "3it"}, {"level": "every"}, {"level": 1, "at": "0ep"}]
LRR2 = dict(method="lrr", params={"levels": 2, "fraction": 0.5})


def bits(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors as their bytes, so -0.0 and 0.0 differ (torch.equal does not tell them apart)."""
    return {k: v.detach().cpu().contiguous().reshape(-1).view(torch.uint8) for k, v in state.items()}


def same_bits(a, b) -> bool:
    a, b = bits(a), bits(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def kept(results, spec, name):
    return torch.load(RunDir(results, spec).path / "weights" / f"{name}.pt", weights_only=True)


def test_kept_weights_are_the_state_at_their_points_and_change_no_record(tmp_path):
    from prunebench.runner import run_one
    from tests.test_resilience import rows

    plain, keeping = tiny_spec(**LRR2), tiny_spec(**LRR2, keep_weights=KEPT)
    assert plain.run_id != keeping.run_id  # what a run records is part of its protocol
    assert run_one(plain, tmp_path / "plain", ExecSettings()).status == "complete"
    assert run_one(keeping, tmp_path / "kept", ExecSettings()).status == "complete"
    assert rows(tmp_path / "plain", plain) == rows(tmp_path / "kept", keeping)
    files = sorted(p.name for p in (RunDir(tmp_path / "kept", keeping).path / "weights").iterdir())
    assert files == ["level_000.pt", "level_000_at_3it.pt", "level_001.pt", "level_001_at_0ep.pt", "level_002.pt"]
    assert not (RunDir(tmp_path / "plain", plain).path / "weights").exists()
    result = RunDir(tmp_path / "kept", keeping).checked_result()
    assert "weights/level_000_at_3it.pt" in result.files  # digested like the masks
    # the same run by hand: the state after 3 steps, and at the end of level 0 (level 1 starts from it, pruned)
    s = session(tmp_path / "by_hand", **LRR2, model=tiny_spec().model.model_dump())
    s.train(stop="3it")
    assert same_bits(kept(tmp_path / "kept", keeping, "level_000_at_3it"), s.model.state_dict())
    s.train(start="3it")
    assert same_bits(kept(tmp_path / "kept", keeping, "level_000"), s.model.state_dict())
    s.record(0)
    s.prune(s.score(), density=0.5)
    assert same_bits(kept(tmp_path / "kept", keeping, "level_001_at_0ep"), s.model.state_dict())
    end = kept(tmp_path / "kept", keeping, "level_002")
    masks = RunDir(tmp_path / "kept", keeping).records().masks(2)
    assert all(not end[name][~mask].any() for name, mask in masks.items())  # pruned weights zero in the kept state


@pytest.mark.parametrize("stop_at", [2, 3, 4, 6])  # before the kept point, at it, at the epoch end after it, later
def test_a_run_stopped_around_a_kept_point_keeps_the_same_state(tmp_path, stop_at):
    from prunebench.runner import run_one
    from tests.test_resilience import rows

    spec = tiny_spec(**LRR2, keep_weights=KEPT)
    run_one(spec, tmp_path / "clean", ExecSettings())
    asked = {"n": 0}

    def stop():
        asked["n"] += 1
        return asked["n"] == stop_at

    assert run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=0), should_stop=stop).status == "interrupted"
    assert run_one(spec, tmp_path / "r", ExecSettings()).status == "complete"
    assert rows(tmp_path / "clean", spec) == rows(tmp_path / "r", spec)
    for name in ("level_000_at_3it", "level_000", "level_001_at_0ep"):
        assert same_bits(kept(tmp_path / "clean", spec, name), kept(tmp_path / "r", spec, name)), name


def test_a_point_the_run_never_reaches_fails_it_with_the_reason(tmp_path):
    from prunebench.runner import run_one

    spec = tiny_spec(method="imp", params={"levels": 1, "rewind": "1ep"}, keep_weights=[{"level": 1, "at": "0ep"}])
    outcome = run_one(spec, tmp_path, ExecSettings())
    assert outcome.status == "failed" and "never reached level 1 at 0ep (level_001_at_0ep)" in outcome.reason


@pytest.mark.parametrize("signs_only", [False, True])
def test_load_weights_takes_the_producers_state_or_its_signs_and_keeps_the_masks(tmp_path, signs_only):
    from prunebench.runner import run_one
    from prunebench.spec import WeightPoint

    producer = tiny_spec(**LRR2, keep_weights=KEPT)
    run_one(producer, tmp_path, ExecSettings())
    records = RunDir(tmp_path, producer).records()
    consumer = tiny_spec(method="cyclic", params={"cycles": 1}, producers={"weights": producer.run_id})
    s = build_session(consumer, RunDir(tmp_path / "c", consumer), ExecSettings(), DataCache(), torch.device("cpu"),
                      producers={"weights": records})
    s.prune(s.score("random"), density=0.3)
    own = clone_state(s)
    s.load_weights(WeightPoint(level=0, at="3it"), signs_only=signs_only)
    theirs = kept(tmp_path, producer, "level_000_at_3it")
    for name, value in s.model.state_dict().items():
        mask = s.masks.get(name)
        if signs_only:
            expected = own[name] if mask is None else (own[name].abs() * torch.where(theirs[name] < 0, -1.0, 1.0))
        else:
            expected = theirs[name] if mask is None else theirs[name] * mask
        assert torch.equal(value, expected), name
    assert all(not s.model.state_dict()[n][~m].any() for n, m in s.masks.items())
