"""A suite's ``analyses:`` measured after its runs from their kept states: validation, what is stored,
that it is what the landscape functions give on those states, skipping and redoing, and the report."""

import json

import pytest
import torch

from prunebench.analyses import analysis_tasks, pending
from prunebench.app import execute_suite, suite_results
from prunebench.data import DataCache
from prunebench.executors import plan_suite
from prunebench.landscape import Curvature, error_barrier, interpolate
from prunebench.report.files import write_outputs
from prunebench.report.plots import train_loss_figure
from prunebench.runner import build_trainer
from prunebench.seeds import derive_seed
from prunebench.spec import ExecSettings, WeightPoint
from prunebench.store import RunDir
from prunebench.suite import SuiteError, load_suite
from tests.conftest import synthetic_suite

KEEP = "keep_weights: [{level: every}]"
METHODS = f"  - {{name: lrr, levels: 2, fraction: 0.5, {KEEP}}}\n  - name: dense\n"
ANALYSES = ("analyses:\n  methods: [lrr]\n  lmc: {between: [levels, seeds], points: 3}\n"
            "  hessian: {batches: 2, iterations: 5, trace_samples: 2}\n")


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_analysed_labels_must_exist_and_keep_every_level(tmp_path):
    text = synthetic_suite("a", "  - {name: lrr, levels: 2}\n  - name: dense\n") + ANALYSES.replace("[lrr]", "[lrr, lrx]")
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, text))
    lines = str(e.value).splitlines()
    assert any("analyses.methods[0]" in line and "keep_weights: [{level: every}]" in line for line in lines)
    assert any("analyses.methods[1]" in line and "did you mean 'lrr'" in line for line in lines)
    assert all(":" in line.split(" ")[0] for line in lines)  # file:line first
    with pytest.raises(SuiteError, match="name what to measure"):
        load_suite(write(tmp_path, synthetic_suite("a", METHODS) + "analyses: {methods: [lrr]}\n"))


def test_run_ids_do_not_depend_on_the_analyses(tmp_path):
    plain = load_suite(write(tmp_path, synthetic_suite("a", METHODS)))
    analysed = load_suite(write(tmp_path, synthetic_suite("a", METHODS) + ANALYSES))
    assert [s.run_id for s in plain.runs()] == [s.run_id for s in analysed.runs()]
    tasks = analysis_tasks(analysed.runs(), analysed.spec.analyses)
    assert [(t.spec.label, t.spec.seed, t.partner and t.partner.seed) for t in tasks] == [("lrr", 0, 1), ("lrr", 1, None)]


def test_bench_run_measures_the_analyses_from_the_kept_states(tmp_path):
    suite = load_suite(write(tmp_path, synthetic_suite("a", METHODS) + ANALYSES))
    results, settings = tmp_path / "runs", ExecSettings(threads=1)
    done = execute_suite(suite, plan_suite(suite.runs(), results), results, settings, progress=False)
    assert done.analysed == (2, 0, 0)
    lrr0, lrr1 = [s for s in suite.runs() if s.label == "lrr"]
    record = RunDir(results, lrr0).analysis(suite.spec.analyses.key)
    assert record.partner == lrr1.run_id and [row.level for row in record.levels] == [0, 1, 2]
    first, second = record.levels[0], record.levels[2]
    assert first.lmc_levels is None and second.lmc_levels is not None  # level 0 has no previous level
    assert first.lmc_seeds.alphas == [0.0, 0.5, 1.0]

    # the same numbers by hand, from the kept files
    trainer, _, _ = build_trainer(lrr0, settings, DataCache(), torch.device("cpu"))
    mine, theirs = RunDir(results, lrr0).records(), RunDir(results, lrr1).records()
    a, b = mine.weights(WeightPoint(level=1)), mine.weights(WeightPoint(level=2))
    errors = []
    for alpha in (0.0, 0.5, 1.0):
        trainer.model.load_state_dict(interpolate(a, b, alpha))
        errors.append(1 - trainer.evaluate()["accuracy"])
    assert second.lmc_levels.errors == errors and second.lmc_levels.barrier == error_barrier(errors)
    trainer.model.load_state_dict(theirs.weights(WeightPoint(level=2)))
    assert second.lmc_seeds.errors[-1] == 1 - trainer.evaluate()["accuracy"]  # the line ends at the next seed's state
    trainer.model.load_state_dict(b)
    batches = list(trainer.train_loader.in_order(lrr0.train.batch_size))[:2]
    g = torch.Generator().manual_seed(derive_seed(lrr0.seed, "hessian", 2))
    curvature = Curvature(trainer.model, mine.masks(2), batches)
    assert (second.hessian_top_eigenvalue, second.hessian_products) == curvature.top_eigenvalue(5, g, 1e-3)
    assert second.hessian_trace == curvature.trace(2, g)

    # stored: nothing pending; a changed setting is measured anew, the records stay
    assert pending(suite.runs(), suite.spec.analyses, results) == []
    before = (RunDir(results, lrr0).path / "result.json").read_bytes()
    changed = load_suite(write(tmp_path, synthetic_suite("a", METHODS) + ANALYSES.replace("points: 3", "points: 4")))
    assert len(pending(changed.runs(), changed.spec.analyses, results)) == 2
    again = execute_suite(changed, plan_suite(changed.runs(), results), results, settings, progress=False)
    assert again.analysed == (2, 0, 0) and (RunDir(results, lrr0).path / "result.json").read_bytes() == before

    # the report: level columns, the markdown table and the figure
    sr = suite_results(changed, results)
    lrr_rows = sr.levels[sr.levels["label"] == "lrr"]
    assert lrr_rows["hessian_top_eigenvalue"].notna().all() and lrr_rows["lmc_levels_barrier"].isna().sum() == 2
    assert sr.levels[sr.levels["label"] == "dense"]["hessian_top_eigenvalue"].isna().all()
    names = {p.name for p in write_outputs(sr, tmp_path / "out")}
    assert {"a-landscape.png", "a-train-loss.png"} <= names
    curves = {line.get_label(): line for line in train_loss_figure(sr).axes[0].get_lines()}
    rows = [RunDir(results, s).epochs() for s in (lrr0, lrr1)]
    assert list(curves["lrr"].get_xdata()) == [(a.epochs_trained + b.epochs_trained) / 2 for a, b in zip(*rows)]
    assert list(curves["lrr"].get_ydata()) == pytest.approx([(a.train_loss + b.train_loss) / 2 for a, b in zip(*rows)])
    assert len(curves["lrr"].get_xdata()) == 3 * 2  # 3 levels of 2 epochs, a row each
    assert "loss landscape" in (tmp_path / "out" / "a.md").read_text()
    levels = json.loads((tmp_path / "out" / "a.json").read_text())["suites"][0]["levels"]
    assert any(row.get("lmc_seeds_barrier") is not None for row in levels)


def test_a_run_whose_next_seed_is_not_complete_waits(tmp_path):
    suite = load_suite(write(tmp_path, synthetic_suite("a", METHODS) + ANALYSES))
    results = tmp_path / "runs"
    only_seed_0 = [s for s in suite.runs() if s.seed == 0]
    done = execute_suite(suite, plan_suite(only_seed_0, results), results, ExecSettings(threads=1), progress=False)
    assert done.analysed == (0, 2, 0)  # seed 0 waits for seed 1's states, seed 1 for its own run
    assert not (RunDir(results, only_seed_0[0]).path / "analyses").exists()


def test_an_analysis_that_breaks_fails_alone_with_a_warning(tmp_path, monkeypatch, caplog):
    import prunebench.analyses as analyses

    suite = load_suite(write(tmp_path, synthetic_suite("a", METHODS) + ANALYSES))
    results = tmp_path / "runs"

    def broken(*args, **kwargs):
        raise RuntimeError("no double backward for this layer")

    monkeypatch.setattr(analyses.Curvature, "top_eigenvalue", broken)
    done = execute_suite(suite, plan_suite(suite.runs(), results), results, ExecSettings(threads=1), progress=False)
    assert done.analysed == (0, 0, 2) and not done.incomplete  # the runs are complete; their analyses wait for a fix
    assert "analyses failed: RuntimeError: no double backward for this layer" in caplog.text
    assert len(pending(suite.runs(), suite.spec.analyses, results)) == 2
