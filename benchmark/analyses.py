"""The analyses a suite asks for (``analyses:``), measured after its runs from the states they kept.

For every complete run of an analysed label (each keeps ``{level: every}``), and every level it
recorded: linear mode connectivity from the previous level's end (consecutive cycles, for cyclic
training) and to the next seed's run at the same level, and the curvature of the training loss
(prunebench.landscape). A run's analyses are written at once to RESULTS/<run>/analyses/<key>.json,
``key`` naming the settings: a run whose file is there is skipped, a changed setting is measured
anew, and a run (or its next seed's) that is not complete yet waits for the next ``bench run``.
Nothing here changes a run's records, and the analyses are not part of any run id.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prunebench.data import DataCache
from prunebench.landscape import Curvature, error_barrier, linear_path
from prunebench.messages import LOGGER
from prunebench.records import AnalysisRecord, LandscapeLevel, LinePath
from prunebench.runner import build_trainer, configure_torch, provenance_device_name, resolve_device
from prunebench.seeds import derive_seed
from prunebench.spec import AnalysesSpec, ExecSettings, RunSpec, WeightPoint
from prunebench.store import CorruptRecord, RunDir, RunRecords
from prunebench.train import Trainer

log = logging.getLogger(LOGGER)


@dataclass(frozen=True)
class AnalysisTask:
    spec: RunSpec
    partner: RunSpec | None  # the next seed's run of the same entry and sweep point (lmc between seeds)


def analysis_tasks(specs: Sequence[RunSpec], analyses: AnalysesSpec) -> list[AnalysisTask]:
    """The analysed runs in suite order, each with the next seed's run when seeds are compared."""
    seeds = analyses.lmc is not None and "seeds" in analyses.lmc.between
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for spec in specs:
        if spec.label in analyses.methods:
            groups.setdefault((spec.label, spec.variant), []).append(spec)
    return [AnalysisTask(spec, group[i + 1] if seeds and i + 1 < len(group) else None)
            for group in groups.values() for i, spec in enumerate(group)]


def pending(specs: Sequence[RunSpec], analyses: AnalysesSpec | None, results: Path) -> list[AnalysisTask]:
    """The tasks whose analyses are not stored yet."""
    if analyses is None:
        return []
    return [t for t in analysis_tasks(specs, analyses) if RunDir(results, t.spec).analysis(analyses.key) is None]


def analyse_suite(specs: Sequence[RunSpec], analyses: AnalysesSpec | None, results: Path, settings: ExecSettings,
                  data: DataCache | None = None) -> tuple[int, int, int]:
    """Measure what is not stored yet: (runs analysed, runs waiting for their records or their next seed's,
    runs whose analyses failed: a warning each says why, and the next ``bench run`` tries again)."""
    tasks = pending(specs, analyses, Path(results))
    if not tasks:
        return 0, 0, 0
    configure_torch(settings)
    device, data = resolve_device(settings.device), data or DataCache()
    done = waiting = failed = 0
    for task in tasks:
        run, partner = RunDir(results, task.spec), RunDir(results, task.partner) if task.partner else None
        result = run.result()
        if result is None or (partner is not None and partner.result() is None):
            waiting += 1
            continue
        try:
            record = analyse_run(task, [row.level for row in result.levels], RunRecords(run.path, result.files),
                                 partner.records() if partner is not None else None, analyses, settings, data, device)
        except (CorruptRecord, FileNotFoundError) as e:
            log.warning("%s seed %d: not analysed: %s", task.spec.label, task.spec.seed, e)
            waiting += 1
            continue
        except Exception as e:  # noqa: BLE001 - an analysis that breaks fails alone; the records stay as they are
            log.warning("%s seed %d: analyses failed: %s: %s", task.spec.label, task.spec.seed, type(e).__name__, e)
            failed += 1
            continue
        run.save_analysis(record)
        done += 1
    return done, waiting, failed


def analyse_run(task: AnalysisTask, levels: list[int], records: RunRecords, theirs: RunRecords | None, analyses: AnalysesSpec,
                settings: ExecSettings, data: DataCache, device: torch.device) -> AnalysisRecord:
    """The analyses of one run's ``levels``, from its records (``theirs``: the next seed's run's)."""
    started = time.perf_counter()
    spec = task.spec
    trainer, _, _ = build_trainer(spec, settings, data, device)
    rows, previous = [], None
    for level in levels:
        state = records.weights(WeightPoint(level=level))
        row = LandscapeLevel(level=level)
        if analyses.lmc is not None:
            points = analyses.lmc.points
            if "levels" in analyses.lmc.between and previous is not None:
                row.lmc_levels = _line(trainer, previous, state, points)
            if theirs is not None:
                row.lmc_seeds = _line(trainer, state, theirs.weights(WeightPoint(level=level)), points)
        if analyses.hessian is not None:
            h = analyses.hessian
            trainer.model.load_state_dict(state)
            batches = list(itertools.islice(trainer.train_loader.in_order(spec.train.batch_size), h.batches))
            curvature = Curvature(trainer.model, records.masks(level), batches)
            g = torch.Generator().manual_seed(derive_seed(spec.seed, "hessian", level))
            row.hessian_top_eigenvalue, row.hessian_products = curvature.top_eigenvalue(h.iterations, g, h.tol)
            row.hessian_trace = curvature.trace(h.trace_samples, g) if h.trace_samples else None
        rows.append(row)
        previous = state
        log.info("%s seed %d level %d analysed", spec.label, spec.seed, level)
    return AnalysisRecord(run_id=spec.run_id, key=analyses.key, settings=analyses.model_dump(mode="json", exclude={"methods"}),
                          partner=task.partner.run_id if task.partner else None, levels=rows,
                          wall_time_s=time.perf_counter() - started, device=provenance_device_name(device))


def _line(trainer: Trainer, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], points: int) -> LinePath:
    path = linear_path(trainer.model, a, b, trainer.evaluate, points)
    errors = [1 - p["accuracy"] for p in path]
    return LinePath(alphas=[p["alpha"] for p in path], errors=errors, losses=[p["loss"] for p in path], barrier=error_barrier(errors))

