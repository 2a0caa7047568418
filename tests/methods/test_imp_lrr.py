"""IMP and LRR as recorded: exact densities, nested masks, the protocol each paper states."""

import pytest

from prunebench.masks import unpack
from prunebench.runner import run_one
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from tests.conftest import tiny_spec


def run_masks(tmp_path, spec):
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    run = RunDir(tmp_path, spec)
    return run.result(), [unpack(run.load_masks(k)) for k in range(len(run.result().levels))]


@pytest.mark.parametrize("method", ["imp", "lrr"])
@pytest.mark.parametrize("allocation", ["global", "layerwise"])
def test_masks_nested_and_exact_density_each_level(tmp_path, method, allocation):
    spec = tiny_spec(method=method, params={"levels": 4, "fraction": 0.3}, prune={"allocation": allocation})
    result, masks = run_masks(tmp_path, spec)
    for level, (row, mask) in enumerate(zip(result.levels, masks)):
        target = 0.7**level
        total = sum(m.numel() for m in mask.values())
        assert row.target_density == pytest.approx(target)
        if allocation == "global":
            assert row.kept == round(target * total)
        else:
            for name, m in mask.items():
                assert int(m.sum()) == round(target * m.numel()), name
        if level:
            for name in mask:
                assert not (mask[name] & ~masks[level - 1][name]).any(), f"level {level} revives {name}"


def test_explicit_densities(tmp_path):
    spec = tiny_spec(method="lrr", params={"densities": [0.5, 0.1, 0.02]})
    result, _ = run_masks(tmp_path, spec)
    assert [r.target_density for r in result.levels] == [1.0, 0.5, 0.1, 0.02]


def test_imp_and_lrr_share_level_zero(tmp_path):
    """One seed fixes the init and the data order: level 0 of IMP, LRR and dense is the same network."""
    rows = [run_masks(tmp_path / m, tiny_spec(method=m, params=p))[0].levels[0]
            for m, p in (("dense", {}), ("imp", {"levels": 1}), ("lrr", {"levels": 1}))]
    assert rows[0].test_accuracy == rows[1].test_accuracy == rows[2].test_accuracy
    assert rows[0].test_loss == rows[1].test_loss == rows[2].test_loss


def test_imp_with_a_fresh_optimizer_at_every_rewind_as_openlth(tmp_path, monkeypatch):
    from prunebench.session import TrainingSession

    resets, original = [], TrainingSession.reset_optimizer

    def spy(self):
        had = sum(len(v) for v in self.trainer.optimizer.state.values())  # momentum buffers of the last level
        original(self)
        resets.append((self.level, had, len(self.trainer.optimizer.state)))

    monkeypatch.setattr(TrainingSession, "reset_optimizer", spy)
    spec = tiny_spec(method="imp", params={"levels": 2, "fraction": 0.5, "rewind": "3it", "fresh_optimizer": True,
                                           "restore": ["weights", "bn_affine", "bn_stats", "data_order"]})
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    assert [(level, had > 0, left) for level, had, left in resets] == [(1, True, 0), (2, True, 0)]
    from prunebench.methods.imp import IMP

    with pytest.raises(ValueError, match="fresh_optimizer and restore"):
        IMP.Params(fresh_optimizer=True)  # the default restore names the optimizer
