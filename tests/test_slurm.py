"""The SLURM path through submitit: parameters, the sbatch file, and local end-to-end runs with
preemption (submitit's LocalExecutor runs the same tasks as processes and honours requeues)."""

import json
import time

import pytest

from prunebench.executors import plan_suite
from prunebench.runner import run_one
from prunebench.slurm import make_executor, parse_time, sbatch_script, slurm_parameters, submit
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from tests.conftest import tiny_spec


@pytest.mark.parametrize("text,minutes", [("24:00:00", 1440), ("1-02:30:00", 1590), ("00:90", 90), ("45", 45), ("0:10:30", 11)])
def test_parse_time(text, minutes):
    assert parse_time(text) == minutes


def test_sbatch_file_of_the_job_array(tmp_path):
    params = slurm_parameters("gpu", "24:00:00", array_parallelism=2, gpus=1, cpus=8, job_name="bench-x")
    script = sbatch_script(params, tasks=5, folder=tmp_path)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=1440", "#SBATCH --array=0-4%2", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --job-name=bench-x", "#SBATCH --signal=USR2@90", "#SBATCH --nodes=1"):
        assert line in script, line
    assert "submitit.core._submit" in script
    with pytest.raises(ValueError, match="--time"):
        slurm_parameters("gpu", "tomorrow", 2, 1, 8)


def metrics(results, spec):
    return [{k: v for k, v in m.items() if k not in ("wall_time_s", "time_s")} for m in RunDir(results, spec).metrics()]


@pytest.mark.slow
def test_local_submitit_array_runs_every_run(tmp_path):
    specs = [tiny_spec(seed=s, method="lrr", params={"levels": 1}) for s in range(2)]
    params = {"timeout_min": 10, "name": "bench-test"}
    jobs = submit(plan_suite(specs, tmp_path / "r"), tmp_path / "r", ExecSettings(threads=1),
                  make_executor(tmp_path / "slurm", params, "local"))
    outcomes = [job.result() for job in jobs]
    assert [o["status"] for o in outcomes] == ["complete", "complete"]
    for spec in specs:
        run_one(spec, tmp_path / "clean", ExecSettings(threads=1))
        assert metrics(tmp_path / "r", spec) == metrics(tmp_path / "clean", spec)


@pytest.mark.slow
def test_preempted_task_checkpoints_requeues_and_resumes(tmp_path):
    """The local controller sends USR2 35 s before its 60 s time-out; the task stops at the next
    step with a checkpoint and requeues itself; the new task resumes. Results equal a clean run."""
    # USR2 comes 25 s into every task, of which a few seconds are imports and data. The run is sized
    # by the speed measured here and now (one epoch, same threads) to about 45 s of training: always
    # preempted at least once, done within the local controller's six tasks (submitit's max_retry).
    # A fixed size was preempted on a 2-core Xeon and finished unpreempted in 28 s on an AMD EPYC.
    def lrr(epochs: int):
        return tiny_spec(method="lrr", params={"levels": 2, "fraction": 0.5}, train={"epochs": epochs, "batch_size": 8},
                         data={"synthetic": {"train_size": 8192}}, model={"name": "lenet_300_100", "options": {"hidden": [256, 128]}})

    settings = ExecSettings(threads=1, checkpoint_interval_s=3600)
    run_one(lrr(1), tmp_path / "calibrate", settings)
    seconds_per_epoch = max(m["time_s"] for m in RunDir(tmp_path / "calibrate", lrr(1)).metrics() if m.get("kind") == "epoch")
    spec = lrr(min(max(round(45 / (3 * seconds_per_epoch)), 4), 60))  # three levels of E epochs each
    params = {"timeout_min": 1, "signal_delay_s": 35, "name": "bench-preempt"}
    started = time.time()
    (job,) = submit(plan_suite([spec], tmp_path / "r"), tmp_path / "r", settings, make_executor(tmp_path / "slurm", params, "local"))
    outcome = job.result()
    assert outcome["status"] == "complete", job.stderr()
    provenance = json.loads((RunDir(tmp_path / "r", spec).path / "provenance.json").read_text())
    assert len(provenance.get("resumes", [])) >= 1, f"never preempted ({time.time() - started:.0f} s)"
    run_one(spec, tmp_path / "clean", settings)
    assert metrics(tmp_path / "r", spec) == metrics(tmp_path / "clean", spec)
