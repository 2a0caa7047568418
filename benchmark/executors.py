"""Executors: decide which runs of a suite to execute and call run_one for each.

- ``run_local``: one run after another in this process, one progress bar over the planned epochs.
- ``run_pool``: one worker process per GPU (``--gpus 0,1``: CUDA_VISIBLE_DEVICES set per worker) or
  per CPU job (``--jobs N``), fed runs as they become free; a failure in one run does not stop others.
- SLURM: prunebench.slurm (submitit job arrays), calling the same run_one.

Finished runs are skipped; failed runs are skipped unless retried; a run another process holds
(its lock is live) is left to it. ``--shard i/N`` keeps the runs whose id falls in shard i, so
several machines sharing a results directory split a suite without coordinating.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from prunebench.cpus import split_among
from prunebench.data import DataCache, require_files
from prunebench.messages import say_levels, say_warnings
from prunebench.planner import Sharing, TrainStep, plan_training, share_prefixes
from prunebench.runner import INVOCATION_FAULTS, InvocationError, Outcome, producers_waited_for, run_one, stop_on_signals
from prunebench.spec import ExecSettings, RunSpec
from prunebench.store import RunDir, RunLocked


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    status: str  # complete | failed | partial | pending
    epochs: float  # epochs the whole run trains
    levels: int
    trains: tuple[TrainStep, ...] = ()  # its trains, for prefix sharing


def plan_run(spec: RunSpec, results: Path) -> PlannedRun:
    """A run's status in ``results`` and what it trains (its method script against a PlanSession)."""
    plan = plan_training(spec)
    return PlannedRun(spec, RunDir(results, spec).status(), plan.epochs, plan.levels, plan.trains)


def plan_suite(specs: Sequence[RunSpec], results: Path) -> list[PlannedRun]:
    return [plan_run(spec, results) for spec in specs]


def require_data(plans: Sequence[PlannedRun], data_root: str | None) -> None:
    """DatasetError now, before any run starts, if a run still to do would not find its dataset."""
    for data in {p.spec.data.model_dump_json(): p.spec.data for p in plans
                 if p.status != "complete" and p.spec.data is not None}.values():
        require_files(data, data_root)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' (0 <= i < N) -> (i, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects i/N, got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < N")
    return index, count


def in_shard(spec: RunSpec, shard: tuple[int, int] | None) -> bool:
    """Shards by run id, so adding runs to a suite never moves existing runs between shards."""
    return shard is None or int(spec.run_id, 16) % shard[1] == shard[0]


def select(specs: Sequence[RunSpec], only: Mapping[str, set[str]] | None = None,
           shard: tuple[int, int] | None = None) -> list[RunSpec]:
    """The runs whose method, label, seed and run id are among ``only``'s values, in ``shard``."""
    def chosen(spec: RunSpec) -> bool:
        fields = {"method": spec.method, "label": spec.label, "seed": str(spec.seed), "run": spec.run_id}
        return all(fields[k] in values for k, values in (only or {}).items())

    return [s for s in specs if chosen(s) and in_shard(s, shard)]


def to_run(plans: Sequence[PlannedRun], retry_failed: bool) -> tuple[list[PlannedRun], list[Outcome]]:
    """(runs to execute, outcomes of the runs left alone)."""
    todo = [p for p in plans if p.status != "complete" and (retry_failed or p.status != "failed")]
    skipped = [Outcome(p.spec.run_id, "skipped") for p in plans if p.status == "complete"]
    skipped += [Outcome(p.spec.run_id, "failed", "failed earlier (use --retry-failed)") for p in plans
                if p.status == "failed" and not retry_failed]
    return todo, skipped


def execution_order(todo: Sequence[PlannedRun]) -> list[PlannedRun]:
    """The order the executors start runs in (``dependency_layers``, one after another)."""
    return [p for layer in dependency_layers(todo) for p in layer]


def prefix_sharing(todo: Sequence[PlannedRun], settings: ExecSettings) -> Sharing:
    """The states several of ``todo`` reach (written once, loaded by the others) and the epochs that
    saves when they run in ``execution_order`` (a pool may train a prefix twice if two of its runs
    reach it at once; results are the same either way)."""
    if not settings.share_prefixes:
        return Sharing(frozenset(), {})
    return share_prefixes({p.spec.run_id: p.trains for p in execution_order(todo)})


def shared_keys(plan: PlannedRun, sharing: Sharing) -> frozenset[str]:
    return sharing.keys & {t.key for t in plan.trains}


def _progress(total: float, enabled: bool) -> tqdm:
    return tqdm(total=round(total, 2), unit="ep", disable=not enabled or not total, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} ep [{elapsed}<{remaining}]")


def _report(outcome: Outcome, spec: RunSpec) -> None:
    if outcome.status in ("failed", "locked", "blocked"):
        tqdm.write(f"run {spec.run_id} ({spec.label}, seed {spec.seed}) {outcome.status}: {outcome.reason}")


def run_local(plans: Sequence[PlannedRun], results: Path, settings: ExecSettings, *, retry_failed: bool = False,
              progress: bool = True, should_stop: Callable[[], bool] | None = None) -> list[Outcome]:
    """Run every incomplete run in order in this process; a failure is recorded and the next run starts."""
    todo, outcomes = to_run(plans, retry_failed)
    data = DataCache()
    sharing = prefix_sharing(todo, settings)
    with _progress(sum(p.epochs for p in todo), progress) as bar:

        def execute(batch: Sequence[PlannedRun]) -> list[Outcome]:
            out = []
            for p in batch:
                bar.set_description(f"{p.spec.label} seed {p.spec.seed}")
                out.append(_guarded(p.spec, results, settings, data, lambda e: bar.update(e), should_stop,
                                    shared_keys(p, sharing)))
                _report(out[-1], p.spec)
                if out[-1].status == "interrupted":
                    break
            return out

        outcomes += _with_waits(todo, execute, results, should_stop)
    return outcomes


def dependency_layers(todo: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """Runs grouped so that each group's producers (among ``todo``) lie in earlier groups; in suite
    order within a group, except that the runs that must train a state themselves (they keep weights
    inside one of their trains) come first, so that the others can load the states they reach too."""
    ids = {p.spec.run_id for p in todo}
    layers: list[list[PlannedRun]] = []
    placed: set[str] = set()
    pending = list(todo)
    while pending:
        layer = [p for p in pending if all(r not in ids or r in placed for r in p.spec.producers.values())]
        if not layer:  # cannot happen for validated suites; run the rest and let them report
            layer = pending
        layers.append(sorted(layer, key=lambda p: all(t.loadable for t in p.trains)))
        placed |= {p.spec.run_id for p in layer}
        chosen = {id(p) for p in layer}  # by identity: comparing plans (pydantic models) is quadratic and slow
        pending = [p for p in pending if id(p) not in chosen]
    return layers


def _with_waits(todo: Sequence[PlannedRun], execute: Callable[[Sequence[PlannedRun]], list[Outcome]],
                results: Path, should_stop: Callable[[], bool] | None = None, poll_s: float = 2.0) -> list[Outcome]:
    """Execute ``todo`` producers first, then wait for what other processes hold:

    - a run another process holds (locked): done by it -> skipped; released unfinished (its holder
      died or failed) -> executed here. No run is ever executed by two processes at once.
    - a run whose producer is not complete (blocked): executed once the producer completes; while
      the producer runs elsewhere it waits; if nobody runs the producer it stays blocked.
    """
    stopped = lambda: should_stop is not None and should_stop()  # noqa: E731
    outcomes = [o for layer in dependency_layers(todo) for o in (execute(layer) if not stopped() else [])]
    by_id = {p.spec.run_id: p for p in todo}
    waiting = [o for o in outcomes if o.status in ("locked", "blocked")]
    final = [o for o in outcomes if o.status not in ("locked", "blocked")]
    while waiting and not stopped():
        time.sleep(poll_s)
        still = []
        for o in waiting:
            plan = by_id[o.run_id]
            run = RunDir(results, plan.spec)
            if run.is_locked():
                still.append(o)
            elif run.result() is not None:
                final.append(Outcome(o.run_id, "skipped", "completed by another process"))
            elif run.failure() is not None:
                final.append(Outcome(o.run_id, "failed", "failed in another process"))
            elif o.status == "blocked" and producers_waited_for(plan.spec, results):
                if any(_locked(results, run_id) for run_id in plan.spec.producers.values()):
                    still.append(o)  # its producer is running somewhere: wait for it
                else:
                    final.append(o)  # nobody runs its producer: it stays blocked
            else:
                retried = execute([plan])
                still += [r for r in retried if r.status in ("locked", "blocked")]
                final += [r for r in retried if r.status not in ("locked", "blocked")]
        waiting = still
    return final + waiting


def _locked(results: Path, run_id: str) -> bool:
    return RunDir.at(results, run_id).is_locked()


def _guarded(spec: RunSpec, results: Path, settings: ExecSettings, data: DataCache,
             on_progress: Callable[[float], None], should_stop: Callable[[], bool] | None = None,
             shared: frozenset[str] = frozenset()) -> Outcome:
    if should_stop is not None and should_stop():
        return Outcome(spec.run_id, "interrupted", "not started: stop requested")
    try:
        return run_one(spec, results, settings, data, on_progress=on_progress, should_stop=should_stop,
                       shared_prefixes=shared)
    except RunLocked as e:
        return Outcome(spec.run_id, "locked", str(e))


# ------------------------------------------------------------------------------ worker processes
@dataclass(frozen=True)
class Worker:
    """One worker process: its device, environment and torch thread count."""

    device: str
    env: dict[str, str]
    threads: int | None = None
    threads_from: str | None = None  # how ``threads`` was chosen (provenance)


def gpu_workers(gpus: str, runs_per_gpu: int = 1) -> list[Worker]:
    """'0,1,3' -> ``runs_per_gpu`` CUDA workers per listed GPU, each seeing only that GPU
    (CUDA_VISIBLE_DEVICES), so several small runs share a large GPU.

    Each worker is a process of its own (its own CUDA context, generators and cuDNN state): a run
    computes what it would alone; only its speed depends on its neighbours."""
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if not ids:
        raise ValueError("--gpus expects a comma-separated list of GPU indices")
    if runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")
    # a GPU worker's data and Python need CPUs too, not all of them each
    threads, why = split_among(len(ids) * runs_per_gpu)
    return [Worker("cuda", {"CUDA_VISIBLE_DEVICES": g}, threads, why) for g in ids for _ in range(runs_per_gpu)]


def cpu_workers(jobs: int) -> list[Worker]:
    """N CPU workers sharing the CPUs this process may use evenly."""
    threads, why = split_among(jobs)
    return [Worker("cpu", {"CUDA_VISIBLE_DEVICES": ""}, threads, why) for _ in range(jobs)]


# Per worker process: its settings, data cache and progress queue, set once by _init_worker.
_worker_state: dict[str, Any] = {}


def _init_worker(workers: queue.Queue, progress: Any, settings: ExecSettings) -> None:
    worker: Worker = workers.get()
    say_warnings()
    say_levels()
    os.environ.update(worker.env)  # before the first CUDA call of this process
    stop = stop_on_signals().__enter__()  # for the life of the worker: stop its run at the next step, checkpointed
    _worker_state.update(
        settings=settings.model_copy(update={"device": worker.device, "threads": settings.threads or worker.threads,
                                             "threads_from": None if settings.threads else worker.threads_from}),
        data=DataCache(), progress=progress, stop=stop,
    )


def _work(spec_json: str, results: str, shared: frozenset[str] = frozenset()) -> Outcome:
    spec = RunSpec.model_validate_json(spec_json)
    progress = _worker_state["progress"]
    return _guarded(spec, Path(results), _worker_state["settings"], _worker_state["data"],
                    lambda epochs: progress.put(epochs), _worker_state["stop"].requested, shared)


def run_pool(plans: Sequence[PlannedRun], results: Path, settings: ExecSettings, workers: Sequence[Worker], *,
             retry_failed: bool = False, progress: bool = True, should_stop: Callable[[], bool] | None = None) -> list[Outcome]:
    """Run the incomplete runs on worker processes, each run on the next free worker.

    A stop request (``should_stop``) is forwarded to the workers as SIGUSR1: their runs stop at the
    next step with a checkpoint, and runs not started yet are not started."""
    todo, outcomes = to_run(plans, retry_failed)
    if not todo:
        return outcomes
    sharing = prefix_sharing(todo, settings)
    ctx = mp.get_context("spawn")  # fresh interpreters: CUDA_VISIBLE_DEVICES must precede CUDA's start
    with ctx.Manager() as manager:
        slots, ticks = manager.Queue(), manager.Queue()
        for w in workers:
            slots.put(w)
        with ProcessPoolExecutor(len(workers), mp_context=ctx, initializer=_init_worker, initargs=(slots, ticks, settings)) as pool, \
                _progress(sum(p.epochs for p in todo), progress) as bar:


            def execute(batch: Sequence[PlannedRun]) -> list[Outcome]:
                out = []
                running: dict[Future, PlannedRun] = {
                    pool.submit(_work, p.spec.model_dump_json(), str(results), shared_keys(p, sharing)): p for p in batch}
                forwarded = False
                while running:
                    done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    _drain(ticks, bar)
                    if should_stop is not None and should_stop() and not forwarded:
                        forwarded = True
                        for future, p in list(running.items()):
                            if future.cancel():
                                running.pop(future)
                                out.append(Outcome(p.spec.run_id, "interrupted", "not started: stop requested"))
                        _signal_workers(pool)
                    for future in done:
                        p = running.pop(future)
                        try:
                            outcome = future.result()
                        except (*INVOCATION_FAULTS, InvocationError):
                            _signal_workers(pool)  # the others checkpoint and stop: the command ends with this error
                            raise
                        except Exception as e:  # noqa: BLE001 - a worker that died (OOM, segfault) fails its run
                            outcome = Outcome(p.spec.run_id, "failed", f"worker process died: {type(e).__name__}: {e}")
                        _report(outcome, p.spec)
                        out.append(outcome)
                _drain(ticks, bar)
                return out

            outcomes += _with_waits(todo, execute, results, should_stop)
    return outcomes


def _signal_workers(pool: ProcessPoolExecutor) -> None:
    """SIGUSR1 to every worker: its run stops at the next step with a checkpoint."""
    for process in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGUSR1)


def _drain(ticks: Any, bar: tqdm) -> None:
    while True:
        try:
            bar.update(ticks.get_nowait())
        except queue.Empty:
            return
