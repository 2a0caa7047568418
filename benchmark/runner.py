"""run_one: execute one RunSpec into its run directory. Every executor calls only this.

It builds the data, model, trainer and Session, resumes from the run's checkpoint if there is one,
runs the method script, and writes result.json last. A run that fails (a non-finite loss, an
exception) writes failed.json with the reason and returns, so the rest of a suite goes on.

Faults of the records are repaired, with a warning that says what was discarded and why: a corrupt
result is set aside and the run redone; a checkpoint that cannot be resumed (unreadable, or the
metric lines it counts on are gone or garbled) is discarded and the run restarts. Faults of the whole
invocation are not charged to a run: a dataset that is missing or unreadable (DatasetError) and
records that cannot be written at all (InvocationError) stop the command with one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.api import get_method, get_scorer
from prunebench.cpus import usable_cpus
from prunebench.data import DataCache, DatasetError, DeviceLoader
from prunebench.masks import prunable_parameters
from prunebench.messages import LOGGER
from prunebench.models import build_model
from prunebench.prefixes import PrefixStore
from prunebench.records import LevelRecord, RunResult
from prunebench.seeds import derive_seed
from prunebench.session import Interrupted, TrainingSession
from prunebench.spec import ExecSettings, RunSpec
from prunebench.standalone import StandaloneSession
from prunebench.store import CorruptRecord, RunDir, RunRecords
from prunebench.train import Diverged, Trainer

log = logging.getLogger(LOGGER)
INVOCATION_FAULTS = (DatasetError,)  # and InvocationError: never charged to one run


class InvocationError(RuntimeError):
    """The records of a run cannot be written at all (not even its failure): a fault of the invocation."""


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # complete | skipped | failed | locked | interrupted | blocked (a producer is not complete)
    reason: str = ""
    wall_time_s: float = 0.0


class StopRequest:
    """Set by a signal handler; asked by the training loop after every step."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def requested(self) -> bool:
        return self.signal is not None


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")


@contextlib.contextmanager
def stop_on_signals(names: Sequence[str] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """While inside, the named signals ask training to stop at the next step with a checkpoint
    (a second SIGINT interrupts at once). The previous handlers come back on exit."""
    request = StopRequest()

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if request.signal is not None and name == "SIGINT":
            raise KeyboardInterrupt
        request.signal = name

    previous = {}
    for name in names:
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_settings(settings: ExecSettings, gpus: int = 0) -> None:
    """ValueError (one line) for execution settings this machine cannot honour, before any run starts:
    an unknown device, CUDA without CUDA, more GPUs than there are, channels_last on the CPU."""
    try:
        device = resolve_device(settings.device)
    except RuntimeError:
        raise ValueError(f"--device {settings.device}: not a device (auto, cpu, cuda, cuda:N, mps)") from None
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and not cuda:
        raise ValueError(f"--device {settings.device}: this machine has no CUDA GPU (torch {torch.__version__})")
    if device.type == "cuda" and device.index is not None and device.index >= cuda:
        raise ValueError(f"--device {settings.device}: this machine has {cuda} CUDA GPU(s)")
    if gpus and gpus > cuda:
        raise ValueError(f"--gpus lists {gpus} GPU(s); this machine has {cuda}")
    if settings.cudnn_benchmark and settings.deterministic:
        raise ValueError("--cudnn-benchmark with --deterministic: autotuning may pick other algorithms in another process")
    if settings.channels_last and device.type == "cpu" and not gpus:
        raise ValueError("--channels-last is a GPU setting (on the CPU, oneDNN computes wrong weight gradients for "
                         "some convolutions in channels_last; see results/throughput_cpu.md)")


def configure_torch(settings: ExecSettings) -> None:
    """Thread count and determinism flags, recorded in provenance (bitwise equality holds per thread count).
    Without --threads, as many threads as this process has CPUs (affinity, cgroup quota, SLURM), not
    torch's default of every core of the machine."""
    torch.set_num_threads(settings.threads or usable_cpus()[0])
    if settings.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    # cuDNN autotuning: the fastest convolution algorithm per shape, timed on the first batches (its
    # choice may vary between processes, so it is off under --deterministic).
    torch.backends.cudnn.benchmark = cudnn_benchmark(settings)


def cudnn_benchmark(settings: ExecSettings) -> bool:
    return not settings.deterministic if settings.cudnn_benchmark is None else settings.cudnn_benchmark


def threads_from(settings: ExecSettings) -> str:
    """Why the run has its thread count: --threads, a worker pool's split, or the CPUs it may use."""
    if settings.threads_from:
        return settings.threads_from
    return f"--threads {settings.threads}" if settings.threads else usable_cpus()[1]


def plugin_versions(spec: RunSpec | None) -> dict[str, str | None]:
    """The distributions (and versions) of the third-party code a run used: its method and scorer
    when they come from a plugin (by top-level module; None when no installed distribution has it)."""
    if spec is None:
        return {}
    objects = [get_method(spec.method)] + ([get_scorer(spec.prune.scorer)] if spec.prune is not None else [])
    tops = {obj.__module__.split(".")[0] for obj in objects} - {"prunebench"}
    found: dict[str, str | None] = {}
    distributions = metadata.packages_distributions() if tops else {}
    for top in sorted(tops):
        for dist in distributions.get(top, []) or [None]:
            found[dist or top] = metadata.version(dist) if dist else None
    return found


def provenance(settings: ExecSettings, device: torch.device, spec: RunSpec | None = None) -> dict[str, Any]:
    """Where and with what this run executed: code version, packages (and plugins), device, threads."""
    packages = {}
    for name in ("prunebench", "torch", "torchvision", "timm", "numpy", "pydantic", "pandas"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    info: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "git": _git_state(),
        "packages": packages,
        "plugins": plugin_versions(spec),
        "device": str(device),
        "device_name": provenance_device_name(device),
        "cpu": cpu_info(),
        "torch_threads": torch.get_num_threads(),
        "threads_from": threads_from(settings),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # a worker's GPU (--gpus, --runs-per-gpu)
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "settings": settings.model_dump(mode="json"),
        "slurm": {k: os.environ[k] for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
                  if k in os.environ} or None,
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    return info


CPUINFO = Path("/proc/cpuinfo")


def cpu_name(cpuinfo: Path = CPUINFO) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_info(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """The CPU's model name, its vector extensions and the kernels torch dispatches to on it (its CPU
    capability: DEFAULT, AVX2, AVX512, ...): two CPUs of one model name can differ in these, and with
    them the last bits of a run's numbers."""
    flags: set[str] = set()
    try:
        line = next((x for x in cpuinfo.read_text().splitlines() if x.startswith(("flags", "Features"))), "")
        flags = set(line.split(":", 1)[1].split()) if ":" in line else set()
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "amx", "sve", "asimd")) or f in ("fma", "sse4_2", "neon"))
    return {"model": cpu_name(cpuinfo), "vector_extensions": vector, "torch_capability": torch.backends.cpu.get_cpu_capability()}


def _git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def build_trainer(spec: RunSpec, settings: ExecSettings, data: DataCache,
                  device: torch.device) -> tuple[Trainer, dict[str, nn.Parameter], int]:
    """Data, model (initialised from the run's seed) and trainer of a run, its prunable weights and class count."""
    prepared = data.get(spec.data, settings.data_root)
    torch.manual_seed(derive_seed(spec.seed, "init"))
    model = build_model(spec.model, prepared.num_classes, prepared.shape).to(device)
    prunable = prunable_parameters(model, spec.prune.prunable)
    loader = dict(mean=prepared.mean, std=prepared.std, device=device, per_image_standardization=spec.data.per_image_standardization)
    trainer = Trainer(
        model,
        DeviceLoader(prepared.train, batch_size=spec.train.batch_size, augment=spec.data.augment, drop_last=spec.train.drop_last, **loader),
        DeviceLoader(prepared.test, batch_size=settings.eval_batch_size, eval_resize=spec.data.eval_resize,
                     eval_crop=spec.data.eval_crop, **loader),
        spec.train,
        eval_batch_size=settings.eval_batch_size,
        channels_last=settings.channels_last,
        compile=settings.compile,
        compile_update=settings.compile_update,
        optimizer_impl=settings.optimizer_impl,
    )
    return trainer, prunable, prepared.num_classes


def build_session(spec: RunSpec, run: RunDir, settings: ExecSettings, data: DataCache, device: torch.device,
                  on_progress: Callable[[float], None] | None = None, should_stop: Callable[[], bool] | None = None,
                  producers: dict[str, RunRecords] | None = None, prefixes: PrefixStore | None = None,
                  shared_prefixes: frozenset[str] = frozenset()) -> TrainingSession:
    """The Session of a run, over its trainer (build_trainer)."""
    trainer, prunable, num_classes = build_trainer(spec, settings, data, device)
    return TrainingSession(spec, trainer, prunable, run, num_classes=num_classes,
                   checkpoint_every=settings.checkpoint_every, checkpoint_interval_s=settings.checkpoint_interval_s,
                   on_progress=on_progress, should_stop=should_stop, producers=producers,
                   async_checkpoints=settings.async_checkpoints, prefixes=prefixes, shared_prefixes=shared_prefixes)


def prefix_context(settings: ExecSettings, device: torch.device) -> dict[str, Any]:
    """What may change the last bits of a trained state besides its protocol: a run loads only prefixes
    computed under the same (torch, device model, threads, determinism, step-loop settings)."""
    return {"torch": torch.__version__, "device": device.type, "device_name": provenance_device_name(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "deterministic": settings.deterministic, "cudnn_benchmark": cudnn_benchmark(settings),
            **settings.model_dump(include={"channels_last", "compile", "compile_update", "optimizer_impl", "eval_batch_size"})}


def provenance_device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def _run_standalone(spec: RunSpec, run: RunDir, method: type, settings: ExecSettings, started: float) -> Outcome:
    """A standalone method's run: no data, model or checkpoint; it restarts from scratch if killed."""
    with run.lock():
        try:
            configure_torch(settings)
            run.start(provenance(settings, torch.device("cpu"), spec))
            session = StandaloneSession(spec, run)
            method().run(session, method.Params.model_validate(spec.params))
            wall = time.perf_counter() - started
            run.update_provenance(wall_time_s=wall)
            run.complete(run_result(spec, session.levels, session.epochs_trained, wall, "cpu"))
        except Exception as e:  # noqa: BLE001 - a broken run must not stop the suite
            return _failed(run, f"{type(e).__name__}: {e}", traceback.format_exc(), started)
    return Outcome(spec.run_id, "complete", wall_time_s=wall)


def _failed(run: RunDir, reason: str, details: str, started: float) -> Outcome:
    """Record a run's failure; if not even that can be written, the invocation cannot go on."""
    try:
        run.fail(reason + "\n" + details)
    except OSError as e:
        raise InvocationError(f"cannot write the records of run {run.run_id} in {run.path.parent} ({reason}; "
                              f"then, writing failed.json: {e.strerror or e})") from None
    return Outcome(run.run_id, "failed", reason, time.perf_counter() - started)


def _usable_result(run: RunDir) -> bool:
    """Whether the run is complete; a corrupt result is set aside (with a warning) so the run is redone."""
    try:
        return run.checked_result() is not None
    except CorruptRecord as e:
        run.set_aside("result.json", f"{e}: the run is redone")
        return False


def _resumable_state(run: RunDir, settings: ExecSettings, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to resume from, with metrics.jsonl cut back to it; None for a fresh start (a
    checkpoint whose metric lines are gone or garbled is discarded, with a warning)."""
    state = run.load_checkpoint()
    if state is None:
        return None
    try:
        run.resume(state["metrics_count"], provenance(settings, device, run.spec))
    except CorruptRecord as e:
        log.warning("%s; the checkpoint of run %s is discarded and the run restarts", e, run.run_id)
        run.drop_checkpoints()
        return None
    return state


def run_result(spec: RunSpec, levels: list[LevelRecord], epochs: float, wall: float, device: str) -> RunResult:
    return RunResult(run_id=spec.run_id, suite=spec.suite, label=spec.label, method=spec.method, seed=spec.seed,
                     levels=levels, epochs_trained=epochs, wall_time_s=wall, device=device)


def producers_waited_for(spec: RunSpec, results: Path) -> list[str]:
    """The producers (role and run id) of ``spec`` whose records are not complete yet."""
    return [f"{role} from run {run_id}" for role, run_id in spec.producers.items()
            if RunDir.at(results, run_id).result() is None]


def run_one(spec: RunSpec, results: Path, settings: ExecSettings, data: DataCache | None = None,
            on_progress: Callable[[float], None] | None = None, should_stop: Callable[[], bool] | None = None,
            shared_prefixes: frozenset[str] = frozenset()) -> Outcome:
    """Execute (or resume, or skip) one run. Returns how it ended; never raises for a failed run.

    ``should_stop`` (asked after every optimizer step) ends the run early with a checkpoint at that
    step: the outcome is "interrupted", and running it again resumes there. ``shared_prefixes``: the
    lineage keys of this run's states that other runs of the invocation reach too (written to, or
    loaded from, ``results/prefixes``).
    """
    run = RunDir(results, spec)
    if _usable_result(run):
        return Outcome(spec.run_id, "skipped")
    waiting = producers_waited_for(spec, results)
    if waiting:
        return Outcome(spec.run_id, "blocked", "waiting for " + ", ".join(waiting))
    producers = {role: RunDir.at(results, run_id).records() for role, run_id in spec.producers.items()}
    started = time.perf_counter()
    method = get_method(spec.method)
    if method.standalone:
        return _run_standalone(spec, run, method, settings, started)
    with run.lock():
        try:
            configure_torch(settings)
            device = resolve_device(settings.device)
            prefixes = PrefixStore(results / "prefixes", prefix_context(settings, device)) if shared_prefixes else None
            session = build_session(spec, run, settings, data or DataCache(), device, on_progress, should_stop, producers,
                                    prefixes, shared_prefixes)
            state = _resumable_state(run, settings, device)
            if state is not None:
                session.load_state_dict(state)
            else:
                run.start(provenance(settings, device, spec))
            try:
                method().run(session, method.Params.model_validate(spec.params))
            finally:  # however the method ended, its last checkpoint is on disk before the lock is released
                session.wait_for_checkpoints()
            missing = session.missing_weights()
            if missing:
                raise ValueError(f"keep_weights: the run never reached {', '.join(missing)}")
            wall = time.perf_counter() - started
            run.update_provenance(wall_time_s=wall, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            run.complete(run_result(spec, session.levels, session.epochs_trained, wall, str(device)))
            run.drop_checkpoints()
        except Interrupted as e:
            return Outcome(spec.run_id, "interrupted", str(e), time.perf_counter() - started)
        except INVOCATION_FAULTS:
            raise
        except Diverged as e:
            return _failed(run, f"diverged: {e}", "", started)
        except CorruptRecord as e:
            producer = next((run_id for run_id in spec.producers.values() if e.path.parent.parent.name == run_id
                             or e.path.parent.name == run_id), None)
            if producer is None:
                return _failed(run, f"{type(e).__name__}: {e}", traceback.format_exc(), started)
            RunDir.at(results, producer).set_aside("result.json", f"{e}: the producer run is redone")
            return Outcome(spec.run_id, "blocked", f"its producer {producer} had a corrupt record (set aside): "
                           "run the command again to redo it", time.perf_counter() - started)
        except Exception as e:  # noqa: BLE001 - a broken run must not stop the suite
            return _failed(run, f"{type(e).__name__}: {e}", traceback.format_exc(), started)
    return Outcome(spec.run_id, "complete", wall_time_s=wall)
