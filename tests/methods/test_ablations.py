"""The ablations of "Masks, Signs, and Learning Rate Rewinding" and the per-level diagnostics."""

import pytest
import torch

from prunebench.data import DataCache
from prunebench.diagnostics import negative
from prunebench.executors import plan_suite, run_local
from prunebench.runner import build_session, run_one
from prunebench.spec import ExecSettings
from prunebench.store import RunDir, RunRecords
from prunebench.suite import load_suite
from tests.conftest import synthetic_suite, tiny_spec

SUITE = synthetic_suite("swaps", """\
  - {name: imp, label: imp_lrr_mask, levels: 3, fraction: 0.3, from: {masks: lrr}, prune: {scorer: mask_of}}
  - {name: lrr, levels: 3, fraction: 0.3}
  - {name: imp, label: imp_lrr_signs, levels: 3, fraction: 0.3, signs: producer, from: {signs: lrr}}
""", hidden="[32, 16]")


def session(tmp_path, spec, producers=None):
    run = RunDir(tmp_path, spec)
    run.start({})
    return build_session(spec, run, ExecSettings(), DataCache(), torch.device("cpu"), producers=producers)


def test_suite_expands_producers_and_runs_them_first(tmp_path):
    path = tmp_path / "swaps.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    runs = suite.runs()
    lrr = {r.seed: r.run_id for r in runs if r.label == "lrr"}
    for r in runs:
        if r.label == "imp_lrr_mask":
            assert r.producers == {"masks": lrr[r.seed]}
    outcomes = run_local(plan_suite(runs, tmp_path / "r"), tmp_path / "r", ExecSettings(), progress=False)
    assert sorted(o.status for o in outcomes) == ["complete"] * 6
    for seed in (0, 1):
        consumer = next(r for r in runs if r.label == "imp_lrr_mask" and r.seed == seed)
        for level in range(4):  # identical tensors, level by level
            ours, theirs = RunDir(tmp_path / "r", consumer).records().masks(level), RunRecords(tmp_path / "r" / lrr[seed]).masks(level)
            assert all(torch.equal(ours[n], theirs[n]) for n in ours)


def test_consumer_without_its_producer_is_blocked_not_failed(tmp_path):
    path = tmp_path / "swaps.yaml"
    path.write_text(SUITE)
    consumer = next(r for r in load_suite(path).runs() if r.label == "imp_lrr_mask")
    outcome = run_one(consumer, tmp_path / "r", ExecSettings())
    assert outcome.status == "blocked" and "waiting for masks from run" in outcome.reason
    assert RunDir(tmp_path / "r", consumer).status() == "pending"  # nothing recorded: it runs once the producer has


@pytest.mark.parametrize("error,text", [
    ("from: {masks: lrrr}", "no method entry labelled 'lrrr'; did you mean 'lrr'"),
    ("from: {mask: lrr}", "unknown role 'mask'; did you mean 'masks'"),
])
def test_producer_errors(tmp_path, error, text):
    from prunebench.suite import SuiteError

    path = tmp_path / "swaps.yaml"
    path.write_text(SUITE.replace("from: {masks: lrr}", error, 1))
    with pytest.raises(SuiteError, match=text.replace("(", r"\(")):
        load_suite(path)


def test_mask_producer_must_share_the_schedule(tmp_path):
    from prunebench.suite import SuiteError

    path = tmp_path / "swaps.yaml"
    path.write_text(SUITE.replace("levels: 3, fraction: 0.3, from", "levels: 2, fraction: 0.3, from"))
    with pytest.raises(SuiteError, match="same density schedule"):
        load_suite(path)


def test_sign_perturbation_flips_exactly_the_fraction_of_unpruned_weights(tmp_path):
    s = session(tmp_path, tiny_spec())
    s.prune(s.score("random"), density=0.4)
    before = {n: p.detach().clone() for n, p in s.prunable.items()}
    s.flip_signs(0.25)
    for name, p in s.prunable.items():
        mask = s.masks[name]
        flipped = (torch.sign(p) != torch.sign(before[name])) & mask
        assert int(flipped.sum()) == round(0.25 * int(mask.sum())), name
        assert torch.equal(p[~mask], before[name][~mask])  # pruned weights untouched (zero)
        assert torch.equal(p.abs(), before[name].abs())  # magnitudes kept


def test_sign_transfer_gives_rewound_magnitudes_with_the_producers_signs(tmp_path):
    producer = tiny_spec(method="lrr", params={"levels": 1, "fraction": 0.5})
    run_one(producer, tmp_path, ExecSettings())
    records = RunRecords(tmp_path / producer.run_id)
    s = session(tmp_path / "c", tiny_spec(method="imp", seed=0), producers={"signs": records})
    s.snapshot("rewind")
    at_rewind = {n: p.detach().clone() for n, p in s.prunable.items()}
    s.train()
    s.record(0)
    s.prune(s.score(), density=0.5)
    s.restore("rewind", what=("weights",))
    s.set_signs("producer")  # the producer's signs at this level (1)
    negative_there = records.signs(1)
    for name, p in s.prunable.items():
        expected = (at_rewind[name] * s.masks[name]).abs() * (1 - 2 * negative_there[name].float())
        assert torch.equal(p.detach(), expected), name


def test_signs_reset_to_init(tmp_path):
    s = session(tmp_path, tiny_spec())
    init = {n: p.detach().clone() for n, p in s.prunable.items()}
    s.train()
    trained = {n: p.detach().clone() for n, p in s.prunable.items()}
    s.set_signs("init")
    for name, p in s.prunable.items():
        assert torch.equal(p.detach(), trained[name].abs() * torch.where(init[name] < 0, -1.0, 1.0))


def test_level_diagnostics_equal_a_direct_computation(tmp_path):
    spec = tiny_spec(method="lrr", params={"levels": 2, "fraction": 0.5})
    s = session(tmp_path, spec)
    init = negative(s.prunable)
    s.train()
    s.record(0)
    level0_signs, level0_mask = negative(s.prunable), {n: m.clone() for n, m in s.masks.items()}
    s.prune(s.score(), density=0.5)
    s.flip_signs(0.2)
    s.train()
    s.record(1)
    row, now = s.levels[-1], negative(s.prunable)
    kept = torch.cat([s.masks[n].flatten() for n in s.masks])
    differ = lambda ref: torch.cat([(now[n] != ref[n]).flatten() for n in now])  # noqa: E731
    assert row.sign_flips_vs_init == pytest.approx(float((differ(init) & kept).sum() / kept.sum()))
    assert row.sign_flips_vs_previous == pytest.approx(float((differ(level0_signs) & kept).sum() / kept.sum()))
    assert row.sign_flips_vs_previous >= 0.2 * 0.9  # the perturbation alone flips 20%
    for name, mask in s.masks.items():  # per layer: the same counts, tensor by tensor
        assert row.layer_sign_flips_vs_init[name] == int(((now[name] != init[name]) & mask).sum()) / int(mask.sum())
        assert row.layer_sign_flips_vs_previous[name] == int(((now[name] != level0_signs[name]) & mask).sum()) / int(mask.sum())
        assert row.layer_sign_flips_vs_previous[name] >= 0.2 - 1 / int(mask.sum())  # exactly round(0.2 * kept) flipped per layer
    assert set(row.layer_sign_flips_vs_init) == set(s.masks) and s.levels[0].layer_sign_flips_vs_previous == {}
    inter = sum(int((s.masks[n] & level0_mask[n]).sum()) for n in s.masks)
    union = sum(int((s.masks[n] | level0_mask[n]).sum()) for n in s.masks)
    assert row.mask_iou_previous == pytest.approx(inter / union) == pytest.approx(0.5)


def test_training_flops_count_sparsity(tmp_path):
    spec = tiny_spec(method="lrr", params={"levels": 1, "fraction": 0.5})
    run_one(spec, tmp_path, ExecSettings())
    levels = RunDir(tmp_path, spec).result().levels
    # LeNet-300-100 (32, 16 hidden) on 1x8x8: forward MACs 64*32 + 32*16 + 16*4 per example
    dense_per_epoch = 3 * 2 * (64 * 32 + 32 * 16 + 16 * 4) * 256
    assert levels[0].train_flops == pytest.approx(2 * dense_per_epoch)
    assert levels[1].train_flops - levels[0].train_flops == pytest.approx(2 * dense_per_epoch * 0.5, rel=1e-3)


def test_sign_perturbation_at_a_chosen_point_of_chosen_levels(tmp_path, monkeypatch):
    from prunebench.session import TrainingSession as Session

    calls = []
    original = Session.flip_signs

    def spy(self, fraction, exact=True):
        calls.append((self.level, self.steps_trained, fraction))
        original(self, fraction, exact)

    monkeypatch.setattr(Session, "flip_signs", spy)
    spec = tiny_spec(method="lrr", params={"levels": 2, "flip_signs": 0.3, "flip_at": "1ep", "flip_levels": [2]})
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    per_level = 16  # 2 epochs of 8 steps
    assert calls == [(1, per_level + 8, 0.0), (2, 2 * per_level + 8, 0.3)]  # 1 epoch into each level; flips in level 2 only
    rows = RunDir(tmp_path, spec).result().levels
    assert rows[2].sign_flips_vs_previous > rows[1].sign_flips_vs_previous
    bad = tiny_spec(method="imp", params={"levels": 1, "flip_signs": 0.3, "rewind": "1ep", "flip_at": "0ep"})
    outcome = run_one(bad, tmp_path / "bad", ExecSettings())
    assert outcome.status == "failed" and "flip_at" in outcome.reason


def test_bernoulli_sign_perturbation_flips_each_unpruned_weight_with_probability_p(tmp_path):
    """The authors' perturb_signs: a Bernoulli(p) draw per unpruned weight, keyed like every draw of a run."""
    flips = []
    for _ in range(2):
        s = session(tmp_path / str(len(flips)), tiny_spec())
        s.prune(s.score("random"), density=0.5)
        before = {n: p.detach().clone() for n, p in s.prunable.items()}
        s.flip_signs(0.3, exact=False)
        flipped = {n: (torch.sign(p) != torch.sign(before[n])) & s.masks[n] for n, p in s.prunable.items()}
        for name, p in s.prunable.items():
            assert torch.equal(p[~s.masks[name]], before[name][~s.masks[name]]) and torch.equal(p.abs(), before[name].abs())
        flips.append(flipped)
    kept = sum(int(m.sum()) for m in s.masks.values())
    count = sum(int(f.sum()) for f in flips[0].values())
    assert abs(count - 0.3 * kept) < 5 * (kept * 0.3 * 0.7) ** 0.5  # binomial, five standard deviations
    assert count != round(0.3 * kept) or kept < 100
    assert all(torch.equal(flips[0][n], flips[1][n]) for n in flips[0])  # same seed, same weights


class Calls:
    """A Session that only records what retrain asks of it (10 epochs of 4 steps)."""

    steps_per_epoch = 4

    def __init__(self, warmup_epochs: float = 0):
        from types import SimpleNamespace

        schedule = SimpleNamespace(warmup_epochs=warmup_epochs)
        self.spec, self.calls = SimpleNamespace(train=SimpleNamespace(epochs=10, schedule=schedule)), []

    def steps(self, point, default):
        return default if point is None else point.steps(self.steps_per_epoch)

    def train(self, start=None, stop=None):
        epoch = lambda point: None if point is None else f"{point.steps(self.steps_per_epoch) // self.steps_per_epoch}ep"  # noqa: E731
        self.calls.append(("train", epoch(start), str(epoch(stop))))

    def flip_signs(self, fraction, exact=True):
        self.calls.append(("flip", fraction, exact))


@pytest.mark.parametrize("warmup,start,trains,flips", [
    (0, "0ep", [("0ep", "2ep"), ("2ep", "5ep"), ("5ep", "8ep"), ("8ep", "None")], 3),
    (0, "4ep", [("4ep", "5ep"), ("5ep", "8ep"), ("8ep", "None")], 2),
    (0, "5ep", [("5ep", "8ep"), ("8ep", "None")], 2),  # a flip at the segment's first step: before any training
    # the authors count a level's epochs after their one warm-up: with 2 warm-up epochs, before epochs 4 and 7
    (2, "0ep", [("0ep", "4ep"), ("4ep", "7ep"), ("7ep", "None")], 2),
    (2, "2ep", [("2ep", "4ep"), ("4ep", "7ep"), ("7ep", "None")], 2),
])
def test_periodic_flips_fall_before_epochs_n_minus_1_2n_minus_1_after_the_warmup_of_every_level(warmup, start, trains, flips):
    from prunebench.methods.common import IterativeParams, retrain
    from prunebench.spec import Point

    p = IterativeParams(flip_signs=0.3, flip_mode="bernoulli", flip_every=3, flip_levels=[0, 1, 2])
    s = Calls(warmup)
    retrain(s, p, 0, start=Point.model_validate(start))
    assert [c[1:] for c in s.calls if c[0] == "train"] == trains
    assert [c for c in s.calls if c[0] == "flip"] == [("flip", 0.3, False)] * flips
    s = Calls()
    retrain(s, IterativeParams(flip_signs=0.3, flip_every=3), 0, start=Point(epoch=0))  # level 0 is not flipped by default
    assert s.calls == [("train", "0ep", "None")]
    with pytest.raises(ValueError, match="flip_every and flip_at"):
        IterativeParams(flip_signs=0.3, flip_every=3, flip_at="2ep")


def test_signs_reset_to_the_rewind_point_the_authors_initial_signs(tmp_path):
    """The authors' "initial signs" are those of model_init, saved after warm-up: the rewind snapshot."""
    s = session(tmp_path, tiny_spec())
    with pytest.raises(ValueError, match="signs: rewind needs"):
        s.set_signs("rewind")
    s.train(stop="3it")
    s.snapshot("rewind")
    at_rewind = {n: p.detach().clone() for n, p in s.prunable.items()}
    s.train(start="3it")
    trained = {n: p.detach().clone() for n, p in s.prunable.items()}
    s.set_signs("rewind")
    for name, p in s.prunable.items():
        assert torch.equal(p.detach(), trained[name].abs() * torch.where(at_rewind[name] < 0, -1.0, 1.0))
    spec = tiny_spec(method="lrr", params={"levels": 1, "fraction": 0.5, "signs": "rewind", "rewind": "3it", "restore": ["optimizer"]})
    assert run_one(spec, tmp_path / "lrr", ExecSettings()).status == "complete"
