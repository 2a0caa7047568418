"""The Session: rewinding restores exactly what it names, LRR keeps weights, replay after resume."""

import pytest
import torch

from prunebench.api import UnknownName, get_method
from prunebench.planner import PlanSession
from prunebench.session import TrainingSession as Session
from prunebench.session import state_keys
from prunebench.data import DataCache
from prunebench.runner import build_session
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
    assert plan.levels == len(s.levels)


def test_third_party_methods_register_through_entry_points(monkeypatch):
    """A package registers a method by naming a module in the 'prunebench.methods' entry-point group."""
    from prunebench import api

    loaded = []

    class EntryPoint:  # what importlib.metadata returns for the group; load() imports the plugin module
        def load(self):
            @api.register_method("thirdparty")
            class ThirdParty(api.Method):
                def run(self, s, p) -> None:
                    s.train()
                    s.record(0)

            loaded.append(ThirdParty)

    monkeypatch.setattr(api, "entry_points", lambda group: [EntryPoint()] if group == "prunebench.methods" else [])
    monkeypatch.setattr(api, "_PLUGINS_LOADED", [])
    monkeypatch.setattr(api, "_METHODS", dict(api._METHODS))
    assert "thirdparty" not in api._METHODS
    assert "thirdparty" in api.method_names() and api.get_method("thirdparty") is loaded[0]
