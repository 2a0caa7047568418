"""Executors: shards, worker pools, concurrent runners on one results directory, status."""

import json
import os
import re
import socket

import pytest

from prunebench.executors import Worker, in_shard, parse_shard, plan_suite, run_local, run_pool
from prunebench.runner import run_one
from prunebench.spec import ExecSettings
from prunebench.status import suite_status
from prunebench.store import RunDir, atomic_write_json
from tests.conftest import TINY_SUITE, bench_process, tiny_spec

SUITE = TINY_SUITE.replace("  - {name: lrr, levels: 2, fraction: 0.5}\n",
                           "  - {name: lrr, levels: 2, fraction: 0.5}\n  - {name: imp, levels: 2, fraction: 0.5}\n"
                           ).replace("[0, 1]", "[0, 1, 2]")


def test_shards_partition_the_suite():
    specs = [tiny_spec(seed=s, method=m, params=p) for s in range(5) for m, p in (("dense", {}), ("lrr", {"levels": 1}))]
    shards = [[s.run_id for s in specs if in_shard(s, (i, 3))] for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(s.run_id for s in specs)
    assert all(shards)
    with pytest.raises(ValueError):
        parse_shard("3/3")
    assert parse_shard("1/4") == (1, 4)


def test_pool_gives_the_sequential_results(tmp_path):
    specs = [tiny_spec(seed=s, method="lrr", params={"levels": 1}) for s in range(3)]
    settings = ExecSettings(threads=1)
    sequential = run_local(plan_suite(specs, tmp_path / "a"), tmp_path / "a", settings, progress=False)
    pooled = run_pool(plan_suite(specs, tmp_path / "b"), tmp_path / "b", settings, [Worker("cpu", {}, 1)] * 2, progress=False)
    assert sorted(o.status for o in sequential) == sorted(o.status for o in pooled) == ["complete"] * 3
    for spec in specs:
        rows = [[{k: v for k, v in m.items() if k not in ("wall_time_s", "time_s")} for m in RunDir(d, spec).metrics()]
                for d in (tmp_path / "a", tmp_path / "b")]
        assert rows[0] == rows[1]


def test_two_runners_on_one_results_directory_execute_each_run_once(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE)
    results = tmp_path / "r"
    procs = [bench_process("run", str(suite), "--results", str(results), "--threads", "1", "--no-progress") for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    executed = [int(m.group(1)) if (m := re.search(r"(\d+) completed", err)) else 0 for _, err in outputs]
    assert sum(executed) == 9, outputs  # 3 methods x 3 seeds, each executed by exactly one runner
    for result in results.glob("*/result.json"):
        assert not json.loads((result.parent / "provenance.json").read_text()).get("resumes")


def test_status_counts_and_eta(tmp_path):
    done, failed, held, pending = (tiny_spec(seed=s) for s in range(4))
    run_one(done, tmp_path, ExecSettings())
    RunDir(tmp_path, failed).path.mkdir(parents=True)
    RunDir(tmp_path, failed).fail("diverged: non-finite training loss")
    RunDir(tmp_path, held).path.mkdir(parents=True)
    atomic_write_json(RunDir(tmp_path, held).path / "lock", {"pid": os.getppid(), "host": socket.gethostname()})
    st = suite_status(tmp_path, "t", [done, failed, held, pending], {s.run_id: 2.0 for s in (done, failed, held, pending)})
    assert st.counts == {"complete": 1, "failed": 1, "running": 1, "pending": 1}
    assert st.failures == [("failed", "x seed 1", "diverged: non-finite training loss")]
    assert st.epochs_done == 2.0 and st.epochs_left == 4.0
    times = [m["time_s"] for m in RunDir(tmp_path, done).metrics() if m["kind"] == "epoch"]
    assert st.seconds_per_epoch == pytest.approx(sorted(times)[len(times) // 2] if len(times) % 2 else sum(times) / 2)
    assert st.eta_s == pytest.approx(4.0 * st.seconds_per_epoch / 1)  # one run running


def test_a_stop_request_ends_the_wait_for_a_run_another_process_holds(tmp_path):
    import threading
    import time

    spec = tiny_spec(method="dense")
    lock = RunDir(tmp_path, spec).lock()
    lock.__enter__()  # held by a live process (this one): run_local can only wait for it
    release = threading.Timer(15, lock.__exit__, (None, None, None))  # so that a regression fails rather than hangs
    release.start()
    started = time.monotonic()
    try:
        outcomes = run_local(plan_suite([spec], tmp_path), tmp_path, ExecSettings(), progress=False,
                             should_stop=lambda: time.monotonic() - started > 0.5)
    finally:
        release.cancel()
        if (tmp_path / spec.run_id / "lock").exists():
            lock.__exit__(None, None, None)
    assert time.monotonic() - started < 10 and [o.status for o in outcomes] == ["locked"]


# ---- several runs per GPU (issue 16, item 4), on fake devices: CPU workers that each see "their" GPU
def test_runs_per_gpu_share_each_gpu_and_give_the_results_of_runs_alone(tmp_path):
    import dataclasses

    from prunebench.executors import gpu_workers

    workers = gpu_workers("0,1", runs_per_gpu=2)
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0", "0", "1", "1"] and {w.device for w in workers} == {"cuda"}
    assert len({w.threads for w in workers}) == 1 and "shared by 4 workers" in workers[0].threads_from
    fake = [dataclasses.replace(w, device="cpu", threads=1) for w in workers]  # no GPU here: the same pool on the CPU
    specs = [tiny_spec(seed=s, method="lrr", params={"levels": 1}) for s in range(4)]
    settings = ExecSettings(threads=1)
    alone = run_local(plan_suite(specs, tmp_path / "alone"), tmp_path / "alone", settings, progress=False)
    shared = run_pool(plan_suite(specs, tmp_path / "shared"), tmp_path / "shared", settings, fake, progress=False)
    assert [o.status for o in alone] == [o.status for o in shared] == ["complete"] * 4
    seen = set()
    for spec in specs:
        runs = [RunDir(d, spec) for d in (tmp_path / "alone", tmp_path / "shared")]
        assert [lv.model_dump(exclude={"wall_time_s"}) for lv in runs[0].result().levels] == \
               [lv.model_dump(exclude={"wall_time_s"}) for lv in runs[1].result().levels]
        seen.add(json.loads((runs[1].path / "provenance.json").read_text())["cuda_visible_devices"])
    assert seen <= {"0", "1"} and seen
    with pytest.raises(ValueError, match="at least 1"):
        gpu_workers("0", runs_per_gpu=0)


def test_runs_per_gpu_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from prunebench.cli import main

    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    for extra in (["--runs-per-gpu", "2"], ["--runs-per-gpu", "2", "--gpus", "0"]):
        out = CliRunner().invoke(main, ["run", str(suite), "--results", str(tmp_path / "r"), *extra])
        assert out.exit_code == 2 and len(out.output.strip().splitlines()) == 1, out.output
        assert "GPU" in out.output and not (tmp_path / "r").exists()


def test_the_dry_runs_epoch_time_reads_an_even_sample_of_the_timed_runs(tmp_path):
    import statistics

    from prunebench.status import measured_seconds_per_epoch

    specs = [tiny_spec(seed=s) for s in range(7)]
    for i, spec in enumerate(specs[:6]):  # the last run is pending: no rows
        run = RunDir(tmp_path, spec)
        run.path.mkdir(parents=True)
        for t in (float(i), float(i) + 0.5):
            run.append_metrics({"kind": "epoch", "complete": True, "time_s": t})
        run.append_metrics({"kind": "epoch", "complete": False, "time_s": 100.0})  # a cut-short epoch does not count
    assert measured_seconds_per_epoch(tmp_path, specs) == statistics.median([t for i in range(6) for t in (i, i + 0.5)])
    assert measured_seconds_per_epoch(tmp_path, specs, most=3) == statistics.median([0, 0.5, 2, 2.5, 4, 4.5])  # runs 0, 2, 4
    assert measured_seconds_per_epoch(tmp_path, specs[6:]) is None
