"""The record schema: an epoch row, a level row and a run's result, as typed models.

Every session writes these (metrics.jsonl holds one JSON line per epoch and per level; result.json
holds the run's level rows), and report, status, golden and references read them back through these
models, so a field has one name and one meaning everywhere. Fields a method adds to its level rows
(``s.record(level, init_test_accuracy=...)``) are kept as extra fields. Fields that older records or
standalone methods lack are optional.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EpochRecord(BaseModel):
    """One epoch (or the part of one that a segment trained) of one level."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["epoch"] = "epoch"
    level: int
    epoch: int  # index in the level's schedule
    steps: int  # optimizer steps of this row
    complete: bool  # the row reached the end of its epoch
    lr: float
    train_loss: float
    train_accuracy: float
    epochs_trained: float  # cumulative over the run
    time_s: float
    train_flops: float = 0.0  # cumulative over the run
    test_accuracy: float | None = None  # with train.eval_every_epoch
    test_loss: float | None = None


class LevelRecord(BaseModel):
    """The end of one level: the network's test metrics at its sparsity, and the per-level diagnostics."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["level"] = "level"
    level: int
    target_density: float
    density: float
    sparsity: float
    test_accuracy: float  # the leaderboard's metric (a standalone method's success rate)
    test_loss: float | None = None
    epochs_trained: float  # cumulative over the run
    train_flops: float | None = None  # cumulative over the run, at each step's densities (RigL's count)
    dense_train_flops: float | None = None  # the dense model's FLOPs for the same training examples
    inference_flops: float | None = None  # one example's forward pass at this level's masks
    dense_inference_flops: float | None = None  # ... and unpruned
    kept: int | None = None
    prunable: int | None = None
    effective_density: float | None = None  # kept weights on some input-to-output path
    collapsed_layers: list[str] = Field(default_factory=list)
    wall_time_s: float | None = None
    layer_density: dict[str, float] = Field(default_factory=dict)
    sign_flips_vs_init: float | None = None
    sign_flips_vs_previous: float | None = None
    layer_sign_flips_vs_init: dict[str, float] = Field(default_factory=dict)  # per prunable tensor (empty in older records)
    layer_sign_flips_vs_previous: dict[str, float] = Field(default_factory=dict)
    mask_iou_previous: float | None = None

    def metric(self, name: str) -> float | None:
        """A reference metric of this level (see prunebench.spec.ReferenceNumber.metric)."""
        return self.test_loss if name == "test_loss" else self.test_accuracy

    def row(self) -> dict[str, Any]:
        """The JSON line of metrics.jsonl."""
        return self.model_dump(mode="json")


class FileDigest(BaseModel):
    """Size and sha256 of a record file, as result.json lists them (a changed file is corrupt)."""

    bytes: int
    sha256: str


class RunResult(BaseModel):
    """result.json: written last; its presence (with a matching run id) means the run is complete."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    suite: str
    label: str
    method: str
    seed: int
    levels: list[LevelRecord] = Field(min_length=1)
    epochs_trained: float
    wall_time_s: float
    device: str
    files: dict[str, FileDigest] = Field(default_factory=dict)  # level files (masks/, signs/): path -> digest


class LinePath(BaseModel):
    """Test error and loss at evenly spaced states on the line between two kept states (prunebench.landscape)."""

    alphas: list[float]
    errors: list[float]  # fractions
    losses: list[float]
    barrier: float  # the highest error above the mean of the two ends' (a fraction)


class LandscapeLevel(BaseModel):
    """The analyses of one level's end state (``analyses:`` of a suite)."""

    level: int
    lmc_levels: LinePath | None = None  # from the previous level's end to this one's
    lmc_seeds: LinePath | None = None  # from this run's state to the next seed's, at the same level
    hessian_top_eigenvalue: float | None = None
    hessian_products: int | None = None  # Hessian-vector products the power iteration took
    hessian_trace: float | None = None


class AnalysisRecord(BaseModel):
    """RESULTS/<run>/analyses/<key>.json: what ``bench run`` measured from a run's kept states."""

    run_id: str
    key: str  # prunebench.spec.AnalysesSpec.key of the settings below
    settings: dict[str, Any]
    partner: str | None = None  # the run id of the next seed's run (lmc between seeds)
    levels: list[LandscapeLevel]
    wall_time_s: float
    device: str


MetricsRow = EpochRecord | LevelRecord


def parse_row(row: dict[str, Any]) -> MetricsRow | None:
    """A metrics.jsonl line as its record type (None for a kind this code does not know)."""
    kind = row.get("kind")
    if kind == "epoch":
        return EpochRecord.model_validate(row)
    if kind == "level":
        return LevelRecord.model_validate(row)
    return None
