"""From run records to one suite's results: level rows, means over seeds, verdicts and claims.

A cell is one method (label and sweep variant) at one level: every numeric field of the level
records (prunebench.records.LevelRecord) averaged over seeds, the test accuracy and loss also with
their sample std and n. Runs are matched to a suite by run id, so ``bench report DIR`` needs only DIR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench.records import AnalysisRecord, LandscapeLevel, LevelRecord, RunResult
from prunebench.references import ClaimVerdict, Verdict, cells, evaluate_claim, judge_all
from prunebench.spec import AnalysesSpec, ClaimMargin, ReferencesSpec, RunSpec, Tolerance
from prunebench.store import SUITES_DIR, RunDir, load_resolved_suites, many_records, read_json

# Level-record fields averaged over seeds into every cell (a leaderboard column may show any of them).
CELL_FIELDS = ("target_density", "density", "sparsity", "test_accuracy", "test_loss", "epochs_trained", "train_flops",
               "dense_train_flops", "inference_flops", "dense_inference_flops", "effective_density")


# Every other number a level records, kept in the tidy per-run-level rows (CSV, JSON) beside CELL_FIELDS.
LEVEL_FIELDS = CELL_FIELDS + ("kept", "prunable", "wall_time_s", "sign_flips_vs_init", "sign_flips_vs_previous",
                              "mask_iou_previous")


# What the suite's analyses measured at a level (prunebench.analyses), as columns of the level rows.
LANDSCAPE_FIELDS = ("lmc_levels_barrier", "lmc_seeds_barrier", "hessian_top_eigenvalue", "hessian_trace")


def analysis_records(results: Path, specs: Sequence[RunSpec], meta: Mapping[str, Any]) -> dict[str, AnalysisRecord]:
    """Run id -> the analyses stored for it under the suite's ``analyses:`` settings (none asked: empty)."""
    if not meta.get("analyses"):
        return {}
    analyses = AnalysesSpec.model_validate(meta["analyses"])
    found = {s.run_id: RunDir(results, s).analysis(analyses.key) for s in specs if s.label in analyses.methods}
    return {run_id: record for run_id, record in found.items() if record is not None}


def _landscape(level: LandscapeLevel | None) -> dict[str, float]:
    if level is None:
        return {}
    values = {"lmc_levels_barrier": level.lmc_levels and level.lmc_levels.barrier,
              "lmc_seeds_barrier": level.lmc_seeds and level.lmc_seeds.barrier,
              "hessian_top_eigenvalue": level.hessian_top_eigenvalue, "hessian_trace": level.hessian_trace}
    return {k: math.nan if v is None else float(v) for k, v in values.items()}


def level_rows(results: Path, specs: Sequence[RunSpec], read: Mapping[str, RunResult | None] | None = None,
               analysed: Mapping[str, AnalysisRecord] | None = None) -> pd.DataFrame:
    """One row per (run, level) of the complete runs among ``specs``: the run's keys, then every number
    of its level record in the record's units (fractions, not percent), the range of its layer densities
    and how many layers collapsed, and where the suite's analyses measured the run, LANDSCAPE_FIELDS.
    The tidy table of a suite: the CSV and the JSON report write it whole. ``read``: the runs' results
    by run id (None: not complete), where the caller has read them already; ``analysed``: analysis_records()."""
    rows = []
    analysed = analysed or {}
    for order, spec in enumerate(specs):
        run_id = spec.run_id
        result = read[run_id] if read is not None else RunDir(results, spec).result()
        if result is None:
            continue
        keys = {"order": order, "label": spec.label, "variant": spec.variant, "method": spec.method, "seed": spec.seed,
                "run_id": run_id}
        landscape = {row.level: row for row in analysed[run_id].levels} if run_id in analysed else {}
        rows += [{**keys, "level": level.level, **_numbers(level), **_landscape(landscape.get(level.level))} for level in result.levels]
    return pd.DataFrame(rows)


def _numbers(level: LevelRecord) -> dict[str, float]:
    layers = list(level.layer_density.values())
    return {**{name: math.nan if getattr(level, name) is None else float(getattr(level, name)) for name in LEVEL_FIELDS},
            "layer_density_min": min(layers, default=math.nan), "layer_density_max": max(layers, default=math.nan),
            "collapsed_layers": float(len(level.collapsed_layers))}


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (label, variant, level), in suite order: the mean of every CELL_FIELDS column over seeds,
    the sample std (ddof=1) of accuracy and loss, n, and the seeds with their accuracies."""
    if rows.empty:
        return rows
    grouped = rows.groupby(["label", "variant", "level"], sort=False)
    out = grouped.agg(
        order=("order", "min"),
        method=("method", "first"),
        **{name: (name, "mean") for name in CELL_FIELDS},
        accuracy_std=("test_accuracy", "std"),
        loss_std=("test_loss", "std"),
        n=("test_accuracy", "size"),
        seeds=("seed", list),
        accuracies=("test_accuracy", list),
    ).reset_index()
    out = out.rename(columns={"test_accuracy": "accuracy_mean", "test_loss": "loss_mean"})
    out["target_sparsity"] = 1.0 - out["target_density"]
    return out.sort_values(["order", "level"]).drop(columns="order").reset_index(drop=True)


@dataclass
class SuiteResults:
    """Everything a report shows about one suite, computed once from the records."""

    name: str
    specs: list[RunSpec]
    meta: dict[str, Any]
    table: pd.DataFrame  # aggregate()
    statuses: dict[str, str]  # run id -> status
    verdicts: list[Verdict] = field(default_factory=list)
    claims: list[ClaimVerdict] = field(default_factory=list)
    tolerance: Tolerance = field(default_factory=Tolerance)  # the one the verdicts applied
    claim_margin: ClaimMargin = field(default_factory=ClaimMargin)  # the one the claims applied
    failures: dict[str, str] = field(default_factory=dict)  # run id -> first line of the reason (failed or corrupt)
    provenance: str = ""
    levels: pd.DataFrame = field(default_factory=pd.DataFrame)  # level_rows(): one row per run and level
    run_results: dict[str, RunResult] = field(default_factory=dict)  # run id -> its result.json (complete runs), read once
    analyses: dict[str, AnalysisRecord] = field(default_factory=dict)  # run id -> what the suite's analyses measured
    results: Path | None = None  # the directory of the records (figures that read the epoch rows)

    @property
    def counts(self) -> dict[str, int]:
        values = list(self.statuses.values())
        return {k: values.count(k) for k in ("complete", "corrupt", "failed", "partial", "pending") if values.count(k)}

    @property
    def has_landscape(self) -> bool:
        """Whether the level rows hold what the suite's analyses measured (LANDSCAPE_FIELDS)."""
        levels = self.levels
        return not levels.empty and set(LANDSCAPE_FIELDS) <= set(levels) and not levels[list(LANDSCAPE_FIELDS)].isna().all().all()

    @property
    def metric(self) -> str:
        """What the percentages are: test accuracy, unless the suite says otherwise."""
        return self.meta.get("metric") or "test acc"

    def dense(self, column: str = "accuracy_mean") -> float | None:
        """The dense baseline's value of a cell column (None without a dense run)."""
        dense = self.table[self.table["method"] == "dense"] if not self.table.empty else self.table
        return None if dense.empty else float(dense[column].iloc[0])

    @property
    def dense_accuracy(self) -> float | None:
        return self.dense("accuracy_mean")


def collect(results: Path, name: str, specs: Sequence[RunSpec], meta: dict[str, Any] | None = None,
            references: ReferencesSpec | None = None) -> SuiteResults:
    with many_records():
        return _collect(results, name, specs, meta, references)


def _collect(results: Path, name: str, specs: Sequence[RunSpec], meta: dict[str, Any] | None,
             references: ReferencesSpec | None) -> SuiteResults:
    meta = meta or {}
    references = references or ReferencesSpec.model_validate(meta.get("references") or {})
    runs = {s.run_id: RunDir(results, s) for s in specs}
    read = {run_id: run.result() for run_id, run in runs.items()}  # each result.json read once
    analysed = analysis_records(results, specs, meta)
    levels = level_rows(results, specs, read, analysed)
    table = aggregate(levels)
    statuses = {run_id: "complete" if read[run_id] is not None else run.status() for run_id, run in runs.items()}
    failures = {run_id: ((runs[run_id].failure() or {}).get("reason") or "").split("\n")[0]
                for run_id, status in statuses.items() if status == "failed"}
    failures |= {run_id: f"corrupt record {runs[run_id].corruption()}" for run_id, status in statuses.items() if status == "corrupt"}
    return SuiteResults(
        name=name, specs=list(specs), meta=meta, table=table, statuses=statuses,
        verdicts=judge_all(references.numbers, table, references.tolerance),
        claims=[evaluate_claim(c, cells(table), references.claim_margin) for c in references.claims],
        tolerance=references.tolerance,
        claim_margin=references.claim_margin,
        failures=failures,
        provenance=provenance_line([runs[s.run_id] for s in specs if statuses[s.run_id] == "complete"]),
        levels=levels.drop(columns="order") if not levels.empty else levels,
        run_results={run_id: result for run_id, result in read.items() if result is not None},
        analyses=analysed,
        results=Path(results),
    )


def suites_in(results: Path) -> list[SuiteResults]:
    """Every suite recorded in a results directory, from its resolved suite and run records."""
    with many_records():
        suites = load_resolved_suites(results)
        if not suites:
            raise FileNotFoundError(f"{results}: no resolved suites under {Path(results) / SUITES_DIR} "
                                    f"(run `bench run` with --results {results})")
        return [collect(results, suite["name"], suite["runs"], suite) for suite in suites]


def _kernels(record: Mapping[str, Any]) -> str:
    """The CPU kernels torch used (AVX2, AVX512, ...), for CPU runs that recorded them."""
    capability = (record.get("cpu") or {}).get("torch_capability")
    return f", {capability} kernels" if capability and str(record.get("device", "")).startswith("cpu") else ""


def provenance_line(runs: Sequence[RunDir]) -> str:
    """Where the numbers came from, read from the runs' provenance records."""
    records = [read_json(run.path / "provenance.json") or {} for run in runs]
    if not records:
        return ""
    commits = sorted({(r.get("git") or {}).get("commit") or "unknown" for r in records})
    dirty = any((r.get("git") or {}).get("dirty") for r in records)
    devices = sorted({f"{r.get('device', '?')} ({r.get('device_name', '?')}{_kernels(r)}, torch threads: {r.get('torch_threads', '?')})"
                      for r in records})
    torch_versions = sorted({(r.get("packages") or {}).get("torch") or "?" for r in records})
    wall = sum(r.get("wall_time_s", 0.0) for r in records)
    code = ", ".join(c[:12] for c in commits) + (" (with uncommitted changes)" if dirty else "")
    return (f"_Provenance: {len(records)} runs on {'; '.join(devices)}, torch {', '.join(torch_versions)}, "
            f"code {code}; {wall / 60:.1f} min of run wall time._\n")
