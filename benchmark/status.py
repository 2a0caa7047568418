"""What a results directory holds: per suite, runs done / running / failed / pending, and an ETA.

"Running" means another process holds the run's lock (alive on this host, or on another host with a
recent heartbeat); a "stale lock" is one whose holder died or whose heartbeat stopped. The ETA divides
the epochs still to train by the suite's measured training speed (median seconds per epoch over its
recorded epochs) and by the number of runs now running.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from prunebench.planner import plan_training
from prunebench.spec import RunSpec
from prunebench.store import RunDir, load_resolved_suites


@dataclass(frozen=True)
class SuiteStatus:
    name: str
    counts: dict[str, int]  # complete, corrupt, running, stale lock, failed, partial, pending
    failures: list[tuple[str, str, str]]  # (failed | corrupt | stale lock, run label, reason)
    epochs_done: float
    epochs_left: float
    seconds_per_epoch: float | None

    @property
    def eta_s(self) -> float | None:
        if self.seconds_per_epoch is None or not self.epochs_left:
            return None
        return self.epochs_left * self.seconds_per_epoch / max(self.counts.get("running", 0), 1)


def run_state(run: RunDir) -> str:
    status = run.status()
    if status in ("complete", "failed", "corrupt"):
        return status
    return "running" if run.is_locked() else "stale lock" if run.stale_lock() else status


def suite_status(results: Path, name: str, specs: list[RunSpec], epochs_of: dict[str, float]) -> SuiteStatus:
    counts: dict[str, int] = {}
    failures, done, left, times = [], 0.0, 0.0, []
    for spec in specs:
        run = RunDir(results, spec)
        state = run_state(run)
        counts[state] = counts.get(state, 0) + 1
        if state == "failed":
            failures.append((state, f"{spec.label} seed {spec.seed}", ((run.failure() or {}).get("reason") or "").split("\n")[0]))
        elif state == "corrupt":
            failures.append((state, f"{spec.label} seed {spec.seed}", f"{run.corruption()} (`bench run` redoes it)"))
        elif state == "stale lock":
            failures.append((state, f"{spec.label} seed {spec.seed}", f"{run.stale_lock()} (`bench run` takes it over)"))
        epoch_rows = run.epochs() if state != "pending" else []
        trained = epoch_rows[-1].epochs_trained if epoch_rows else 0.0
        times += [m.time_s for m in epoch_rows if m.complete]
        total = epochs_of.get(spec.run_id, 0.0)
        done += total if state == "complete" else trained
        left += 0.0 if state in ("complete", "failed") else max(total - trained, 0.0)
    return SuiteStatus(name, counts, failures, done, left, statistics.median(times) if times else None)


TIMED_RUNS = 200  # runs whose epoch rows the dry run's time estimate reads, at most


def measured_seconds_per_epoch(results: Path, specs: list[RunSpec], most: int = TIMED_RUNS) -> float | None:
    """Median wall time of the complete epochs recorded for these runs (None before any), over at most
    ``most`` of the runs that recorded epochs, evenly spread in suite order: an estimate for the ETA
    (reading every row of 2,000 runs cost a 2,000-run dry run 0.35 s of its second)."""
    timed = [run for run in (RunDir(results, s) for s in specs) if (run.path / "metrics.jsonl").is_file()]
    sample = timed[::math.ceil(len(timed) / most)] if timed else []
    # the rows as written (a timing needs no validated record; a report of 2,000 runs validated 8,000 for it)
    times = [float(m["time_s"]) for run in sample for m in run.metrics()
             if m.get("kind") == "epoch" and m.get("complete") and isinstance(m.get("time_s"), (int, float))]
    return statistics.median(times) if times else None


def results_status(results: Path) -> list[SuiteStatus]:
    out = []
    for suite in load_resolved_suites(results):
        specs = suite["runs"]
        epochs = {s.run_id: plan_training(s).epochs for s in specs}
        out.append(suite_status(results, suite["name"], specs, epochs))
    return out


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no epoch timed yet)"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
