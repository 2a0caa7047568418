"""bench export: each tracker's own files, read back, hold every run's spec and its epoch and level rows."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from prunebench.cli import main
from prunebench.export import tracked_runs
from prunebench.store import RunDir
from prunebench.suite import load_suite
from tests.conftest import TINY_SUITE


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    (root / "tiny.yaml").write_text(TINY_SUITE)
    out = CliRunner().invoke(main, ["run", str(root / "tiny.yaml"), "--results", str(root / "r"), "--only", "seed=0",
                                    "--no-progress"])
    assert out.exit_code == 0, out.output
    return root / "r"


def expected(results: Path) -> dict[str, dict]:
    """Per run id: the train losses of its epoch rows and the test accuracies of its levels, from the records."""
    runs = {}
    for spec in load_suite(results.parent / "tiny.yaml").runs():
        run = RunDir(results, spec)
        if run.result() is not None:
            runs[spec.run_id] = {"loss": [r.train_loss for r in run.epochs()],
                                 "levels": [lv.test_accuracy for lv in run.result().levels], "spec": spec}
    return runs


def test_points_follow_the_records(results):
    runs = {r.run_id: r for r in tracked_runs(results)}
    want = expected(results)
    assert set(runs) == set(want) and len(runs) == 2  # dense and lrr, seed 0
    for run_id, run in runs.items():
        steps = [step for step, _ in run.points]
        assert steps == sorted(set(steps))
        assert [m["train/loss"] for _, m in run.points if "train/loss" in m] == want[run_id]["loss"]
        assert [m["level/test_accuracy"] for _, m in run.points if "level/test_accuracy" in m] == want[run_id]["levels"]
        assert run.config == want[run_id]["spec"].model_dump(mode="json") and run.name.endswith(" seed 0")


def _export(results: Path, tracker: str, out: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(results), "--to", tracker, "-o", str(out)])
    assert result.exit_code == 0 and f"exported 2 runs to {tracker}" in result.output, result.output


def test_tensorboard_event_files(results, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _export(results, "tensorboard", tmp_path / "tb")
    _export(results, "tensorboard", tmp_path / "tb")  # again: replaces, never doubles
    want = expected(results)
    for run_id, w in want.items():
        (logdir,) = (tmp_path / "tb" / "tiny").glob(f"*_{run_id}")
        events = EventAccumulator(str(logdir))
        events.Reload()
        assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(w["loss"])
        assert [e.value for e in events.Scalars("level/test_accuracy")] == pytest.approx(w["levels"])


def _wandb_records(path: Path):
    """The records of a W&B transaction log (.wandb): a ':W&B' header, then LevelDB-log framed protobufs."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, partial = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (2, 3):  # first, middle
            partial = (partial if kind == 3 else b"") + chunk
            continue
        record = pb.Record()
        record.ParseFromString(partial + chunk if kind == 4 else chunk)
        partial = b""
        yield record


def test_wandb_offline_runs(results, tmp_path):
    _export(results, "wandb", tmp_path / "wb")
    _export(results, "wandb", tmp_path / "wb")
    want = expected(results)
    folders = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(folders) == 2
    for folder in folders:
        run_id, suite_hash = folder.name.split("-")[3:]
        records = list(_wandb_records(folder / f"run-{run_id}-{suite_hash}.wandb"))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert run.run_id == f"{run_id}-{suite_hash}" and run.run_group == "tiny"
        assert run.project == "prunebench" and run.display_name.endswith(" seed 0")
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        assert config["seed"] == 0 and config["method"] == want[run_id]["spec"].method
        history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        assert [h["train/loss"] for h in history if "train/loss" in h] == pytest.approx(want[run_id]["loss"])
        assert [h["level/test_accuracy"] for h in history if "level/test_accuracy" in h] == pytest.approx(want[run_id]["levels"])


def test_mlflow_file_store(results, tmp_path):
    from mlflow.tracking import MlflowClient

    _export(results, "mlflow", tmp_path / "ml")
    _export(results, "mlflow", tmp_path / "ml")
    client = MlflowClient(tracking_uri=(tmp_path / "ml").resolve().as_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    want = expected(results)
    assert sorted(r.data.tags["prunebench.run_id"] for r in runs) == sorted(want)  # the first export's runs are gone
    for run in runs:
        w = want[run.data.tags["prunebench.run_id"]]
        history = sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)
        assert [m.value for m in history] == pytest.approx(w["loss"])
        assert run.data.params["seed"] == "0" and run.data.params["method"] == w["spec"].method


def test_a_missing_tracker_library_is_one_line_exit_2(results, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    out = CliRunner().invoke(main, ["export", str(results), "--to", "wandb", "-o", str(tmp_path / "x")])
    assert out.exit_code == 2 and out.output.strip().splitlines() == [
        "error: --to wandb needs the wandb package: pip install 'wandb' (or prunebench[trackers])"]


def test_a_run_two_suites_share_is_exported_to_both(results, tmp_path):
    """The suite as written and its --set variant list the same run: W&B gets it in each group."""
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(results, copy)
    out = CliRunner().invoke(main, ["run", str(results.parent / "tiny.yaml"), "--results", str(copy), "--only", "seed=0",
                                    "--set", "seeds=[0]", "--no-progress"])
    assert out.exit_code == 0 and "2 already complete" in out.output, out.output
    export = CliRunner().invoke(main, ["export", str(copy), "--to", "wandb", "-o", str(tmp_path / "wb")])
    assert "exported 4 runs" in export.output, export.output
    assert len(list((tmp_path / "wb" / "wandb").glob("offline-run-*"))) == 4


def test_the_command_line_offers_every_tracker():
    from prunebench.export import TRACKERS

    (option,) = [p for p in main.commands["export"].params if p.name == "tracker"]
    assert set(option.type.choices) == set(TRACKERS)
