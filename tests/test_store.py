"""Run directories: atomic records, locks with stale-lock takeover, metric truncation on resume."""

import json
import os
import socket
import subprocess

import pytest

from prunebench.store import RunDir, RunLocked, atomic_write_json, read_json
from tests.conftest import tiny_spec


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert read_json(tmp_path / "a.json") == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    (tmp_path / "torn.json").write_text('{"x": ')
    assert read_json(tmp_path / "torn.json") is None


def test_lock_excludes_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.path.mkdir(parents=True)
    lock = run.path / "lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))  # alive
    with pytest.raises(RunLocked, match="held by pid"):
        with run.lock():
            pass
    lock.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))  # stale
    with run.lock():
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_held_by_another_host_is_respected(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.path.mkdir(parents=True)
    (run.path / "lock").write_text(json.dumps({"pid": dead_pid(), "host": "another-host"}))
    with pytest.raises(RunLocked):
        with run.lock():
            pass


def test_lock_released_when_the_body_raises(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    with pytest.raises(KeyboardInterrupt):
        with run.lock():
            raise KeyboardInterrupt
    assert not (run.path / "lock").exists()


def test_resume_truncates_metrics_written_after_the_checkpoint(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.start({"first": True})
    for i in range(5):
        run.append_metrics({"i": i})
    run.resume(3, {"second": True})
    assert [m["i"] for m in run.metrics()] == [0, 1, 2]
    assert read_json(run.path / "provenance.json")["resumes"] == [{"second": True}]
    with pytest.raises(RuntimeError, match="checkpoint expects 9"):
        run.resume(9, {})


def test_result_of_another_run_id_is_not_complete(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.path.mkdir(parents=True)
    atomic_write_json(run.path / "result.json", {"run_id": "someone-else", "levels": []})
    assert run.status() == "pending"


def test_torn_last_metrics_line_is_skipped(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.start({})
    run.append_metrics({"kind": "epoch", "i": 0})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "epo')  # killed in the middle of an append
    assert run.metrics() == [{"kind": "epoch", "i": 0}]
