"""SLURM through submitit: a suite's incomplete runs become one job array; each task calls run_one.

Preemption and time-outs: SLURM (through submitit's ``--signal=USR2@90``) warns the job; the task's
handler asks the training loop to stop at the next optimizer step, the run writes a checkpoint
there and the task requeues itself (``scontrol requeue``); the requeued task resumes from that
checkpoint, mid-level, with the numbers an uninterrupted run would have produced. The results
directory must be on storage every node sees.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunebench.executors import PlannedRun, dependency_layers
from prunebench.runner import run_one, stop_on_signals
from prunebench.spec import ExecSettings, RunSpec

REQUEUE_LIMIT = 100  # preemptions per task before giving up


def parse_time(text: str) -> int:
    """SLURM time '[D-]HH:MM:SS', 'HH:MM' or minutes -> minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?", text.strip())
    if match:
        days, hours, minutes, seconds = (int(x) if x else 0 for x in match.groups())
        return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    if text.strip().isdigit():
        return int(text)
    raise ValueError(f"--time expects [D-]HH:MM:SS, HH:MM or minutes, got {text!r}")


def slurm_parameters(partition: str | None, time: str, array_parallelism: int, gpus: int, cpus: int,
                     mem: str | None = None, job_name: str = "bench") -> dict[str, Any]:
    """submitit parameters of one task: one run on ``gpus`` GPUs and ``cpus`` cores."""
    params: dict[str, Any] = {
        "timeout_min": parse_time(time), "slurm_array_parallelism": array_parallelism, "name": job_name,
        "gpus_per_node": gpus, "cpus_per_task": cpus, "tasks_per_node": 1, "nodes": 1,
    }
    if partition:
        params["slurm_partition"] = partition
    if mem:
        params["slurm_mem"] = mem
    return params


class RunTask:
    """The callable a submitit task runs: one run, requeued on preemption until it completes."""

    def __call__(self, spec_json: str, results: str, settings_json: str) -> dict[str, Any]:
        spec = RunSpec.model_validate_json(spec_json)
        settings = ExecSettings.model_validate_json(settings_json)
        with stop_on_signals(("SIGUSR2", "SIGTERM")) as stop:
            outcome = run_one(spec, Path(results), settings, should_stop=stop.requested)
        if outcome.status == "interrupted" and stop.signal == "SIGUSR2":  # preempted or timing out: come back
            import submitit

            submitit.JobEnvironment()._requeue(REQUEUE_LIMIT)  # exits; the requeued task resumes the run
        # SIGTERM (scancel): the checkpoint is written; a later `bench run` resumes the run
        return {"run_id": outcome.run_id, "status": outcome.status, "reason": outcome.reason, "wall_time_s": outcome.wall_time_s}


def make_executor(folder: Path, params: dict[str, Any], cluster: str | None = None):
    """submitit's executor for SLURM, or (``cluster='local'``) its LocalExecutor, which runs the same
    tasks as local processes, sends USR2 ``signal_delay_s`` before ``timeout_min`` and honours requeues."""
    import submitit

    if cluster == "local":
        executor = submitit.LocalExecutor(folder=str(folder / "%j"))
        executor.update_parameters(**{k: v for k, v in params.items() if k in ("timeout_min", "signal_delay_s")})
        return executor
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    executor.update_parameters(**params)
    return executor


def submit(plans: Sequence[PlannedRun], results: Path, settings: ExecSettings, executor) -> list[Any]:
    """Submit the plans as job arrays, one per dependency layer: a layer of runs that take another
    run's masks or signs starts after the layer of its producers has ended (SLURM ``afterany``; a
    consumer whose producer failed then ends at once, blocked). Returns the submitit jobs."""
    import submitit

    task = RunTask()
    jobs: list[Any] = []
    previous: list[Any] = []
    for layer in dependency_layers(plans):
        if previous and isinstance(executor, submitit.LocalExecutor):
            for job in previous:  # no scheduler to hold the next array back: wait here
                job.wait()
        elif previous:
            arrays = sorted({str(job.job_id).split("_")[0] for job in previous})
            executor.update_parameters(slurm_additional_parameters={"dependency": "afterany:" + ":".join(arrays)})
        with executor.batch():
            layer_jobs = [executor.submit(task, p.spec.model_dump_json(), str(results), settings.model_dump_json()) for p in layer]
        jobs += layer_jobs
        previous = layer_jobs
    return jobs


def sbatch_script(params: dict[str, Any], tasks: int, folder: Path) -> str:
    """The sbatch file submitit writes for an array of ``tasks`` runs with these parameters (--dry-run)."""
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(
        command=f"python -u -m submitit.core._submit {folder / '%j'}", folder=str(folder / "%j"),
        job_name=params["name"], partition=params.get("slurm_partition"), time=params["timeout_min"],
        nodes=params["nodes"], ntasks_per_node=params["tasks_per_node"], cpus_per_task=params["cpus_per_task"],
        gpus_per_node=params["gpus_per_node"], mem=params.get("slurm_mem"),
        array_parallelism=params["slurm_array_parallelism"], map_count=tasks,
    )
