"""Leaderboards, CSV, plots, compare and `bench check` on constructed run records."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from prunebench.cli import main
from prunebench.records import LevelRecord, RunResult
from prunebench.report import collect, leaderboard_rows, suite_csv, suite_figure, suite_markdown, terminal_summary, write_outputs
from prunebench.report.plots import success_vs_d_figure
from prunebench.store import RunDir, atomic_write_json
from prunebench.suite import load_suite
from tests.conftest import REPO

EXPECTED = Path(__file__).parent / "expected"

SUITE = """\
name: made_up
description: Constructed results for report tests.
notes: ["a note"]
data: {dataset: synthetic}
model: {name: lenet_300_100}
train:
  epochs: 2
  batch_size: 32
  optimizer: {name: sgd, lr: 0.1}
  schedule: {name: constant}
methods:
  - name: dense
  - {name: lrr, levels: 2, fraction: 0.5}
  - {name: imp, levels: 2, fraction: 0.5}
seeds: [0, 1]
references:
  numbers:
    - {method: lrr, sparsity: 50, mean: 90.1, std: 0.2, n: 3, source: "Paper A, Table 1"}
    - {method: lrr, sparsity: 75, mean: 95.0, std: 0.2, n: 3, source: "Paper A, Table 1"}
    - {method: imp, sparsity: 75, mean: 89.0, source: "Paper B, Fig. 2", approx: true}
    - {method: imp, sparsity: 99, mean: 50.0, source: "Paper B, Fig. 2", approx: true}
  claims:
    - {claim: "lrr >= imp at sparsity >= 50", source: "Paper A, Sec. 4"}
    - {claim: "imp >= dense", source: "made up, false"}
"""

ACCURACY = {  # (label, seed) -> accuracy per level
    ("dense", 0): [0.90], ("dense", 1): [0.92],
    ("lrr", 0): [0.90, 0.905, 0.89], ("lrr", 1): [0.92, 0.899, 0.88],
    ("imp", 0): [0.90, 0.89, 0.87], ("imp", 1): [0.92, 0.88, 0.86],
}


def fake_result(spec, levels: list[dict]) -> RunResult:
    """A run's result.json holding ``levels`` (the fields a report reads; the rest left out)."""
    return RunResult(run_id=spec.run_id, suite=spec.suite, label=spec.label, method=spec.method, seed=spec.seed,
                     levels=[LevelRecord(**level) for level in levels], epochs_trained=levels[-1]["epochs_trained"],
                     wall_time_s=30.0, device="cpu")


def fake_results(tmp_path: Path, complete=lambda spec: True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    suite_file = tmp_path / "made_up.yaml"
    suite_file.write_text(SUITE)
    suite = load_suite(suite_file)
    results = tmp_path / "results"
    for spec in suite.runs():
        run = RunDir(results, spec)
        run.path.mkdir(parents=True)
        atomic_write_json(run.path / "provenance.json", {"git": {"commit": "0123456789abcdef", "dirty": False}, "device": "cpu",
                                                         "device_name": "Test CPU", "torch_threads": 1, "packages": {"torch": "9.9"},
                                                         "wall_time_s": 30.0})
        if not complete(spec):
            continue
        levels = [{"level": k, "target_density": 0.5**k, "density": 0.5**k, "sparsity": 1 - 0.5**k,
                   "test_accuracy": acc, "epochs_trained": 2.0 * (k + 1)} for k, acc in enumerate(ACCURACY[(spec.label, spec.seed)])]
        run.complete(fake_result(spec, levels))
    return suite_file, suite, results


def made_up(tmp_path):
    suite_file, suite, results = fake_results(tmp_path)
    return collect(results, suite.name, suite.runs(), {"description": suite.spec.description, "notes": suite.spec.notes,
                                                       "references": suite.spec.references.model_dump(mode="json")},
                   suite.spec.references)


def test_leaderboard_matches_the_stored_markdown(tmp_path):
    text = suite_markdown(made_up(tmp_path))
    expected = EXPECTED / "made_up_leaderboard.md"
    if os.environ.get("REGENERATE_EXPECTED"):
        expected.write_text(text)
    assert text == expected.read_text()


def test_rows_hold_deltas_and_verdicts(tmp_path):
    rows = {(r["method"], r["level"]): r for r in leaderboard_rows(made_up(tmp_path))}
    assert rows[("lrr", 1)]["accuracy_mean_pct"] == pytest.approx(90.2)
    assert rows[("lrr", 1)]["delta_vs_dense"] == pytest.approx(90.2 - 91.0)
    assert rows[("lrr", 1)]["verdict"] == "reproduced"
    assert rows[("lrr", 2)]["verdict"] == "deviates"
    assert rows[("imp", 2)]["verdict"] == "out of band" and rows[("imp", 2)]["reference_approx"]
    assert rows[("dense", 0)]["delta_vs_dense"] is None and rows[("dense", 0)]["verdict"] == ""


def test_csv_is_tidy_one_row_per_run_and_level(tmp_path):
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(suite_csv(made_up(tmp_path))))
    assert len(frame) == 14  # 7 cells x 2 seeds
    assert list(frame.columns[:8]) == ["suite", "label", "variant", "method", "seed", "run_id", "level", "target_density"]
    assert {"test_accuracy", "sign_flips_vs_init", "mask_iou_previous", "layer_density_min", "collapsed_layers"} <= set(frame.columns)
    lrr = frame[(frame["label"] == "lrr") & (frame["level"] == 1)].sort_values("seed")
    assert list(lrr["seed"]) == [0, 1] and list(lrr["test_accuracy"]) == pytest.approx([0.905, 0.899])
    assert set(frame["suite"]) == {"made_up"} and frame.groupby(["run_id", "level"]).size().max() == 1


def test_plot_series(tmp_path):
    sr = made_up(tmp_path)
    fig = suite_figure(sr)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) >= {"lrr", "imp", "dense"}
    assert list(lines["lrr"].get_xdata()) == [100, 50, 25] and list(lines["lrr"].get_ydata()) == pytest.approx([91, 90.2, 88.5])
    assert lines["dense"].get_linestyle() == "--" and list(lines["dense"].get_ydata()) == pytest.approx([91, 91])
    assert ax.get_xscale() == "log"
    assert len(ax.collections) >= 2  # the ±std bands
    labels = ax.get_legend_handles_labels()[1]
    assert "lrr (reference)" in labels and "imp (reference, approx.)" in labels
    paths = write_outputs(sr, tmp_path / "out")
    assert [p.name for p in paths] == ["made_up.md", "made_up.csv", "made_up.json", "made_up.png", "made_up-epochs.png"]
    assert paths[3].stat().st_size > 10_000  # no sign-flips figure: these records hold no sign flips
    assert success_vs_d_figure(sr) is None and not list((tmp_path / "out").glob("*success-vs-d*"))  # not a d sweep


def single_neuron_records(tmp_path: Path):
    """The reduced single_neuron suite's records, constructed: level 0 dense, level 1 pruned to 1/d; the
    success rate a made-up function of label, d and seed."""
    suite = load_suite(REPO / "suites/single_neuron.yaml", reduced=True)
    results = tmp_path / "results"
    for spec in suite.runs():
        run = RunDir(results, spec)
        run.path.mkdir(parents=True)
        d = spec.params["d"]
        pruned = 0.25 if spec.label == "imp" else 0.5 if spec.label == "lrr" else 0.2 + 0.1 * d + 0.01 * spec.seed
        levels = [{"level": 0, "target_density": 1.0, "density": 1.0, "sparsity": 0.0, "test_accuracy": 0.5, "epochs_trained": 300.0},
                  {"level": 1, "target_density": 1 / d, "density": 1 / d, "sparsity": 1 - 1 / d, "test_accuracy": pruned,
                   "epochs_trained": 600.0}]
        run.complete(fake_result(spec, levels))
    return collect(results, suite.name, suite.runs(), {"metric": "success rate"}, suite.spec.references)


def test_success_vs_d_figure_of_the_single_neuron_suite(tmp_path):
    sr = single_neuron_records(tmp_path)
    ax = success_vs_d_figure(sr).axes[0]
    lines = {bars.get_label(): bars.lines[0] for bars in ax.containers}  # errorbar containers: the data line first
    assert {"imp", "lrr", "imp_authors_init", "lrr_authors_init"} <= set(lines)
    assert list(lines["imp_authors_init"].get_xdata()) == [1, 5]
    assert list(lines["imp_authors_init"].get_ydata()) == pytest.approx([30.5, 70.5])  # the mean over seeds 0 and 1
    assert list(lines["lrr"].get_ydata()) == pytest.approx([50, 50])
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "success rate (%)" and all(b.has_yerr for b in ax.containers)
    legend = ax.get_legend_handles_labels()[1]
    assert "dense (level 0 of imp, lrr, imp_authors_init, lrr_authors_init)" in legend  # identical dense curves: one line
    paths = write_outputs(sr, tmp_path / "out")
    png = tmp_path / "out" / "single_neuron-success-vs-d.png"
    assert png in paths and png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run_cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_check_exit_codes(tmp_path):
    suite_file, _, results = fake_results(tmp_path)
    out = run_cli("check", str(suite_file), "--results", str(results))
    assert out.exit_code == 1  # lrr at 75% deviates, and 'imp >= dense' fails
    assert "| `imp >= dense` | fails |" in out.output and "| `lrr >= imp at sparsity >= 50` | holds |" in out.output
    false_claim = '    - {claim: "imp >= dense", source: "made up, false"}\n'
    fixed = suite_file.read_text().replace("mean: 95.0", "mean: 88.5").replace(false_claim, "")
    suite_file.write_text(fixed)
    assert run_cli("check", str(suite_file), "--results", str(results)).exit_code == 0
    assert run_cli("check", str(suite_file), "--results", str(results), "--strict").exit_code == 1  # imp out of band
    assert run_cli("check", str(suite_file), "--results", str(tmp_path / "elsewhere")).exit_code == 3
    assert run_cli("check", str(tmp_path / "nope.yaml")).exit_code == 2


def test_check_missing_runs_exit_3(tmp_path):
    suite_file, _, results = fake_results(tmp_path, complete=lambda spec: spec.label != "imp")
    text = suite_file.read_text().split("  claims:")[0].replace("mean: 95.0", "mean: 88.5")
    suite_file.write_text(text)
    out = run_cli("check", str(suite_file), "--results", str(results))
    assert out.exit_code == 3
    assert out.output.count("- pending: imp seed") == 2


def test_github_summary(tmp_path, monkeypatch):
    suite_file, _, results = fake_results(tmp_path)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_cli("check", str(suite_file), "--results", str(results), "--github-summary")
    assert "## made_up" in summary.read_text()


@pytest.mark.parametrize("cycles", [False, True])
def test_golden_record_then_check(tmp_path, cycles):
    """With ``cycles``, LRR's levels all sit at one sparsity (as cyclic training's do): golden
    references name their level, so each matches its own cell."""
    suite_file, suite, _ = fake_results(tmp_path)
    text = suite_file.read_text() + "reduced:\n  train: {epochs: 1}\n"
    suite_file.write_text(text)
    reduced = load_suite(suite_file, reduced=True)
    assert reduced.spec.references.numbers == []  # the paper's numbers do not apply at CI scale
    results = tmp_path / "reduced_results"
    for spec in reduced.runs():
        run = RunDir(results, spec)
        cycling = cycles and spec.label == "lrr"  # one sparsity, each cycle 5 points better than the last
        density = (lambda k: 0.25) if cycling else (lambda k: 0.5**k)
        levels = [{"level": k, "target_density": density(k), "density": density(k), "sparsity": 1 - density(k),
                   "test_accuracy": acc + 0.05 * k * cycling, "epochs_trained": 1.0 * (k + 1)}
                  for k, acc in enumerate(ACCURACY[(spec.label, spec.seed)])]
        run.path.mkdir(parents=True)
        run.complete(fake_result(spec, levels))
    out = run_cli("golden", str(suite_file), "--results", str(results))
    assert out.exit_code == 0 and "wrote 7 golden references" in out.output
    golden = tmp_path / "golden" / "made_up.yaml"
    assert golden.read_text().startswith("# Golden references")
    assert run_cli("check", str(suite_file), "--reduced", "--results", str(results)).exit_code == 0


    def shift_lrr_level_2(points: float) -> None:
        for spec in (s for s in reduced.runs() if s.label == "lrr"):
            path = RunDir(results, spec).path / "result.json"
            result = json.loads(path.read_text())
            result["levels"][2]["test_accuracy"] += points / 100
            path.write_text(json.dumps(result))

    shift_lrr_level_2(-0.3)  # noise-sized: still reproduced
    assert run_cli("check", str(suite_file), "--reduced", "--results", str(results)).exit_code == 0
    shift_lrr_level_2(-4.7)  # a systematic 5-point regression of both seeds
    out = run_cli("check", str(suite_file), "--reduced", "--results", str(results))
    assert out.exit_code == 1 and "deviates" in out.output


def test_compare(tmp_path):
    from prunebench.store import save_resolved_suite

    _, suite, a = fake_results(tmp_path / "a")
    _, _, b = fake_results(tmp_path / "b")
    save_resolved_suite(a, suite.name, suite.runs(), {})
    save_resolved_suite(b, suite.name, suite.runs(), {})
    out = run_cli("compare", str(a), str(b))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.output.splitlines()[2:] if line.startswith("|")]
    assert out.exit_code == 0 and len(rows) == 7
    assert ["made_up", "lrr", "2", "88.50 ± 0.71", "88.50 ± 0.71", "+0.00"] in rows


def test_diagnostics_show_the_recorded_values_and_the_overlap_between_methods(tmp_path):
    from prunebench.report import diagnostics_table, level_rows, method_overlap
    from tests.methods.test_ablations import SUITE as SWAPS

    path = tmp_path / "swaps.yaml"
    path.write_text(SWAPS.replace("seeds: [0, 1]", "seeds: [0]"))
    runs = load_suite(path).runs()
    assert CliRunner().invoke(main, ["run", str(path), "--results", str(tmp_path / "r"), "--no-progress"]).exit_code == 0
    overlap = method_overlap(tmp_path / "r", runs)
    swapped = overlap[(overlap["a"] == "imp_lrr_mask") & (overlap["b"] == "lrr")]
    assert list(swapped["level"]) == [0, 1, 2, 3] and (swapped["mean"] == 1.0).all()  # the very same masks
    assert (overlap[overlap["level"] == 0]["mean"] == 1.0).all()  # level 0: every method is dense
    table = diagnostics_table(level_rows(tmp_path / "r", runs))
    lrr = next(r for r in runs if r.label == "lrr")
    recorded = [lv.sign_flips_vs_init for lv in RunDir(tmp_path / "r", lrr).result().levels]
    assert list(table[table["label"] == "lrr"]["sign_flips_vs_init"]) == recorded
    out = CliRunner().invoke(main, ["report", str(tmp_path / "r"), "--diagnostics", "-o", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    assert "per-level diagnostics" in out.output
    rows = [line.split("|") for line in out.output.splitlines() if line.startswith("| imp_lrr_mask | lrr ")]
    assert [(int(r[3]), r[4].strip()) for r in rows] == [(level, "100.00") for level in range(4)]
    assert "mask overlap between methods" in (tmp_path / "out" / "swaps.md").read_text()
    as_json = CliRunner().invoke(main, ["report", str(tmp_path / "r"), "--diagnostics", "--json"])
    assert as_json.exit_code == 0 and as_json.stdout.startswith("{")  # nothing but the JSON on stdout
    suite = json.loads(as_json.stdout)["suites"][0]
    assert [(o["level"], o["iou"]) for o in suite["mask_overlap"] if (o["a"], o["b"]) == ("imp_lrr_mask", "lrr")] == \
           [(level, 1.0) for level in range(4)]
    assert json.loads((tmp_path / "out" / "swaps.json").read_text())["suites"] == [suite]


def test_the_overlap_counted_on_packed_bits_is_mask_iou_of_the_unpacked_masks():
    """method_overlap counts IoUs on the recorded bits (report.diagnostics.PackedMask): the very numbers of
    prunebench.diagnostics.mask_iou on the unpacked masks, for tensors whose sizes are no multiple of 8,
    empty and full masks, tensors in another order, and padding bits a record should not have set."""
    import torch

    from prunebench.diagnostics import mask_iou
    from prunebench.masks import pack, unpack
    from prunebench.report.diagnostics import PackedMask

    g = torch.Generator().manual_seed(0)
    shapes = {"a.weight": (3, 5), "b.weight": (7,), "c.weight": (2, 2, 3), "d.weight": (), "e.weight": (16,)}

    def masks(p: float) -> dict:
        return {name: torch.rand(shape, generator=g) < p for name, shape in shapes.items()}

    for p, q in [(0.5, 0.5), (0.1, 0.9), (0.0, 0.0), (1.0, 0.3), (1.0, 1.0)]:
        a, b = masks(p), masks(q)
        assert PackedMask.of(pack(a)).iou(PackedMask.of(pack(b))) == mask_iou(a, b)
        reordered = dict(reversed(list(b.items())))
        assert PackedMask.of(pack(a)).iou(PackedMask.of(pack(reordered))) == mask_iou(a, reordered)
        padded = pack(a)
        padded["a.weight"]["bits"][-1] |= 0x01  # 15 weights: the last byte's lowest bit is padding
        padded["b.weight"]["bits"][-1] |= 0x01  # 7 weights: so is b's
        assert unpack(padded)["a.weight"].equal(a["a.weight"])
        assert PackedMask.of(padded).iou(PackedMask.of(pack(b))) == mask_iou(a, b)


def test_records_of_another_protocol_version_are_named_not_mixed_in(tmp_path, monkeypatch):
    from prunebench import spec as spec_module
    from prunebench.report import suites_in
    from prunebench.store import save_resolved_suite

    _, suite, results = fake_results(tmp_path)
    save_resolved_suite(results, suite.name, suite.runs(), {})
    assert "PROTOCOL_VERSION" not in suite_markdown(suites_in(results)[0])
    monkeypatch.setattr(spec_module, "PROTOCOL_VERSION", spec_module.PROTOCOL_VERSION + 1)  # the code moved on
    (sr,) = suites_in(results)
    assert sr.counts == {"pending": 6} and "6 runs of this suite were recorded by code with another PROTOCOL_VERSION" in suite_markdown(sr)


def test_terminal_summary_puts_methods_in_rows_and_sparsities_in_columns(tmp_path):
    text = terminal_summary(made_up(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "made_up: 6 complete runs"
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "0", "50", "75"]
    assert next(line for line in lines if line.startswith("lrr")).split() == ["lrr", "91.00±1.41", "90.20±0.42", "88.50±0.71"]
    assert next(line for line in lines if line.startswith("dense")).split() == ["dense", "91.00±1.41"]
    assert "references: 1 reproduced, 1 deviates, 1 out of band, 1 not run" in lines
    assert "  deviates: lrr at 75%: 88.50 vs 95.00 (Δ -6.50, allowed ±1.53)" in lines
    assert ("claim fails: imp >= dense (at 50.00%: 88.50 >= 91.00 is false by more than the margin 2.24; "
            "at 75.00%: 86.50 >= 91.00 is false by more than the margin 2.24)") in lines
    assert "<details>" not in text and "|" not in text


def test_terminal_summary_splits_sparsities_to_fit_the_width(tmp_path):
    sr = made_up(tmp_path)
    narrow = terminal_summary(sr, width=40)
    tables = [line for line in narrow.splitlines() if line.startswith("method")]
    assert [line.split()[1:] for line in tables] == [["0", "50"], ["75"]]
    table_lines = narrow.split("\n\n")[1:3]
    assert max(len(line) for table in table_lines for line in table.splitlines()) <= 40
    assert "dense" not in table_lines[1]  # no empty rows


def test_json_report_validates_and_its_schema_page_names_every_field(tmp_path):
    import re

    from prunebench.report import document

    sr = made_up(tmp_path)
    text = document.report_json([document.suite_report(sr)])
    assert "NaN" not in text
    parsed = document.Report.model_validate_json(text)
    raw = json.loads(text)
    assert raw["schema"] == "prunebench.report/1" and parsed.suites[0].name == "made_up"
    suite = raw["suites"][0]
    assert len(suite["levels"]) == 14 and len(suite["leaderboard"]) == 7 and len(suite["runs"]) == 6
    assert [v["verdict"] for v in suite["verdicts"]] == [v.verdict for v in sr.verdicts]
    assert {c["verdict"] for c in suite["claims"]} == {"holds", "fails"}
    page = (REPO / "docs" / "report-json.md").read_text()
    named = set(re.findall(r"`([a-z_]+)`", page))
    for model in (document.Report, document.SuiteReport, document.RunEntry, document.Cell, document.LevelEntry,
                  document.VerdictEntry, document.ClaimEntry, document.OverlapEntry):
        missing = {f.alias or name for name, f in model.model_fields.items()} - named
        assert not missing, f"docs/report-json.md does not describe {model.__name__}: {sorted(missing)}"


def test_json_report_of_a_standalone_method_without_model_or_dataset(tmp_path):
    """The single-neuron suites have neither model nor dataset: `bench report --json` crashed on them."""
    from prunebench.report import document

    sr = made_up(tmp_path)
    sr.specs = [s.model_copy(update={"model": None, "data": None, "train": None}) for s in sr.specs]
    suite = document.suite_report(sr)
    assert suite.model is None and suite.dataset is None and suite.epochs_per_level is None and len(suite.levels) == 14


def test_the_figure_draws_a_cyclic_runs_last_level_only(tmp_path):
    """SCULPT-ing's cycles before its prune (at the init density) are its way to the result, not a result;
    IMP's levels each are one."""
    text = SUITE.split("methods:")[0] + """methods:
  - {name: imp, levels: 2, fraction: 0.5}
  - {name: sculpt, init_density: 0.5, cycles: 2, density: 0.25}
seeds: [0]
"""
    (tmp_path / "s.yaml").write_text(text)
    suite = load_suite(tmp_path / "s.yaml")
    results = tmp_path / "results"
    densities = {"imp": [1.0, 0.5, 0.25], "sculpt": [0.5, 0.5, 0.25]}
    for spec in suite.runs():
        run = RunDir(results, spec)
        run.path.mkdir(parents=True)
        levels = [{"level": k, "target_density": d, "density": d, "sparsity": 1 - d, "test_accuracy": 0.9 - 0.01 * k,
                   "epochs_trained": 2.0 * (k + 1)} for k, d in enumerate(densities[spec.label])]
        run.complete(fake_result(spec, levels))
    lines = {line.get_label(): line for line in suite_figure(collect(results, "s", suite.runs())).axes[0].get_lines()}
    assert list(lines["imp"].get_xdata()) == [100, 50, 25]
    assert list(lines["sculpt"].get_xdata()) == [25] and list(lines["sculpt"].get_ydata()) == pytest.approx([88])


def test_sign_flip_and_epoch_figures_draw_each_method_per_level(tmp_path):
    from prunebench.report.plots import epochs_figure, sign_flips_figure

    sr = made_up(tmp_path)
    flips = {0: 0.0, 1: 0.1, 2: 0.3}
    sr.levels["sign_flips_vs_init"] = sr.levels["level"].map(flips) + 0.01 * sr.levels["seed"]
    sr.levels["sign_flips_vs_previous"] = sr.levels["level"].map({0: float("nan"), 1: 0.1, 2: 0.2})
    left, right = sign_flips_figure(sr).axes
    lines = {line.get_label(): line for line in left.get_lines()}
    assert set(lines) == {"lrr", "imp"}  # dense has one level: nothing to flip
    assert list(lines["lrr"].get_xdata()) == [0, 1, 2] and list(lines["lrr"].get_ydata()) == pytest.approx([0.5, 10.5, 30.5])
    assert list({ln.get_label(): ln for ln in right.get_lines()}["imp"].get_xdata()) == [1, 2]  # level 0 has no previous
    # per layer (a second row), where the records hold it: the mean over seeds at each method's last level
    for run_id, result in sr.run_results.items():
        last = result.levels[-1]
        last.layer_sign_flips_vs_init = {"fc.weight": 0.2 + 0.1 * result.seed, "out.weight": 0.5}
    axes = sign_flips_figure(sr).axes
    assert len(axes) == 4 and axes[3].get_lines() == []  # no per-layer flips against the previous level recorded
    per_layer = {ln.get_label(): ln for ln in axes[2].get_lines()}
    assert set(per_layer) == {"lrr (level 2)", "imp (level 2)"}
    assert list(per_layer["lrr (level 2)"].get_ydata()) == pytest.approx([100 * (0.2 + 0.1 * 0.5), 50])
    assert [t.get_text() for t in axes[2].get_xticklabels()] == ["fc.weight", "out.weight"]
    epochs = {c.get_label(): c for c in epochs_figure(sr).axes[0].containers}
    assert list(epochs["lrr"].lines[0].get_xdata()) == [2.0, 4.0, 6.0]
    assert list(epochs["lrr"].lines[0].get_ydata()) == pytest.approx([91, 90.2, 88.5])


def test_the_mask_overlap_heatmap_shows_the_level_most_methods_share():
    from types import SimpleNamespace as Entry

    from prunebench.report.plots import overlap_figure

    overlaps = [Entry(a="imp", b="lrr", variant="", level=1, iou=0.9),
                Entry(a="imp", b="lrr", variant="", level=2, iou=0.7), Entry(a="imp", b="random", variant="", level=2, iou=0.2),
                Entry(a="lrr", b="random", variant="", level=2, iou=0.25)]
    ax = overlap_figure("s", overlaps).axes[0]
    assert ax.get_title() == "s: mask overlap at level 2"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["imp", "lrr", "random"]
    values = ax.images[0].get_array()
    assert values[0, 1] == values[1, 0] == pytest.approx(0.7) and values[1, 2] == pytest.approx(0.25) and values[2, 2] == 1
    assert overlap_figure("s", []) is None


def test_the_train_loss_curve_counts_an_epoch_split_over_two_rows_once():
    """A stop and resume (or a rewind point) inside an epoch writes it as two rows: one point, the loss
    weighted by the steps of each row, at the epoch's end."""
    from types import SimpleNamespace as Row

    from prunebench.report.plots import _epochs

    rows = [Row(level=0, epoch=0, steps=10, train_loss=1.0, epochs_trained=1.0),
            Row(level=0, epoch=1, steps=4, train_loss=0.5, epochs_trained=1.4),  # cut short
            Row(level=0, epoch=1, steps=6, train_loss=0.25, epochs_trained=2.0),  # the rest of it
            Row(level=1, epoch=0, steps=10, train_loss=0.75, epochs_trained=3.0)]
    assert _epochs(rows) == {(0, 0): (1.0, 1.0), (0, 1): (2.0, pytest.approx(0.35)), (1, 0): (3.0, 0.75)}
