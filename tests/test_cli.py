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
from tests.conftest import REPO, bench_process, requires_fashion_mnist, synthetic_suite
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
    assert "4 run(s): 4 already complete;" in again.output
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
    assert "1 run(s): 1 completed;" in result.output
    spec = next(r for r in load_suite(suite_file).runs() if r.method == "lrr" and r.seed == 1)
    assert (results / spec.run_id / "result.json").exists()
    result = bench("run", str(suite_file), "--results", str(results), "--only", "run=" + spec.run_id, "--rerun", "--no-progress")
    assert "1 run(s): 1 completed;" in result.output
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


# ---- faults of the whole invocation: exit 2, one line, nothing started
MNIST_SUITE = """\
name: m
data: {dataset: mnist}
model: {name: lenet_300_100, options: {hidden: [8]}}
train: {epochs: 1, batch_size: 64, optimizer: {name: sgd, lr: 0.1}, schedule: {name: cosine, unit: step}}
methods: [{name: dense}]
seeds: [0]
"""


def _one_line_error(out) -> str:
    """The one line of an invocation fault (after the plan line, when the fault shows only once data is read)."""
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.strip().splitlines() if not line.startswith("bench run ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.output, out.output
    return lines[0]


def test_missing_or_damaged_dataset_exits_2_before_anything_starts(tmp_path, monkeypatch):
    import gzip

    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    suite = tmp_path / "m.yaml"
    suite.write_text(MNIST_SUITE)
    results, data = tmp_path / "r", tmp_path / "data"

    def invoke_run():
        return CliRunner().invoke(main, ["run", str(suite), "--results", str(results), "--data-root", str(data), "--no-progress"])

    line = _one_line_error(invoke_run())
    assert invoke_run().output.startswith("error: ")  # found missing before the plan line
    assert "dataset 'mnist' not found (looked in " in line and str(data / "mnist") in line
    assert not [p for p in results.glob("*") if p.name != "suites"]  # no run was started
    folder = data / "mnist"
    folder.mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / f"{stem}.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]))[:12])  # truncated
    line = _one_line_error(invoke_run())
    assert line.startswith(f"error: {folder}/") and "unreadable (EOFError: Compressed file ended" in line
    (folder / "train-images-idx3-ubyte.gz").write_text("not gzip")
    line = _one_line_error(invoke_run())
    assert "train-images-idx3-ubyte.gz: unreadable (BadGzipFile" in line
    assert not any((results / p.name / "failed.json").exists() for p in results.glob("*"))  # not charged to a run


def _read_only(path, data):
    raise PermissionError(13, "Permission denied", str(path))


def test_a_read_only_results_dir_of_finished_runs_still_reports(suite_file, tmp_path, monkeypatch):
    import prunebench.store as store

    run = ["run", str(suite_file), "--results", str(tmp_path / "r"), "--no-progress"]
    assert bench(*run).exit_code == 0
    monkeypatch.setattr(store, "atomic_write_bytes", _read_only)
    out = CliRunner().invoke(main, run)
    assert out.exit_code == 0 and "| lrr" in out.output, out.output
    out = CliRunner().invoke(main, [*run, "--only", "seed=0", "--retry-failed", "--set", "train.epochs=3"])
    assert _one_line_error(out).endswith("Permission denied")


def test_an_unwritable_results_dir_exits_2_with_one_line(suite_file, tmp_path, monkeypatch):
    import prunebench.store as store

    monkeypatch.setattr(store, "atomic_write_bytes", _read_only)
    line = _one_line_error(CliRunner().invoke(main, ["run", str(suite_file), "--results", str(tmp_path / "r"), "--no-progress"]))
    assert line.startswith(f"error: cannot write the records in {tmp_path / 'r'}/: ") and line.endswith("Permission denied")


def test_a_second_suite_of_the_same_name_is_refused(suite_file, tmp_path):
    assert bench("run", str(suite_file), "--results", str(tmp_path / "r"), "--no-progress").exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text(SUITE.replace("seeds: [0, 1]", "seeds: [7]"))
    line = _one_line_error(CliRunner().invoke(main, ["run", str(other), "--results", str(tmp_path / "r"), "--no-progress"]))
    assert "already records suite 'tiny'" in line and "give this suite another `name:`" in line


def test_status_and_report_name_corrupt_records(suite_file, tmp_path):
    results = tmp_path / "r"
    assert bench("run", str(suite_file), "--results", str(results), "--no-progress").exit_code == 0
    victim = next(p for p in results.glob("*/result.json"))
    raw = json.loads(victim.read_text())
    del raw["levels"]
    victim.write_text(json.dumps(raw))
    out = CliRunner().invoke(main, ["status", str(results)])
    assert out.exit_code == 0 and "1 corrupt" in out.output
    assert f"corrupt: {raw['label']} seed {raw['seed']}: {victim}: levels: Field required (`bench run` redoes it)" in out.output
    out = CliRunner().invoke(main, ["report", str(results)])
    assert out.exit_code == 0 and f"- corrupt: {raw['label']} seed {raw['seed']}" in out.output
    (results / "suites" / "junk.json").write_text("[1, 2, 3]")
    out = CliRunner().invoke(main, ["report", str(results)])
    assert out.exit_code == 0 and "junk.json: (top level): Input should be a valid dictionary" in out.output
    out = CliRunner().invoke(main, ["run", str(suite_file), "--results", str(results), "--no-progress"])
    assert out.exit_code == 0 and "1 completed, 3 already complete" in out.output
    assert "the run is redone; set aside as result.json.corrupt-" in out.output


# ---- errors outside suite files: exit 2, one line, the closest valid name, nothing started
@pytest.mark.parametrize("args, expected", [
    (["--device", "tpu"], "error: --device tpu: not a device (auto, cpu, cuda, cuda:N, mps)"),
    (["--device", "cuda"], "error: --device cuda: this machine has no CUDA GPU"),
    (["--gpus", "0,1"], "error: --gpus lists 2 GPU(s); this machine has 0"),
    (["--channels-last"], "error: --channels-last is a GPU setting"),
    (["--only", "method=lr"], "error: --only method=lr: no run of the suite has method 'lr'; did you mean method=lrr?"),
    (["--only", "seed=9"], "error: --only seed=9: no run of the suite has seed '9'; the suite has 0, 1"),
])
def test_settings_this_machine_cannot_honour_exit_2_before_anything_starts(suite_file, tmp_path, args, expected):
    import torch

    if torch.cuda.is_available() and ("cuda" in args or "--gpus" in args or "--channels-last" in args):
        pytest.skip("this machine has a GPU")
    out = CliRunner().invoke(main, ["run", str(suite_file), "--results", str(tmp_path / "r"), "--no-progress", *args])
    assert _one_line_error(out).startswith(expected)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--threads", "--jobs"])
def test_zero_threads_or_jobs_are_refused(suite_file, tmp_path, option):
    out = CliRunner().invoke(main, ["run", str(suite_file), "--results", str(tmp_path / "r"), option, "0"])
    assert out.exit_code == 2 and "0 is not in the range x>=1" in out.output


def test_the_dry_run_marks_exactly_the_runs_to_do(tmp_path, capsys):
    """_print_plan's action column: "run" for what to_run executes (by run id), "skip" for the rest."""
    from prunebench.cli import _print_plan
    from prunebench.executors import PlannedRun, to_run
    from tests.conftest import tiny_spec

    statuses = ["complete", "failed", "partial", "pending", "corrupt", "complete"]
    plans = [PlannedRun(tiny_spec(seed=seed), status, 4.0, 1) for seed, status in enumerate(statuses)]
    plans.append(PlannedRun(tiny_spec(seed=1, label="y"), "failed", 4.0, 1))  # another label, the same run id as seed 1
    for retry_failed in (False, True):
        _print_plan(plans, retry_failed, tmp_path)
        lines = capsys.readouterr().out.splitlines()
        rows = [line.split() for line in lines[2:2 + len(plans)]]
        assert [(r[2], r[3]) for r in rows] == [(p.spec.run_id, p.status) for p in plans]
        todo = {id(p) for p in to_run(plans, retry_failed)[0]}
        assert [r[-1] for r in rows] == ["run" if id(p) in todo else "skip" for p in plans]
        assert [r[-1] for r in rows] == [{"complete": "skip", "failed": "run" if retry_failed else "skip"}.get(s, "run")
                                         for s in statuses + ["failed"]]


def test_repeated_only_selects_the_union(suite_file, tmp_path):
    out = bench("run", str(suite_file), "--results", str(tmp_path / "r"), "--only", "method=lrr", "--only", "method=dense,seed=0",
                "--dry-run")
    assert out.exit_code == 0 and "2 of 2 runs to execute" in out.output  # lrr seed 0 and dense seed 0


def test_a_missing_suite_file_says_so_with_the_closest_name(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    line = _one_line_error(CliRunner().invoke(main, ["run", "suites/fashionmnist_quik.yaml"]))
    assert line == "error: suites/fashionmnist_quik.yaml: no such suite file; did you mean suites/fashionmnist_quick.yaml?"


def test_a_file_of_random_bytes_is_an_invalid_suite_not_a_traceback(tmp_path):
    path = tmp_path / "junk.yaml"
    path.write_bytes(bytes([0xC1, 0x00, 0xFF, 0x13]) * 40)
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 2 and f"{path}: not a text file (byte 0xc1 at offset 0 is not UTF-8)" in out.output
    assert "Traceback" not in out.output


def test_unknown_dataset_names_suggest_the_closest():
    line = _one_line_error(CliRunner().invoke(main, ["data", "where", "fashion-mnist"]))
    assert line.endswith("Did you mean 'fashion_mnist'?")


def test_version():
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and out.output.startswith("bench (prunebench) ")


def test_check_of_the_other_profile_says_which_the_directory_holds(suite_file, tmp_path):
    reduced = tmp_path / "r.yaml"
    reduced.write_text(SUITE + "reduced: {seeds: [0]}\n")
    assert bench("run", str(reduced), "--results", str(tmp_path / "r"), "--reduced", "--no-progress").exit_code == 0
    out = CliRunner().invoke(main, ["check", str(reduced), "--results", str(tmp_path / "r")])
    assert out.exit_code == 3 and "holds the reduced profile of this suite" in out.output and "check it with --reduced" in out.output


def test_the_summary_counts_each_run_as_what_happened_to_it():
    from prunebench.cli import outcome_summary
    from prunebench.runner import Outcome

    outcomes = [Outcome("a", "complete"), Outcome("b", "interrupted", "stopped at step 3 of level 0; checkpoint written"),
                Outcome("c", "interrupted", "not started: stop requested"), Outcome("d", "skipped"),
                Outcome("e", "failed", "failed earlier (use --retry-failed)")]
    assert outcome_summary(outcomes) == ("5 run(s): 1 completed, 1 interrupted (checkpointed), 1 not started, 1 already complete, "
                                         "1 failed before (--retry-failed)")


@pytest.mark.parametrize("claim, message", [
    ("ip >= dense", "names no method of the suite: 'ip'; did you mean 'imp'?"),
    ("lrr >= imp where train_flops <= 2 * rgl", "names no method of the suite: 'rgl'"),
    ("lrr - imp >= dense - lr at 50", "names no method of the suite: 'lr'; did you mean 'lrr'?"),  # any term of a difference
])
def test_references_and_claims_must_name_the_suites_labels(tmp_path, claim, message):
    path = tmp_path / "s.yaml"
    path.write_text(synthetic_suite("s", "  - name: dense\n  - {name: imp, levels: 1}\n  - {name: lrr, levels: 1}\n")
                    + f"references:\n  claims:\n    - {{claim: '{claim}', source: test}}\n"
                    + "  numbers:\n    - {method: lr, sparsity: 50, mean: 90, source: test}\n")
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 2 and message in out.output, out.output
    assert "references.numbers[0].method: no method labelled 'lr'; did you mean 'lrr'?" in out.output


@pytest.mark.parametrize("entry, message", [
    ("{name: lrr, fraction: 1.5}", "methods[0].fraction: Input should be less than 1 (got 1.5)"),
    ("{name: imp, levels: 0}", "methods[0].levels: Input should be greater than or equal to 1 (got 0)"),
    ("{name: imp, densities: [0.5, 1.5]}", "methods[0].densities[1]: Input should be less than or equal to 1 (got 1.5)"),
])
def test_iterative_parameters_are_bounded_at_validation(tmp_path, entry, message):
    path = tmp_path / "s.yaml"
    path.write_text(synthetic_suite("s", f"  - {entry}\n"))
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 2 and message in out.output, out.output


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute-escape", ".."])
def test_a_record_naming_a_path_never_writes_outside_the_output_dir(suite_file, tmp_path, name):
    results, out = tmp_path / "deep" / "r", tmp_path / "deep" / "out"
    assert bench("run", str(suite_file), "--results", str(results), "--no-progress").exit_code == 0
    record = json.loads((results / "suites" / "tiny.json").read_text())
    (results / "suites" / "evil.json").write_text(json.dumps({**record, "name": name}))
    before = set(tmp_path.rglob("*")) | set(Path("/tmp").glob("absolute-escape*"))
    result = CliRunner().invoke(main, ["report", str(results), "-o", str(out)])
    assert result.exit_code == 0 and "evil.json: name:" in result.output and "its suite is left out" in result.output
    written = (set(tmp_path.rglob("*")) | set(Path("/tmp").glob("absolute-escape*"))) - before
    assert written and all(p.is_relative_to(out) for p in written), written


def test_suite_names_and_producer_ids_are_plain_names():
    from pydantic import ValidationError

    from prunebench.spec import SuiteSpec
    from tests.conftest import tiny_spec

    SuiteSpec.model_validate({"name": "a_suite-v1.2", "methods": [{"name": "dense"}], "seeds": [0]})
    for bad in ("../x", "/abs", "..", ".", "a/b"):
        with pytest.raises(ValidationError, match="name"):
            SuiteSpec.model_validate({"name": bad, "methods": [{"name": "dense"}], "seeds": [0]})
    with pytest.raises(ValidationError, match="producers.masks"):
        tiny_spec(producers={"masks": "../../elsewhere"})


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_as_readme_documents_it(shell):
    """README: eval "$(_BENCH_COMPLETE=bash_source bench)" (zsh_source, fish_source)."""
    assert "_BENCH_COMPLETE=bash_source bench" in (REPO / "README.md").read_text()
    out = CliRunner().invoke(main, [], prog_name="bench", env={"_BENCH_COMPLETE": f"{shell}_source"})
    assert out.exit_code == 0 and "_BENCH_COMPLETE" in out.output and "bench" in out.output


def test_a_line_per_finished_level(suite_file, tmp_path):
    out = CliRunner().invoke(main, ["run", str(suite_file), "--results", str(tmp_path / "r"), "--only", "method=lrr,seed=1"])
    lines = [line for line in out.output.splitlines() if line.startswith("lrr seed 1 level ")]
    assert [line.split(":")[0] for line in lines] == ["lrr seed 1 level 0", "lrr seed 1 level 1", "lrr seed 1 level 2"], out.output
    assert "25.00% of weights, test acc " in lines[2] and lines[2].endswith(" s")
    assert "warning: lrr seed 1 level" not in out.output  # printed once, not again by the warnings' handler


def test_plan_line_comes_first(suite_file, tmp_path):
    """Before any run starts: suite, runs to do and done, epochs, records directory, device, threads."""
    results = tmp_path / "r"
    first = CliRunner().invoke(main, ["run", str(suite_file), "--results", str(results), "--only", "method=dense",
                                      "--threads", "1"])
    assert first.output.splitlines()[0] == (f"bench run tiny: 2 runs, 2 to do, 0 done; 4 epochs to train; records in {results}/; "
                                            "device cpu, 1 threads")
    again = CliRunner().invoke(main, ["run", str(suite_file), "--results", str(results), "--threads", "1"])
    assert again.output.splitlines()[0].startswith("bench run tiny: 4 runs, 2 to do, 2 done; ")


def test_checking_a_suite_imports_neither_torchvision_nor_pandas():
    """`bench validate` starts in the time torch takes to import: the model zoo (2 s), pandas (0.5 s) and
    torch._dynamo (2 s, imported by initialisers on the meta device) wait until something uses them."""
    import subprocess
    import sys

    code = ("import sys; from prunebench.suite import load_suite; load_suite('suites/fashionmnist_quick.yaml'); "
            "load_suite('suites/fashionmnist_quick.yaml', reduced=True); "
            "print(sorted(m for m in ('torchvision', 'pandas', 'torch._dynamo', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_terminal_gets_the_compact_table_and_a_pipe_the_markdown(suite_file, tmp_path, monkeypatch):
    results = str(tmp_path / "r")
    piped = bench("run", str(suite_file), "--results", results, "--only", "method=dense", "--no-progress")
    assert "| method " in piped.output
    monkeypatch.setattr("prunebench.cli._terminal", lambda: True)
    for command in (["run", str(suite_file), "--results", results, "--only", "method=dense"], ["report", results]):
        shown = bench(*command).output
        assert "| method" not in shown and "<details>" not in shown, shown
        assert any(line.split()[:2] == ["dense", "0"] or line.startswith("dense ") for line in shown.splitlines()), shown
        assert "| method " in bench(*command, "--markdown").output
    again = bench("run", str(suite_file), "--results", results, "--only", "method=dense").output
    assert f"(full markdown: bench report {results} --markdown, or -o DIR for files)" in again


def test_run_help_groups_its_options_and_gives_examples_that_parse():
    text = bench("run", "--help").output
    headings = [line for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert headings[:5] == ["Core options:", "Training settings:", "Scale out (one machine, or machines sharing --results):",
                            "SLURM (--executor slurm: one job array of the runs to do):", "Other options:"]
    assert text.index("--reduced") < text.index("--threads") < text.index("--gpus") < text.index("--partition")
    examples = [line.split("#")[0].split() for line in text.split("Examples:")[1].splitlines() if line.strip().startswith("bench run")]
    assert len(examples) == 2
    for words in examples:  # each example is a valid command line of this CLI (parsed, not run)
        ctx = main.make_context("bench", words[1:], resilient_parsing=True)
        sub = main.get_command(ctx, words[1])
        sub.make_context("run", words[2:])


def test_status_shows_a_stale_lock_of_another_host_and_run_takes_it_over(suite_file, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_LOCK_TIMEOUT", "600")
    results = tmp_path / "r"
    assert bench("run", str(suite_file), "--results", str(results), "--only", "method=dense", "--no-progress").exit_code == 0
    lrr = {s.seed: s for s in load_suite(suite_file).runs() if s.label == "lrr"}
    for seed, age in ((0, 7200), (1, 5)):  # a node dead for two hours; one whose heartbeat is 5 s old
        path = results / lrr[seed].run_id
        path.mkdir()
        (path / "lock").write_text(json.dumps({"pid": 4242, "host": "node-17", "time": time.time() - age}))
        os.utime(path / "lock", (time.time() - age,) * 2)
    out = bench("status", str(results))
    assert "1 running" in out.output and "1 stale lock" in out.output and "2 complete" in out.output, out.output
    assert "  stale lock: lrr seed 0: lock of pid 4242 on node-17, last heartbeat 2h00m ago (timeout 10m00s) " \
           "(`bench run` takes it over)" in out.output
    out = bench("run", str(suite_file), "--results", str(results), "--only", "method=lrr,seed=0", "--no-progress")
    assert out.exit_code == 0 and "1 completed" in out.output


def test_an_override_run_keeps_its_own_record_and_hides_none(suite_file, tmp_path):
    """`--set seeds=[0]` on a directory holding the two-seed suite: the report still shows both seeds of
    the suite as written, and the override set as a section of its own that names the overrides."""
    results = str(tmp_path / "r")
    assert bench("run", str(suite_file), "--results", results, "--no-progress").exit_code == 0
    assert bench("run", str(suite_file), "--results", results, "--set", "seeds=[0]", "--no-progress").exit_code == 0
    names = sorted(p.name for p in (tmp_path / "r" / "suites").iterdir())
    assert names[0] == "tiny.json" and names[1].startswith("tiny.set-") and len(names) == 2
    text = bench("report", results).output
    whole, overridden = text.split("## tiny.set-")
    lrr_level_2 = next(line for line in whole.splitlines() if line.startswith("| lrr      |       2 |"))
    assert "Runs: 4 complete." in whole and "± " in lrr_level_2  # both seeds
    assert "Runs: 2 complete." in overridden and "_Run with `--set seeds=[0]`" in overridden
