"""The default thread count: the CPUs this process may use (affinity, cgroup quota, SLURM), split among workers."""

import os

import pytest

from prunebench import cpus
from prunebench.cpus import split_among, usable_cpus


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A 16-core machine whose process may run on CPUs 0-5, no quota, no SLURM (each test adds limits)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    return tmp_path


def test_the_affinity_mask_limits(machine):
    assert usable_cpus(machine) == (6, "affinity mask of 6 CPUs")


def test_a_cgroup_v2_quota_limits_rounded_up(machine):
    (machine / "cpu.max").write_text("250000 100000\n")
    assert usable_cpus(machine) == (3, "cgroup CPU quota 250000/100000 us")
    (machine / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(machine)[0] == 6


def test_a_cgroup_v1_quota_limits(machine):
    (machine / "cpu").mkdir()
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (machine / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(machine) == (2, "cgroup CPU quota 200000/100000 us")
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(machine)[0] == 6


def test_slurm_limits_and_the_smallest_limit_wins(machine, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert usable_cpus(machine) == (4, "SLURM_CPUS_PER_TASK=4")
    (machine / "cpu.max").write_text("100000 100000\n")
    assert usable_cpus(machine) == (1, "cgroup CPU quota 100000/100000 us")


def test_without_any_limit_every_core(machine, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert usable_cpus(machine) == (16, "os.cpu_count() = 16")


def test_workers_share_the_usable_cpus(machine, monkeypatch):
    monkeypatch.setattr(cpus, "CGROUP", machine)
    assert split_among(4, machine) == (1, "6 usable CPUs (affinity mask of 6 CPUs) shared by 4 workers")
    assert split_among(2, machine)[0] == 3 and split_among(8, machine)[0] == 1
    from prunebench.executors import cpu_workers, gpu_workers

    monkeypatch.setattr("prunebench.executors.split_among", lambda n: split_among(n, machine))
    assert [w.threads for w in cpu_workers(2)] == [3, 3] and [w.threads for w in gpu_workers("0,1,2")] == [2, 2, 2]
    assert cpu_workers(2)[0].threads_from == "6 usable CPUs (affinity mask of 6 CPUs) shared by 2 workers"


def test_a_run_uses_and_records_the_usable_cpus(machine, monkeypatch, tmp_path):
    import json

    import torch

    from prunebench.runner import run_one
    from prunebench.spec import ExecSettings
    from prunebench.store import RunDir
    from tests.conftest import tiny_spec

    monkeypatch.setattr("prunebench.runner.usable_cpus", lambda: (1, "affinity mask of 1 CPUs"))
    before = torch.get_num_threads()
    try:
        spec = tiny_spec(method="dense")
        run_one(spec, tmp_path / "r", ExecSettings())
        record = json.loads((RunDir(tmp_path / "r", spec).path / "provenance.json").read_text())
        assert record["torch_threads"] == 1 and record["threads_from"] == "affinity mask of 1 CPUs"
        spec2 = tiny_spec(method="dense", seed=1)
        run_one(spec2, tmp_path / "r", ExecSettings(threads=2))
        record = json.loads((RunDir(tmp_path / "r", spec2).path / "provenance.json").read_text())
        assert record["torch_threads"] == 2 and record["threads_from"] == "--threads 2"
    finally:
        torch.set_num_threads(before)
