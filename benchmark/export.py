"""Run records to an experiment tracker: ``bench export DIR --to tensorboard|wandb|mlflow``.

Through the records, never inside the training loop: a tracker is optional (an extra: ``pip install
'prunebench[trackers]'``), off by default, and what it shows is what ``bench report`` reads. Every
complete run becomes one tracker run, named ``<label> seed <seed>`` in a group or experiment named
after its suite, with its resolved RunSpec as config and its records as metrics:

- an epoch row at the run's cumulative optimizer step where it ended: ``train/loss``,
  ``train/accuracy``, ``train/lr``, ``train/epochs``, ``train/flops`` (and ``test/accuracy``,
  ``test/loss`` where the suite evaluates every epoch);
- a level row at the step where its level ended: ``level/<field>`` for every number of the level
  record (``level/test_accuracy``, ``level/density``, ``level/sign_flips_vs_init``, ...).

Exporting again replaces a run's earlier export (same run id), so a results directory can be
re-exported as runs complete. W&B writes offline runs (``wandb sync OUT/wandb/offline-run-*`` uploads
them); MLflow writes to its file store under OUT unless ``--uri`` names another tracking URI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunebench.store import RunDir, load_resolved_suites

# tracker -> (the module it needs, the distribution that has it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow-skinny")}
LEVEL_SKIPPED = {"kind", "level", "layer_density", "collapsed_layers"}


class TrackerMissing(RuntimeError):
    """The tracker's library is not installed."""


@dataclass
class TrackedRun:
    """One run as a tracker sees it: names, config and (step, metrics) points in step order."""

    suite: str
    run_id: str
    name: str
    config: dict[str, Any]
    points: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def tracked_runs(results: Path) -> Iterator[TrackedRun]:
    """Every complete run of every suite recorded in ``results``."""
    for suite in load_resolved_suites(results):
        for spec in suite["runs"]:
            run = RunDir(results, spec)
            result = run.result()
            if result is None:
                continue
            tracked = TrackedRun(suite["name"], spec.run_id, f"{spec.label} seed {spec.seed}", spec.model_dump(mode="json"))
            step, level_end = 0, {}
            for row in run.epochs():
                step += row.steps
                level_end[row.level] = step
                metrics = {"train/loss": row.train_loss, "train/accuracy": row.train_accuracy, "train/lr": row.lr,
                           "train/epochs": row.epochs_trained, "train/flops": row.train_flops}
                if row.test_accuracy is not None:
                    metrics |= {"test/accuracy": row.test_accuracy, "test/loss": row.test_loss}
                tracked.points.append((step, metrics))
            for level in result.levels:  # a level that trained nothing (a one-shot prune) ends where the last one did
                at = level_end.get(level.level, max((s for k, s in level_end.items() if k < level.level), default=0))
                numbers = {f"level/{k}": float(v) for k, v in level.model_dump().items()
                           if k not in LEVEL_SKIPPED and isinstance(v, (int, float)) and not isinstance(v, bool)}
                tracked.points.append((at, numbers | {"level/level": float(level.level)}))
            tracked.points = _merged(tracked.points)
            yield tracked


def _merged(points: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
    """One point per step (a level's row joins its last epoch's), steps increasing, no NaN."""
    by_step: dict[int, dict[str, float]] = {}
    for step, metrics in points:
        by_step.setdefault(step, {}).update({k: v for k, v in metrics.items() if v is not None and not math.isnan(v)})
    return sorted(by_step.items())


def export(results: Path, tracker: str, out: Path, project: str = "prunebench", uri: str | None = None) -> int:
    """Export every complete run of ``results`` to ``tracker`` under ``out``; returns how many."""
    import importlib.util

    module, distribution = TRACKERS[tracker]
    if importlib.util.find_spec(module) is None:
        raise TrackerMissing(f"--to {tracker} needs the {distribution} package: pip install '{distribution}' "
                             f"(or prunebench[trackers])")
    writer = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}[tracker]
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for run in tracked_runs(results):
        writer(run, out, project=project, uri=uri)
        count += 1
    return count


def _tensorboard(run: TrackedRun, out: Path, **_: Any) -> None:
    """Event files under OUT/<suite>/<label>_seed<seed>_<run id> (``tensorboard --logdir OUT``)."""
    from torch.utils.tensorboard import SummaryWriter

    logdir = out / run.suite / f"{run.name.replace(' ', '_')}_{run.run_id}"
    shutil.rmtree(logdir, ignore_errors=True)
    with contextlib.closing(SummaryWriter(str(logdir))) as writer:
        writer.add_text("spec", f"```json\n{json.dumps(run.config, indent=1)}\n```", 0)
        for step, metrics in run.points:
            for key, value in metrics.items():
                writer.add_scalar(key, value, step)


def _wandb(run: TrackedRun, out: Path, project: str, **_: Any) -> None:
    """An offline W&B run per record and suite in OUT/wandb/ (id: the run id and a hash of the suite name,
    group: the suite)."""
    import wandb

    # One W&B run per (suite, run): a run that two suites share (or a suite and its --set variant) is in both groups.
    run_key = f"{run.run_id}-{hashlib.sha256(run.suite.encode()).hexdigest()[:6]}"
    for old in (out / "wandb").glob(f"offline-run-*-{run_key}"):  # an earlier export of this run
        shutil.rmtree(old, ignore_errors=True)
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True)
    tracked = wandb.init(project=project, dir=str(out), mode="offline", id=run_key, name=run.name, group=run.suite,
                         config=run.config, settings=settings, reinit="create_new")
    try:
        for step, metrics in run.points:
            tracked.log(metrics, step=step)
    finally:
        tracked.finish()


def _mlflow(run: TrackedRun, out: Path, uri: str | None = None, **_: Any) -> None:
    """An MLflow run per record in the experiment named after the suite (tag prunebench.run_id)."""
    uri = uri or out.resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store in maintenance mode
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(run.suite)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(run.suite)
    for old in client.search_runs([experiment_id], f"tags.`prunebench.run_id` = '{run.run_id}'"):
        client.delete_run(old.info.run_id)
    created = client.create_run(experiment_id, run_name=run.name, tags={"prunebench.run_id": run.run_id, "suite": run.suite})
    now = int(time.time() * 1000)
    params = [Param(k, str(v)[:500]) for k, v in _flat(run.config).items()]
    metrics = [Metric(k, v, now, step) for step, values in run.points for k, v in values.items()]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params and 1,000 metrics a batch
        client.log_batch(created.info.run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(created.info.run_id, metrics=metrics[i:i + 1000])
    client.set_terminated(created.info.run_id)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
