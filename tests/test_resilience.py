"""Stops, kills and preemption: every interruption resumes to the numbers of an uninterrupted run."""

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
