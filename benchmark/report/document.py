"""The report as data: what ``bench report --json`` prints and ``-o`` writes as <suite>.json.

The schema is these models (``Report.model_json_schema()`` gives it as JSON Schema), described field
by field in docs/report-json.md. Percentages are in percent where a field's name ends in ``_pct``;
every other number is in the level records' own units (fractions, FLOPs, seconds). The version in
``schema`` changes whenever a field changes meaning or goes away; new fields may be added without it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prunebench.report.aggregate import SuiteResults
from prunebench.report.tables import leaderboard_rows

SCHEMA = "prunebench.report/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunEntry(_Strict):
    """One run of the suite and what state its records are in."""

    run_id: str
    label: str = Field(description="the suite's method label")
    variant: str = Field(description="the sweep point ('' for an unswept method)")
    method: str = Field(description="the registered method the label runs")
    seed: int
    status: Literal["complete", "corrupt", "failed", "partial", "pending"]
    reason: str | None = Field(None, description="why it failed or is corrupt (first line)")


class Cell(_Strict):
    """One leaderboard row: a method (label and variant) at one level, over its seeds."""

    method: str
    variant: str
    level: int
    target_sparsity_pct: float
    sparsity_pct: float
    weights_remaining_pct: float
    accuracy_mean_pct: float = Field(description="the suite's metric (test accuracy, or a success rate), mean over seeds")
    accuracy_std_pct: float | None = Field(description="sample std over seeds (None with one seed)")
    n: int = Field(description="seeds behind the cell")
    n_expected: int = Field(description="seeds the suite plans for the cell")
    delta_vs_dense: float | None = Field(description="points above the dense baseline")
    reference_mean_pct: float | None
    reference_std_pct: float | None
    reference_n: int | None
    reference_approx: bool | None
    delta_vs_reference: float | None
    verdict: str = Field(description="'; '-joined verdicts of the references matched to this cell ('' for none)")
    epochs_trained: float
    loss_mean: float | None
    train_flops: float | None
    train_flops_x_dense: float | None
    inference_flops: float | None
    inference_flops_x_dense: float | None
    seeds: list[int]
    accuracies_pct: list[float]


class LevelEntry(_Strict):
    """One level of one run, as its record holds it: the tidy row (the CSV has the same columns)."""

    label: str
    variant: str
    method: str
    seed: int
    run_id: str
    level: int
    target_density: float
    density: float
    sparsity: float
    test_accuracy: float
    test_loss: float | None
    epochs_trained: float
    train_flops: float | None
    dense_train_flops: float | None
    inference_flops: float | None
    dense_inference_flops: float | None
    effective_density: float | None
    kept: float | None
    prunable: float | None
    wall_time_s: float | None
    sign_flips_vs_init: float | None
    sign_flips_vs_previous: float | None
    mask_iou_previous: float | None
    layer_density_min: float | None
    layer_density_max: float | None
    collapsed_layers: float
    # what the suite's ``analyses:`` measured (absent in suites without analyses)
    lmc_levels_barrier: float | None = None
    lmc_seeds_barrier: float | None = None
    hessian_top_eigenvalue: float | None = None
    hessian_trace: float | None = None


class VerdictEntry(_Strict):
    """A reference number against our cell of it."""

    method: str
    variant: str
    sparsity: float = Field(description="the reference's target sparsity, percent")
    level: int | None
    metric: str
    reference_mean: float
    reference_std: float | None
    reference_n: int | None
    approx: bool
    source: str
    verdict: Literal["reproduced", "deviates", "in band", "out of band", "not run"]
    ours_mean: float | None
    ours_std: float | None
    ours_n: int
    delta: float | None = Field(description="ours - reference, points")
    allowed: float | None = Field(description="the largest |delta| that counts as reproduced (or in band)")


class ClaimEntry(_Strict):
    claim: str
    source: str
    verdict: Literal["holds", "fails", "inconclusive", "not run", "invalid"]
    detail: str


class OverlapEntry(_Strict):
    """Mask IoU between two methods at one level (same sweep point and seed), mean over seeds."""

    a: str
    b: str
    variant: str
    level: int
    iou: float
    seeds: int


class SuiteReport(_Strict):
    name: str
    description: str
    dataset: str | None
    model: str | None
    epochs_per_level: float | None
    reduced: bool
    metric: str
    counts: dict[str, int] = Field(description="runs per status")
    provenance: str
    runs: list[RunEntry]
    leaderboard: list[Cell]
    levels: list[LevelEntry]
    verdicts: list[VerdictEntry]
    claims: list[ClaimEntry]
    mask_overlap: list[OverlapEntry] = Field(description="with --diagnostics only (it reads every level's masks)")


class Report(_Strict):
    schema_: Literal["prunebench.report/1"] = Field(SCHEMA, alias="schema")
    suites: list[SuiteReport]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None (JSON has no NaN)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def suite_report(sr: SuiteResults, overlap: pd.DataFrame | None = None) -> SuiteReport:
    spec = sr.specs[0] if sr.specs else None
    runs = [RunEntry(run_id=s.run_id, label=s.label, variant=s.variant, method=s.method, seed=s.seed,
                     status=sr.statuses.get(s.run_id, "pending"), reason=sr.failures.get(s.run_id)) for s in sr.specs]
    verdicts = [VerdictEntry(method=v.reference.method, variant=v.reference.variant, sparsity=v.reference.sparsity,
                             level=v.reference.level, metric=v.reference.metric, reference_mean=v.reference.mean,
                             reference_std=v.reference.std, reference_n=v.reference.n, approx=v.reference.approx,
                             source=v.reference.source, verdict=v.verdict, ours_mean=v.ours_mean, ours_std=v.ours_std,
                             ours_n=v.ours_n, delta=v.delta, allowed=v.allowed) for v in sr.verdicts]
    overlap_rows = [] if overlap is None or overlap.empty else [
        OverlapEntry(a=r.a, b=r.b, variant=r.variant, level=int(r.level), iou=float(r.mean), seeds=int(r.size))
        for r in overlap.itertuples()]
    return SuiteReport(
        name=sr.name, description=(sr.meta.get("description") or "").strip(),
        dataset=spec.data.dataset if spec is not None and spec.data is not None else None,
        model=spec.model.name if spec is not None and spec.model is not None else None,  # a standalone method has none
        epochs_per_level=spec.train.epochs if spec is not None and spec.train is not None else None,
        reduced=bool(sr.meta.get("reduced")), metric=sr.metric, counts=sr.counts, provenance=sr.provenance.strip().strip("_"),
        runs=runs, leaderboard=[Cell(**_clean(r)) for r in leaderboard_rows(sr)],
        levels=[LevelEntry(**_clean(r)) for r in sr.levels.to_dict("records")] if not sr.levels.empty else [],
        verdicts=verdicts, claims=[ClaimEntry(claim=c.claim.claim, source=c.claim.source, verdict=c.verdict, detail=c.detail)
                                   for c in sr.claims],
        mask_overlap=overlap_rows,
    )


def report_json(suites: list[SuiteReport]) -> str:
    return Report(suites=suites).model_dump_json(by_alias=True, indent=1) + "\n"
