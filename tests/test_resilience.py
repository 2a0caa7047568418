"""Stops, kills, preemption and damaged records: every interruption resumes to the numbers of an
uninterrupted run, and every damaged record is named and repaired."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from prunebench.runner import run_one, stop_on_signals
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from tests.conftest import bench_process, synthetic_suite, tiny_spec

IMP = dict(method="imp", params={"levels": 2, "rewind": "3it", "fraction": 0.4},
           model={"name": "resnet20", "options": {"width": 4}})


def rows(results: Path, spec) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in ("wall_time_s", "time_s")} for m in RunDir(results, spec).metrics()]


@pytest.mark.parametrize("stop_at", [2, 9, 13, 27])  # inside the first segment, an epoch, the rewound level
def test_stop_request_checkpoints_and_resume_is_identical(tmp_path, stop_at):
    spec = tiny_spec(**IMP)
    run_one(spec, tmp_path / "clean", ExecSettings())
    asked = {"n": 0}

    def stop():
        asked["n"] += 1
        return asked["n"] == stop_at

    outcome = run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=3600), should_stop=stop)
    assert outcome.status == "interrupted" and "checkpoint written" in outcome.reason
    state = RunDir(tmp_path / "r", spec).load_checkpoint()
    assert state["partial"] is not None or state["step"] is None
    assert run_one(spec, tmp_path / "r", ExecSettings()).status == "complete"
    assert rows(tmp_path / "clean", spec) == rows(tmp_path / "r", spec)


class Killed(BaseException):
    pass


def test_kill_during_a_checkpoint_write_falls_back(tmp_path, monkeypatch):
    """Dying while the new checkpoint is written (the old one already renamed to previous.pt)."""
    import prunebench.store as store

    spec = tiny_spec(**IMP)
    run_one(spec, tmp_path / "clean", ExecSettings(checkpoint_interval_s=0))
    original, writes = store.atomic_write_bytes, {"n": 0}

    def dying(path, data):
        if path.name == "latest.pt":
            writes["n"] += 1
            if writes["n"] == 3:
                (path.parent / ".latest.pt.torn").write_bytes(bytes(data)[:50])  # half a file, then gone
                raise Killed
        return original(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", dying)
    with pytest.raises(Killed):
        run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=0))
    monkeypatch.undo()
    folder = RunDir(tmp_path / "r", spec).path / "checkpoints"
    assert not (folder / "latest.pt").exists() and (folder / "previous.pt").exists()
    assert run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=0)).status == "complete"
    assert rows(tmp_path / "clean", spec) == rows(tmp_path / "r", spec)


def test_stop_on_signals_restores_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    with stop_on_signals(("SIGUSR1",)) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested() and stop.signal == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before


SLOW_SUITE = synthetic_suite("slowish", "  - {name: lrr, levels: 2, fraction: 0.5}\n", hidden="[64, 32]", train_size=2048,
                             epochs=8, batch_size=16, lr=0.05, seeds="[0]")


def wait_for_epochs(results: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        metrics = list(results.glob("*/metrics.jsonl"))
        if metrics and sum(1 for _ in metrics[0].open()) >= n:
            return
        time.sleep(0.02)
    raise TimeoutError(f"no {n} metric rows in {results}")


def level_results(results: Path) -> list:
    out = []
    for path in sorted(results.glob("*/result.json")):
        out += [(r["level"], r["test_accuracy"], r["test_loss"], r["kept"]) for r in json.loads(path.read_text())["levels"]]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1", "SIGINT"])
def test_signal_to_bench_run_checkpoints_mid_level(tmp_path, sig):
    suite = tmp_path / "s.yaml"
    suite.write_text(SLOW_SUITE)
    args = ["run", str(suite), "--threads", "1", "--no-progress", "--checkpoint-interval", "3600"]
    clean = bench_process(*args, "--results", str(tmp_path / "clean"))
    victim = bench_process(*args, "--results", str(tmp_path / "r"))
    wait_for_epochs(tmp_path / "r", 3)
    victim.send_signal(getattr(signal, sig))
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 3 and "interrupted: a checkpoint was written" in err, err
    (run,) = [p.parent for p in (tmp_path / "r").glob("*/spec.json")]
    state = __import__("torch").load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert state["partial"] is not None  # stopped mid-epoch, not at a level end
    resumed = bench_process(*args, "--results", str(tmp_path / "r"))
    assert resumed.wait(timeout=300) == 0
    assert clean.wait(timeout=300) == 0
    assert level_results(tmp_path / "r") == level_results(tmp_path / "clean")


@pytest.mark.slow
def test_sigkill_at_several_points_resumes_identically(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(SLOW_SUITE)
    args = ["run", str(suite), "--threads", "1", "--no-progress", "--checkpoint-interval", "0"]
    assert bench_process(*args, "--results", str(tmp_path / "clean")).wait(timeout=300) == 0
    results = tmp_path / "r"
    for rows_before_kill in (2, 7, 12):  # mid level 0, around the level end, mid level 1
        victim = bench_process(*args, "--results", str(results))
        wait_for_epochs(results, rows_before_kill)
        time.sleep(0.05)  # land somewhere inside an epoch or a checkpoint write
        victim.kill()
        victim.wait()
    assert bench_process(*args, "--results", str(results)).wait(timeout=300) == 0
    assert level_results(results) == level_results(tmp_path / "clean")


# ---- damaged records: named in a warning, never trusted, repaired by running again
LRR = dict(method="lrr", params={"levels": 2, "fraction": 0.5})


def _partial(results: Path, spec, stop_at: int = 20) -> RunDir:
    asked = {"n": 0}

    def stop():
        asked["n"] += 1
        return asked["n"] == stop_at

    assert run_one(spec, results, ExecSettings(checkpoint_interval_s=0), should_stop=stop).status == "interrupted"
    return RunDir(results, spec)


@pytest.mark.parametrize("damage", ["emptied", "garbled line"])
def test_metrics_a_checkpoint_counts_on_damaged_restarts_the_run_with_a_warning(tmp_path, caplog, damage):
    spec = tiny_spec(**LRR)
    run_one(spec, tmp_path / "clean", ExecSettings())
    run = _partial(tmp_path / "r", spec)
    metrics = run.path / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("" if damage == "emptied" else "".join([lines[0], "{garbage\n", *lines[2:]]))
    assert run_one(spec, tmp_path / "r", ExecSettings()).status == "complete"
    assert "the checkpoint of run" in caplog.text and "is discarded and the run restarts" in caplog.text
    assert "garbage" not in metrics.read_text()
    assert rows(tmp_path / "clean", spec) == rows(tmp_path / "r", spec)


def test_a_finished_runs_damaged_level_file_makes_bench_run_redo_it(tmp_path, caplog):
    spec = tiny_spec(**LRR)
    run_one(spec, tmp_path, ExecSettings())
    run = RunDir(tmp_path, spec)
    clean = rows(tmp_path, spec)
    mask = run.path / "masks" / "level_001.pt"
    mask.write_bytes(mask.read_bytes()[:100])
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"  # not "skipped"
    assert f"{mask}: 100 bytes, result.json recorded" in caplog.text and "the run is redone" in caplog.text
    assert [p.name for p in run.path.glob("result.json.corrupt-*")] and rows(tmp_path, spec) == clean
    run.records().masks(1)  # a good file again


def test_an_unfinished_runs_own_level_files_are_never_read_back(tmp_path):
    """The previous level's masks and signs ride in the checkpoint: a damaged file of an unfinished
    run cannot fail it (before, its resume failed identically on every --retry-failed)."""
    spec = tiny_spec(**LRR)
    run_one(spec, tmp_path / "clean", ExecSettings())
    run = _partial(tmp_path / "r", spec, stop_at=40)
    for path in (run.path / "masks").glob("*.pt"):
        path.write_bytes(b"garbage")
    assert run_one(spec, tmp_path / "r", ExecSettings()).status == "complete"
    clean = RunDir(tmp_path / "clean", spec).result().levels
    assert [r.mask_iou_previous for r in run.result().levels] == [r.mask_iou_previous for r in clean]


def test_a_producers_damaged_file_blocks_its_consumer_and_sets_the_producer_aside(tmp_path, caplog):
    from prunebench.suite import load_suite

    path = tmp_path / "s.yaml"
    path.write_text(synthetic_suite("s", "  - {name: lrr, levels: 1}\n  - {name: imp, label: imp_on_lrr_mask, levels: 1, "
                                    "prune: {scorer: mask_of}, from: {masks: lrr}}\n", seeds="[0]"))
    lrr, consumer = load_suite(path).runs()
    results = tmp_path / "r"
    run_one(lrr, results, ExecSettings())
    mask = RunDir(results, lrr).path / "masks" / "level_001.pt"
    data = bytearray(mask.read_bytes())
    data[-30] ^= 0xFF  # same size: only the digest, checked when the consumer reads it, sees it
    mask.write_bytes(bytes(data))
    outcome = run_one(consumer, results, ExecSettings())
    assert outcome.status == "blocked" and "had a corrupt record (set aside)" in outcome.reason
    assert "sha256 differs" in caplog.text and RunDir(results, lrr).status() == "pending"
    assert not RunDir(results, consumer).failure()  # not charged to the consumer: no --retry-failed needed
    assert run_one(lrr, results, ExecSettings()).status == "complete"
    assert run_one(consumer, results, ExecSettings()).status == "complete"


def test_a_malicious_checkpoint_is_refused_and_the_run_restarts(tmp_path, caplog):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    spec = tiny_spec(**LRR)
    run_one(spec, tmp_path / "clean", ExecSettings())
    run = _partial(tmp_path / "r", spec)
    for name in ("latest.pt", "previous.pt"):
        (run.path / "checkpoints" / name).write_bytes(pickle.dumps(Payload()))
    assert run_one(spec, tmp_path / "r", ExecSettings()).status == "complete"
    assert not (tmp_path / "ran").exists() and caplog.text.count("Weights only load failed") == 2
    assert rows(tmp_path / "clean", spec) == rows(tmp_path / "r", spec)


def test_records_that_cannot_be_written_at_all_stop_the_invocation(tmp_path, monkeypatch):
    import errno

    import prunebench.store as store
    from prunebench.runner import InvocationError

    real = store.atomic_write_bytes

    def full(path, data):
        if path.name in ("spec.json", "failed.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", full)
    with pytest.raises(InvocationError, match=r"cannot write the records of run \w+ in .*spec.json'; then, writing failed.json: No space"):
        run_one(tiny_spec(), tmp_path, ExecSettings())


def test_synflow_rounds_are_checkpointed_before_training(tmp_path, monkeypatch):
    """A kill in the training after SynFlow's rounds resumes there: the rounds are not scored again."""
    from prunebench import api

    spec = tiny_spec(method="pai", params={"density": 0.2, "rounds": 5}, prune={"scorer": "synflow", "allocation": "global"})
    run_one(spec, tmp_path / "clean", ExecSettings())
    real, calls = api.get_scorer("synflow"), {"n": 0}

    def counted(ctx, **options):
        calls["n"] += 1
        return real(ctx, **options)

    monkeypatch.setitem(api.SCORERS._entries, "synflow", counted)
    asked = {"n": 0}

    def killed_at_step_3():  # a SIGKILL: no checkpoint is written where it strikes
        asked["n"] += 1
        if asked["n"] == 3:
            raise Killed

    with pytest.raises(Killed):
        run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=0), should_stop=killed_at_step_3)
    assert calls["n"] == 5
    assert run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=3600)).status == "complete"
    assert calls["n"] == 5  # resumed after the rounds, not before them
    assert rows(tmp_path / "clean", spec) == rows(tmp_path / "r", spec)
