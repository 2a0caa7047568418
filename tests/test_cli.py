"""The bench command line: exit codes, plans, skipping, reports, and end-to-end runs on real data."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from prunebench.cli import main
from prunebench.suite import load_suite
from tests.conftest import REPO, bench_process, requires_fashion_mnist
from tests.conftest import TINY_SUITE as SUITE


@pytest.fixture
def suite_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    return path


def bench(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_validate_exit_codes(suite_file, tmp_path):
    ok = bench("validate", str(suite_file))
    assert ok.exit_code == 0 and "ok:" in ok.output and "4 runs" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUITE.replace("epochs: 2", "epocs: 2"))
    result = bench("validate", str(suite_file), str(bad))
    assert result.exit_code == 2
    assert f"{bad}:7: train.epocs: unknown key 'epocs'; did you mean 'epochs'?" in result.output
    assert "Traceback" not in result.output


def test_run_invalid_suite_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUITE.replace("name: lrr", "name: lrrr"))
    result = bench("run", str(bad), "--results", str(tmp_path / "r"))
    assert result.exit_code == 2 and "unknown method 'lrrr'" in result.output and "Traceback" not in result.output
    assert bench("run", str(tmp_path / "missing.yaml")).exit_code == 2
    assert bench("run", str(bad), "--bogus").exit_code == 2  # click's own usage error


@pytest.mark.parametrize("kind,expected", [
    ("methods", "imp"), ("models", "resnet18"), ("datasets", "tiny_imagenet"), ("scorers", "magnitude"),
    ("allocations", "layerwise"),
])
def test_list(kind, expected):
    result = bench("list", kind)
    assert result.exit_code == 0 and expected in result.output


def test_list_suites():
    result = bench("list", "suites", "--suites-dir", str(REPO / "suites"))
    assert "fashionmnist_quick.yaml" in result.output and "cifar10_resnet18.yaml" in result.output


def test_run_skip_dry_run_and_report(suite_file, tmp_path):
    results = str(tmp_path / "r")
    plan = bench("run", str(suite_file), "--results", results, "--dry-run")
    assert plan.exit_code == 0 and "4 of 4 runs to execute, 16 epochs to train" in plan.output
    first = bench("run", str(suite_file), "--results", results, "--no-progress")
    assert first.exit_code == 0
    table = first.output[first.output.index("| method"):].split("\n\n")[0]
    assert len(table.splitlines()) == 2 + 1 + 3  # header, rule, dense level 0, lrr levels 0-2
    again = bench("run", str(suite_file), "--results", results, "--no-progress")
    assert "0 run(s) executed, 4 skipped" in again.output
    assert again.output[again.output.index("| method"):].split("\n\n")[0] == table
    plan = bench("run", str(suite_file), "--results", results, "--dry-run")
    assert "0 of 4 runs to execute, 0 epochs to train (16 epochs already done)" in plan.output
    more = bench("run", str(suite_file), "--results", results, "--dry-run", "--set", "seeds=[0,1,2]")
    assert "2 of 6 runs to execute, 8 epochs to train" in more.output and "s per epoch measured here" in more.output
    rebuilt = bench("report", results, "--output-dir", str(tmp_path / "out"))
    assert rebuilt.exit_code == 0 and table in rebuilt.output
    assert table in (tmp_path / "out" / "tiny.md").read_text() and (tmp_path / "out" / "tiny.png").exists()


def test_only_and_rerun(suite_file, tmp_path):
    results = tmp_path / "r"
    result = bench("run", str(suite_file), "--results", str(results), "--only", "method=lrr,seed=1", "--no-progress")
    assert "1 run(s) executed" in result.output
    spec = next(r for r in load_suite(suite_file).runs() if r.method == "lrr" and r.seed == 1)
    assert (results / spec.run_id / "result.json").exists()
    result = bench("run", str(suite_file), "--results", str(results), "--only", "run=" + spec.run_id, "--rerun", "--no-progress")
    assert "1 run(s) executed" in result.output
    assert len(list(results.glob(f"{spec.run_id}.replaced-*"))) == 1
    assert bench("run", str(suite_file), "--only", "seed=9").exit_code == 2


def test_failed_run_exits_3_and_is_reported(suite_file, tmp_path):
    bad = tmp_path / "nan.yaml"
    bad.write_text(SUITE.replace("lr: 0.1", "lr: 1.0e+30"))
    result = bench("run", str(bad), "--results", str(tmp_path / "r"), "--no-progress")
    assert result.exit_code == 3
    assert "failed: dense seed 0" in result.output and "diverged" in result.output


# ------------------------------------------------------------------------------------ end to end
def level_rows(results: Path) -> list:
    rows = []
    for path in sorted(results.glob("*/result.json")):
        result = json.loads(path.read_text())
        rows += [(result["label"], result["seed"], r["level"], r["test_accuracy"], r["test_loss"], r["kept"]) for r in result["levels"]]
    return sorted(rows)


@pytest.mark.slow
@requires_fashion_mnist
def test_quickstart_reduced_on_real_data(tmp_path):
    results = tmp_path / "r"
    proc = bench_process("run", "suites/fashionmnist_quick.yaml", "--reduced", "--results", str(results), "--threads", "1")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows = level_rows(results)
    dense = [acc for label, _, _, acc, _, _ in rows if label == "dense"]
    assert len(dense) == 2 and min(dense) > 0.80, rows
    assert "| lrr      |       2 |" in out


@pytest.mark.slow
@requires_fashion_mnist
def test_sigkill_then_resume_gives_identical_results(tmp_path):
    """Kill `bench run` with SIGKILL mid-suite; the rerun resumes and ends with the same numbers."""
    args = ["suites/fashionmnist_quick.yaml", "--reduced", "--threads", "1", "--no-progress"]
    clean = bench_process("run", *args, "--results", str(tmp_path / "clean"))
    killed_dir = tmp_path / "killed"
    victim = bench_process("run", *args, "--results", str(killed_dir))
    deadline = time.time() + 300
    # wait until some IMP or LRR run has finished a level but not the run, then kill
    while time.time() < deadline:
        partial = [p for p in killed_dir.glob("*/masks/level_001.pt") if not (p.parent.parent / "result.json").exists()]
        if partial:
            break
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert partial, "the run finished before it could be killed"
    resumed = bench_process("run", *args, "--results", str(killed_dir))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    clean.communicate(timeout=600)
    assert clean.returncode == 0
    assert level_rows(killed_dir) == level_rows(tmp_path / "clean")
    resumed_runs = [p for p in killed_dir.glob("*/provenance.json") if json.loads(p.read_text()).get("resumes")]
    assert resumed_runs, "no run was resumed from a checkpoint"


@pytest.mark.slow
@requires_fashion_mnist
def test_cifar_resnet18_suite_reduced_smoke(tmp_path):
    """The LRR-paper suite's code path (CIFAR stem, warmup, rewind to 1ep) on real data at CI scale."""
    results = tmp_path / "r"
    proc = bench_process("run", "suites/cifar10_resnet18.yaml", "--reduced", "--only", "method=imp",
                         "--results", str(results), "--threads", "1", "--no-progress")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    (result,) = [json.loads(p.read_text()) for p in results.glob("*/result.json")]
    assert [r["kept"] for r in result["levels"]] == [11_164_352, round(0.8 * 11_164_352)]
    assert result["epochs_trained"] == 3
