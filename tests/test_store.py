"""Run directories: atomic records, locks with stale-lock takeover, metric truncation on resume, damaged records."""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from prunebench.store import (
    CorruptRecord,
    RunDir,
    RunLocked,
    SuiteClash,
    atomic_write_json,
    load_resolved_suites,
    load_tensors,
    read_json,
    save_resolved_suite,
)
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


def test_lock_of_another_host_is_respected_while_its_heartbeat_is_recent_then_taken_over(tmp_path, monkeypatch):
    """A forged lock of a node that died on shared storage: held while its mtime is younger than the timeout."""
    monkeypatch.setenv("BENCH_LOCK_TIMEOUT", "600")
    run = RunDir(tmp_path, tiny_spec())
    run.path.mkdir(parents=True)
    lock = run.path / "lock"
    pid = dead_pid()
    lock.write_text(json.dumps({"pid": pid, "host": "another-host", "time": time.time() - 4000}))
    os.utime(lock, (time.time() - 590,) * 2)
    assert run.is_locked() and run.stale_lock() is None
    with pytest.raises(RunLocked, match="on another-host"):
        with run.lock():
            pass
    os.utime(lock, (time.time() - 3725,) * 2)
    assert not run.is_locked()
    assert run.stale_lock() == f"lock of pid {pid} on another-host, last heartbeat 1h02m ago (timeout 10m00s)"
    with run.lock():
        assert json.loads(lock.read_text())["host"] == socket.gethostname()
    assert not lock.exists()


def test_a_held_lock_beats_while_the_run_trains(tmp_path, monkeypatch):
    import prunebench.store as store

    monkeypatch.setattr(store, "HEARTBEAT_S", 0.05)
    run = RunDir(tmp_path, tiny_spec())
    with run.lock():
        lock = run.path / "lock"
        os.utime(lock, (time.time() - 1000,) * 2)
        deadline = time.time() + 10
        while time.time() - lock.stat().st_mtime > 100 and time.time() < deadline:
            time.sleep(0.05)
        assert time.time() - lock.stat().st_mtime < 100  # refreshed by the heartbeat


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
    with pytest.raises(CorruptRecord, match="3 lines, the checkpoint counts on 9"):
        run.resume(9, {})


def test_result_of_another_run_id_is_not_complete(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.path.mkdir(parents=True)
    atomic_write_json(run.path / "result.json", {"run_id": "someone-else", "levels": []})
    assert run.result() is None and run.status() == "corrupt"
    assert run.corruption().endswith("result.json: suite: Field required")


def test_torn_last_metrics_line_is_skipped(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.start({})
    run.append_metrics({"kind": "epoch", "i": 0})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "epo')  # killed in the middle of an append
    assert run.metrics() == [{"kind": "epoch", "i": 0}]


# ---- records under faults: every damaged record is named, never trusted, and repaired by a rerun
def _complete_run(tmp_path):
    from prunebench.runner import run_one
    from prunebench.spec import ExecSettings

    spec = tiny_spec(method="lrr", params={"levels": 1})
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    return spec, RunDir(tmp_path, spec)


def test_a_result_records_its_level_files_and_a_changed_one_makes_the_run_corrupt(tmp_path):
    spec, run = _complete_run(tmp_path)
    assert sorted(run.result().files) == ["masks/level_000.pt", "masks/level_001.pt", "signs/level_000.pt", "signs/level_001.pt"]
    mask = run.path / "masks" / "level_001.pt"
    data = mask.read_bytes()
    mask.write_bytes(data[:200])  # truncated: the size check of every status query sees it
    assert run.status() == "corrupt" and run.result() is None
    assert run.corruption() == f"{mask}: 200 bytes, result.json recorded {len(data)}"
    flipped = bytearray(data)
    flipped[-30] ^= 0xFF
    mask.write_bytes(bytes(flipped))  # same size: the digest, checked when the file is read, sees it
    assert run.status() == "complete"
    with pytest.raises(CorruptRecord, match="sha256 differs"):
        run.records().masks(1)


def test_a_foreign_pickle_in_the_records_is_refused_and_runs_nothing(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CorruptRecord, match=r"x.pt: unreadable \(UnpicklingError: Weights only load failed\)"):
        load_tensors(path)
    assert not (tmp_path / "ran").exists()


def test_corrupt_result_that_parses_is_named_with_its_field(tmp_path):
    spec, run = _complete_run(tmp_path)
    raw = read_json(run.path / "result.json")
    del raw["levels"]
    atomic_write_json(run.path / "result.json", raw)
    assert run.status() == "corrupt" and run.corruption().endswith("result.json: levels: Field required")
    (run.path / "result.json").write_text("{not json")
    assert run.corruption().endswith("result.json: not valid JSON")


def test_unreadable_checkpoint_is_set_aside_with_a_warning(tmp_path, caplog):
    run = RunDir(tmp_path, tiny_spec())
    run.save_checkpoint({"op": 1, "metrics_count": 0, "model": {}})
    run.save_checkpoint({"op": 2, "metrics_count": 0, "model": {}})
    (run.path / "checkpoints" / "latest.pt").write_bytes(b"garbage")
    assert run.load_checkpoint()["op"] == 1  # the previous one
    assert "latest.pt: unreadable" in caplog.text and "set aside as latest.pt.corrupt-" in caplog.text
    assert not (run.path / "checkpoints" / "latest.pt").exists()


def test_resume_refuses_a_garbled_metrics_line_the_checkpoint_counts_on(tmp_path):
    run = RunDir(tmp_path, tiny_spec())
    run.start({})
    for i in range(4):
        run.append_metrics({"i": i})
    lines = (run.path / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "{garbage\n"
    (run.path / "metrics.jsonl").write_text("".join(lines))
    with pytest.raises(CorruptRecord, match="line 2 is not a valid metrics row"):
        run.resume(3, {})
    run.resume(1, {})  # a checkpoint from before the garbled line is fine
    assert run.metrics() == [{"i": 0}]


def test_record_files_get_the_umask_permissions(tmp_path):
    """Not mkstemp's 0600: other users of a shared results directory read the records as they read metrics.jsonl."""
    umask = os.umask(0o022)
    os.umask(umask)
    run = RunDir(tmp_path, tiny_spec())
    run.start({})
    run.save_masks(0, {"a": 1})
    files = [run.path / "spec.json", run.path / "provenance.json", run.path / "metrics.jsonl", run.path / "masks" / "level_000.pt"]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: oct(0o666 & ~umask) for p in files}


def test_corrupt_resolved_suite_is_left_out_with_a_warning(tmp_path, caplog):
    specs = [tiny_spec()]
    save_resolved_suite(tmp_path, "good", specs, {"source": "a.yaml"})
    (tmp_path / "suites" / "bad.json").write_text("[1, 2, 3]")
    (tmp_path / "suites" / "worse.json").write_bytes(os.urandom(64))
    assert [s["name"] for s in load_resolved_suites(tmp_path)] == ["good"]
    assert "bad.json: (top level): Input should be a valid dictionary" in caplog.text
    assert "worse.json: not valid JSON" in caplog.text


def test_resolved_suites_read_back_equal_with_shared_blocks_and_a_bad_block_named(tmp_path, caplog):
    specs = [tiny_spec(seed=seed, label=label) for seed in (0, 1) for label in ("a", "b")] + [tiny_spec(train={"epochs": 3})]
    save_resolved_suite(tmp_path, "s", specs, {"source": "a.yaml"})
    (suite,) = load_resolved_suites(tmp_path)
    assert suite["runs"] == specs and [r.run_id for r in suite["runs"]] == [r.run_id for r in specs]
    assert suite["runs"][0].train is suite["runs"][1].train and suite["runs"][-1].train.epochs == 3  # one model per distinct block
    path = tmp_path / "suites" / "s.json"
    raw = json.loads(path.read_text())
    raw["runs"][2]["train"]["epochs"] = "many"
    path.write_text(json.dumps(raw))
    assert load_resolved_suites(tmp_path) == []
    assert "s.json: train.epochs: Input should be a valid integer" in caplog.text


def test_a_second_suite_of_the_same_name_cannot_hide_the_first(tmp_path):
    a, b = tiny_spec(label="a"), tiny_spec(label="b", seed=1)
    save_resolved_suite(tmp_path, "s", [a], {"source": "one.yaml"})
    with pytest.raises(SuiteClash, match="already records suite 's' from one.yaml .1 of its runs are not in two.yaml"):
        save_resolved_suite(tmp_path, "s", [b], {"source": "two.yaml"})
    save_resolved_suite(tmp_path, "s", [a, b], {"source": "two.yaml"})  # nothing vanishes: allowed
    save_resolved_suite(tmp_path, "s", [b], {"source": "two.yaml"})  # the same file, edited: allowed
    assert [s.label for s in load_resolved_suites(tmp_path)[0]["runs"]] == ["b"]


def test_an_unchanged_resolved_suite_is_not_rewritten(tmp_path, monkeypatch):
    import prunebench.store as store

    save_resolved_suite(tmp_path, "s", [tiny_spec()], {"source": "one.yaml"})
    monkeypatch.setattr(store, "atomic_write_bytes", lambda *a: (_ for _ in ()).throw(PermissionError(13, "read-only")))
    save_resolved_suite(tmp_path, "s", [tiny_spec()], {"source": "one.yaml"})  # a read-only directory: no write needed


def _contend(results: str, run_id: str, barrier, starts, held, trials: int) -> None:
    run = RunDir.at(Path(results), run_id)
    for trial in range(trials):
        barrier.wait()  # the stale lock is in place
        try:
            with run.lock():
                held[trial] += 1
                barrier.wait()  # every contender has tried while this one holds it
        except RunLocked:
            barrier.wait()
        barrier.wait()  # released: the next trial's stale lock may be written


def test_stale_lock_takeover_has_exactly_one_winner(tmp_path):
    """N processes released at a barrier on a lock naming a dead pid: exactly one takes the run, 1,000 times."""
    import multiprocessing as mp

    n, trials = 4, 1000
    ctx = mp.get_context("fork")
    run = RunDir(tmp_path, tiny_spec())
    run.path.mkdir(parents=True)
    barrier, held = ctx.Barrier(n + 1, timeout=60), ctx.Array("i", trials)  # a contender that dies breaks it: a failure, not a hang
    workers = [ctx.Process(target=_contend, args=(str(tmp_path), run.run_id, barrier, None, held, trials)) for _ in range(n)]
    for w in workers:
        w.start()
    stale = json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "time": 0})
    for _ in range(trials):
        (run.path / "lock").write_text(stale)
        barrier.wait()
        barrier.wait()
        barrier.wait()
    for w in workers:
        w.join(timeout=60)
    assert list(held) == [1] * trials


# ---- checkpoints written in the background (issue 16)
def test_background_checkpoint_is_a_copy_taken_when_submitted(tmp_path):
    import torch

    from prunebench.store import BackgroundWriter, host_copy

    run = RunDir(tmp_path, tiny_spec())
    weights = torch.zeros(1000)
    state = {"op": 0, "metrics_count": 0, "model": {"w": weights}, "journal": {0: 1.0}, "levels": [{"level": 0}]}
    writer = BackgroundWriter()
    writer.submit(run.save_checkpoint, host_copy(state))
    weights.add_(1.0)  # training goes on while the copy is written
    state["journal"][1] = 2.0
    writer.wait()
    saved = run.load_checkpoint()
    assert torch.equal(saved["model"]["w"], torch.zeros(1000)) and saved["journal"] == {0: 1.0}


def test_a_background_write_error_is_raised_in_the_training_thread(tmp_path):
    from prunebench.store import BackgroundWriter

    def fails() -> None:
        raise OSError(28, "No space left on device")

    writer = BackgroundWriter()
    writer.submit(fails)
    with pytest.raises(OSError, match="No space"):
        writer.wait()
    writer.wait()  # raised once


KILLED_WRITER = r"""
import os, sys, time, torch
import prunebench.store as store
from prunebench.store import BackgroundWriter, RunDir, host_copy
from tests.conftest import tiny_spec

run = RunDir(sys.argv[1], tiny_spec())
weights = torch.full((100_000,), 1.0)
run.save_checkpoint({"op": 0, "metrics_count": 0, "model": {"w": weights}, "step": 1})  # the last good checkpoint

def stuck(fd):  # the next write blocks in its fsync: the moment the kill strikes (a write in the
    os.write(1, b"writing\n")  # training thread would finish after 20 s, and the test fail)
    time.sleep(20)

store.os.fsync = stuck
writer = BackgroundWriter()
writer.submit(run.save_checkpoint, host_copy({"op": 0, "metrics_count": 0, "model": {"w": weights}, "step": 2}))
weights.add_(1.0)
os.write(1, b"training goes on\n")  # one write each: the two threads' lines never interleave
time.sleep(600)
"""


def test_a_kill_during_a_background_checkpoint_write_leaves_the_previous_checkpoint(tmp_path):
    import signal
    import sys

    import torch

    from tests.conftest import REPO

    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        said = {proc.stdout.readline().strip(), proc.stdout.readline().strip()}
        assert said == {"writing", "training goes on"}  # the step loop ran while the write was under way
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    state = RunDir(tmp_path, tiny_spec()).load_checkpoint()
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.full((100_000,), 1.0))


def test_many_records_pauses_the_cyclic_collector_and_restores_it():
    import gc

    from prunebench.store import many_records

    assert gc.isenabled()
    with many_records():
        assert not gc.isenabled()
        with many_records():  # nested: the outer one turns it back on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), many_records():
        raise ValueError("a record that does not parse")
    assert gc.isenabled()  # on again after an error too
    gc.disable()
    try:
        with many_records():
            pass
        assert not gc.isenabled()  # the caller's choice stays
    finally:
        gc.enable()
