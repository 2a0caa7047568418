"""Typed specifications: what a suite may say, and the fully resolved spec of one run.

Every model forbids unknown keys, so a typo in a suite is an error rather than a silently ignored
knob. A ``RunSpec`` is fully resolved (every default written out); its protocol part, hashed,
names the run's directory, so a changed knob can never reuse a stale result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# Bump when a code change alters the results of an unchanged spec, or what its checkpoints mean (the
# operation numbers a resumed run replays to): every run id changes with it.
# 2: the iterative methods gained sign operations (set_signs, flip_signs) after every prune.
# 3: stochastic layers (dropout) draw from a generator seeded per optimizer step, so any split of a
#    level gives the numbers of one pass (before, a segment starting mid-epoch reseeded the epoch's
#    stream); a stop checkpoint no longer carries the global RNG state. No built-in model has
#    stochastic layers: their numbers are unchanged, only the ids move.
PROTOCOL_VERSION = 3


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_POINT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ep|it)\s*$")


class Point(StrictModel):
    """A position in a level's schedule, in epochs or in optimizer steps ("10ep", "500it")."""

    epoch: float | None = None
    step: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _POINT.match(value)
            if not match:
                raise ValueError(f"expected a point such as '10ep' (epochs) or '500it' (steps), got {value!r}")
            number, unit = match.groups()
            return {"epoch": float(number)} if unit == "ep" else {"step": int(float(number))}
        return value

    @model_validator(mode="after")
    def _one_unit(self) -> Point:
        if (self.epoch is None) == (self.step is None):
            raise ValueError("a point gives exactly one of epoch or step")
        if (self.epoch or 0) < 0 or (self.step or 0) < 0:
            raise ValueError("a point cannot be negative")
        return self

    def steps(self, steps_per_epoch: int) -> int:
        return self.step if self.step is not None else round(self.epoch * steps_per_epoch)

    def __str__(self) -> str:
        return f"{self.epoch:g}ep" if self.epoch is not None else f"{self.step}it"


def level_steps(point: Point | str | None, default: int, steps_per_epoch: int, total_steps: int) -> int:
    """A point of a level's schedule in optimizer steps (``default`` when None); beyond the level is an error."""
    if point is None:
        return default
    if not isinstance(point, Point):
        point = Point.model_validate(point)
    steps = point.steps(steps_per_epoch)
    if steps > total_steps:
        raise ValueError(f"point {point} lies beyond the level's {total_steps} steps ({steps_per_epoch} an epoch)")
    return steps


# --------------------------------------------------------------------------------------------- data
class AugmentSpec(StrictModel):
    crop_padding: int = Field(0, ge=0, description="random crop to the input size after zero padding (pixels)")
    hflip: bool = False
    random_resized_crop: int | None = Field(None, gt=0, description="torchvision RandomResizedCrop to this side (bilinear)")
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)


class SubsetSpec(StrictModel):
    """Per-class subsets (the first N examples of each class, in file order) for reduced suites."""

    train_per_class: int | None = Field(None, gt=0)
    test_per_class: int | None = Field(None, gt=0)


class SyntheticSpec(StrictModel):
    """Shape of the synthetic dataset (random images; for throughput and smoke tests only)."""

    channels: int = 3
    size: int = 32
    classes: int = 10
    train_size: int = 1024
    test_size: int = 256


class DataSpec(StrictModel):
    dataset: str
    resize: int | None = Field(None, gt=0, description="resize images once at load to this square side")
    channels: int | None = Field(None, description="repeat a single channel to this many (e.g. 3)")
    per_image_standardization: bool = Field(False, description="TF's per_image_standardization after crop and flip, instead of mean/std")
    mean: list[float] | None = Field(None, description="normalisation mean per channel (default: the dataset's)")
    std: list[float] | None = Field(None, description="normalisation std per channel (default: the dataset's)")
    augment: AugmentSpec = AugmentSpec()
    eval_resize: int | None = Field(None, gt=0, description="test images: bilinear resize to this side ...")
    eval_crop: int | None = Field(None, gt=0, description="... then center crop to this side (e.g. 256 then 224)")
    subset: SubsetSpec = SubsetSpec()
    label_noise: float = Field(0.0, ge=0, lt=1, description="share of the training labels replaced by another class, "
                               "drawn uniformly (symmetric noise), the same for every run: keyed by label_noise_seed")
    label_noise_seed: int = 0
    synthetic: SyntheticSpec | None = None


# -------------------------------------------------------------------------------------------- model
class ModelSpec(StrictModel):
    name: str
    init: Literal["default", "kaiming_normal_fan_out", "kaiming_normal_fan_in", "kaiming_uniform_fan_in", "tf_variance_scaling",
                  "glorot_uniform"] = "default"
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the model builder")


# -------------------------------------------------------------------------------------------- train
class OptimizerSpec(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)
    weight_decay_on: Literal["all", "weights"] = Field(
        "all", description="'all' parameters (LRR code), or only conv/linear 'weights' (no BN, no biases)"
    )
    betas: tuple[float, float] = (0.9, 0.999)


class ScheduleSpec(StrictModel):
    name: Literal["constant", "multistep", "cosine", "linear", "triangular"]
    unit: Literal["epoch", "step"] = "epoch"
    warmup_epochs: float = Field(0.0, ge=0, description="linear warmup reaching the peak lr at its end")
    min_lr: float = Field(0.0, ge=0, description="absolute floor of cosine/linear/triangular")
    milestones: list[float] = Field(default_factory=list, description="multistep: epochs (absolute) of each drop")
    gamma: float = 0.1
    start_fraction: float = Field(0.2, ge=0, le=1, description="triangular: starting lr as a fraction of the peak")
    peak_at: float = Field(0.2, gt=0, lt=1, description="triangular: fraction of the level at which lr peaks")


class TrainSpec(StrictModel):
    epochs: int = Field(gt=0, description="epochs per level (one full schedule)")
    batch_size: int = Field(gt=0)
    drop_last: bool = False
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    precision: Literal["fp32", "bf16"] = "fp32"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    eval_every_epoch: bool = False


# -------------------------------------------------------------------------------------------- prune
class PrunableSpec(StrictModel):
    """Which weights count as prunable: module types, then include/exclude globs on parameter names."""

    types: list[Literal["conv", "linear"]] = ["conv", "linear"]
    include: list[str] = ["*"]
    exclude: list[str] = Field(default_factory=list)


class PruneSpec(StrictModel):
    scorer: str = "magnitude"
    allocation: str = "global"
    prunable: PrunableSpec = PrunableSpec()


# ----------------------------------------------------------------------------------- references
Metric = Literal["top1_test_acc", "success_rate", "test_loss"]


class ReferenceNumber(StrictModel):
    """A published (or our own golden) result for one method at one sparsity, in the units of its
    ``metric``: top-1 test accuracy or success rate in percent (both read from the level records'
    ``test_accuracy``), or the test loss as it is."""

    method: str = Field(description="the suite's method label")
    sparsity: float = Field(ge=0, le=100, description="percent of prunable weights removed (the target)")
    mean: float = Field(description="the metric's value (accuracy and success rate in percent)")
    std: float | None = Field(None, ge=0)
    n: int | None = Field(None, ge=1, description="seeds behind mean and std")
    source: str = Field(min_length=1, description="paper table/figure or repository file")
    approx: bool = Field(False, description="read off a plot or derived: checked against a band only")
    variant: str = Field("", description="the sweep point, for swept methods (e.g. 'density=0.1')")
    level: int | None = Field(None, ge=0, description="the level, where several share the sparsity (golden files "
                                                     "name it; otherwise the last level at that sparsity matches)")
    metric: Metric = "top1_test_acc"


class Claim(StrictModel):
    """An assertion over results, e.g. 'lrr >= imp at sparsity >= 90' (see prunebench.references)."""

    claim: str
    source: str = Field(min_length=1)


class Tolerance(StrictModel):
    """A cell is reproduced when |ours - ref| <= k * combined standard error + abs (percentage points)."""

    k: float = Field(2.0, ge=0)
    abs: float = Field(0.5, ge=0)
    band: float = Field(2.0, ge=0, description="approximate references: within this many points")


class ClaimMargin(StrictModel):
    """How much a claim's two sides must differ to decide it: k standard errors of their difference
    (over seeds) plus ``points``. Inside the margin a claim is inconclusive; k = 0 and points = 0
    compare the means exactly."""

    k: float = Field(2.0, ge=0)
    points: float = Field(0.0, ge=0)


class ReferencesSpec(StrictModel):
    tolerance: Tolerance = Tolerance()
    numbers: list[ReferenceNumber] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    claim_margin: ClaimMargin = ClaimMargin()


class GoldenFile(StrictModel):
    """Our own results of a reduced suite, recorded by ``bench golden``: CI's regression targets."""

    provenance: dict[str, Any]
    tolerance: Tolerance = Tolerance(k=2.0, abs=1.0)
    numbers: list[ReferenceNumber]


# -------------------------------------------------------------------------------------------- suite
RESERVED_METHOD_KEYS = ("name", "label", "train", "prune", "sweep", "from", "keep_weights")
# what a run may take from another run of its suite: masks and signs of a level's end, weights it kept
PRODUCER_ROLES = ("masks", "signs", "weights")


class WeightPoint(StrictModel):
    """A point whose model state (weights, BN affine and statistics) a run keeps in RESULTS/<run>/weights/
    when its suite entry asks (``keep_weights: [{level: 0, at: 10ep}]``), for another run to start from
    (``from: {weights: LABEL}``) or for analyses: ``at`` a point of the level's schedule, or (omitted) the
    level's end, after its training and before the next prune; ``level: every`` is that point of every level."""

    level: Annotated[int, Field(ge=0)] | Literal["every"]
    at: Point | None = None

    def matches(self, level: int) -> bool:
        return self.level == "every" or self.level == level

    def file(self, level: int) -> str:
        """The file name (without .pt) of this point's state in ``level``: level_003, level_000_at_10ep."""
        return f"level_{level:03d}" + ("" if self.at is None else f"_at_{self.at}")

    def __str__(self) -> str:
        return f"level {self.level} at " + ("its end" if self.at is None else str(self.at))


def points_in(points: Sequence[WeightPoint], level: int) -> list[WeightPoint]:
    """The points of ``level``'s schedule (an ``at``) among ``points``; level ends are kept by record()."""
    return [p for p in points if p.at is not None and p.matches(level)]


class LmcSpec(StrictModel):
    """Linear mode connectivity (prunebench.landscape): the test error at ``points`` evenly spaced states
    on the line between two kept states. ``levels``: each level's end and the previous level's (for
    cyclic training, consecutive cycles); ``seeds``: one level's end in two runs that differ only in
    their seed (each seed with the next in the suite's list)."""

    between: list[Literal["levels", "seeds"]] = Field(default_factory=lambda: ["levels"], min_length=1)
    points: int = Field(11, ge=3, description="alphas 0, 1/(points-1), ..., 1")


class HessianSpec(StrictModel):
    """The training loss's Hessian at each level's end (prunebench.landscape.Curvature): its largest
    eigenvalue by power iteration (pyhessian's defaults: at most 100 products, relative tolerance 1e-3)
    and its trace by Hutchinson's estimator (the authors' quantity)."""

    batches: int = Field(1, ge=1, description="the first N training batches in file order, unaugmented, at the train "
                         "batch size (the authors' code takes one, augmented)")
    iterations: int = Field(100, ge=1)
    tol: float = Field(1e-3, ge=0)
    trace_samples: int = Field(10, ge=0, description="Rademacher probes of the trace (0: no trace)")


class AnalysesSpec(StrictModel):
    """What ``bench run`` measures after the runs, from the states they kept (``keep_weights: [{level: every}]``
    on every entry named here); never part of a run id, stored beside the records in RESULTS/<run>/analyses/."""

    methods: list[str] = Field(min_length=1, description="the labels analysed")
    lmc: LmcSpec | None = None
    hessian: HessianSpec | None = None

    @property
    def key(self) -> str:
        """What the stored analyses of a run are named by: a changed setting measures anew."""
        body = self.model_dump(mode="json", exclude={"methods"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


# Values that become part of a path: a plain file name (no separator, not "." or ".."), a run id.
def _not_dots(name: str) -> str:
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not a file name")
    return name


FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", description="a plain file name: letters, digits, _ . -"),
                     AfterValidator(_not_dots)]
RunId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class SuiteSpec(StrictModel):
    """A validated suite. Method entries stay raw here; suite.py resolves them per method."""

    name: FileName
    description: str = ""
    notes: list[str] = Field(default_factory=list, description="protocol choices and deviations, shown in reports")
    metric: str = Field("test acc", description="what the reported percentage is (e.g. 'success rate' for a toy experiment)")
    data: DataSpec | None = None  # required unless every method is standalone (does its own training)
    model: ModelSpec | None = None
    train: TrainSpec | None = None
    prune: PruneSpec = PruneSpec()
    methods: list[dict[str, Any]] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    references: ReferencesSpec = ReferencesSpec()
    analyses: AnalysesSpec | None = None
    reduced: dict[str, Any] | None = Field(None, description="overrides applied by --reduced")
    reduced_applied: bool = False

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be unique")
        return seeds


class RunSpec(StrictModel):
    """One run: one method with its parameters, one model, one dataset, one seed, one protocol."""

    suite: str
    label: str
    variant: str = ""  # the sweep point ("density=0.1"); like the label, not part of the protocol
    data: DataSpec | None  # None for a standalone method
    model: ModelSpec | None
    train: TrainSpec | None
    prune: PruneSpec | None
    method: str
    params: dict[str, Any]
    seed: int
    producers: dict[str, RunId] = Field(default_factory=dict, description="role -> run id of the run it takes masks/signs from")
    keep_weights: tuple[WeightPoint, ...] = Field((), description="points whose model state the run keeps (weights/)")
    id_params: dict[str, Any] | None = Field(None, description="the params the run id hashes: those not at their "
                                             "method's default (nested defaults left out too), found when the suite is "
                                             "expanded; None: all of ``params``")

    def protocol(self) -> dict[str, Any]:
        """Everything that changes the numbers; the suite name, label and variant name do not.

        Fields at their default are left out, the method's parameters included (``id_params``,
        recorded when the suite was expanded, so the id never depends on which plugins are
        installed), so adding a knob whose default keeps the old behaviour keeps existing run ids;
        changing a default's value requires bumping PROTOCOL_VERSION. (``params`` itself keeps every
        value, so spec.json reads whole.)"""
        body = self.model_dump(mode="json", exclude={"suite", "label", "variant", "id_params"}, exclude_defaults=True)
        body["params"] = self.params if self.id_params is None else self.id_params
        return {"protocol_version": PROTOCOL_VERSION, **body}

    @property
    def run_id(self) -> str:
        """The hash of ``protocol()``, computed once per spec (a spec is frozen) and PROTOCOL_VERSION.

        Kept in the instance ``__dict__`` beside the fields, where pydantic neither serialises nor
        compares it; ``model_copy`` drops it, since an update may change the protocol."""
        cached = self.__dict__.get("_run_id")  # no field's name: fields never start with _
        if cached is None or cached[0] != PROTOCOL_VERSION:
            canonical = json.dumps(self.protocol(), sort_keys=True, separators=(",", ":"))
            cached = (PROTOCOL_VERSION, hashlib.sha256(canonical.encode()).hexdigest()[:16])
            self.__dict__["_run_id"] = cached
        return cached[1]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> RunSpec:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_run_id", None)
        return copied


OptimizerImpl = Literal["foreach", "fused", "loop"]  # how an optimizer step runs (ExecSettings.optimizer_impl)


class ExecSettings(StrictModel):
    """How a run executes; never part of the run id (recorded in provenance instead)."""

    device: str = "auto"
    threads: int | None = Field(None, description="torch threads; None: the CPUs this process may use (prunebench.cpus)")
    threads_from: str | None = Field(None, description="why a worker got its thread count (a pool's split), for provenance")
    data_root: str | None = None
    checkpoint_every: int = Field(1, ge=0, description="checkpoint every N epochs inside a level (0: level ends only)")
    checkpoint_interval_s: float = Field(120.0, ge=0, description="...but at most once per this many seconds")
    eval_batch_size: int = 1024
    deterministic: bool = False
    # Speed knobs (benchmarks/throughput.py measures them). Each may change results in the last
    # float bits, so the default path stays the one with bitwise-reproducible numbers.
    channels_last: bool = Field(False, description="model and batches in channels_last (NHWC) memory format")
    compile: bool = Field(False, description="torch.compile the forward and loss of the train step (once per process)")
    compile_update: bool = Field(False, description="torch.compile the optimizer step and the mask multiply too (with "
                                 "``compile``: the whole step compiled; eager stays the CPU default)")
    # Step-loop settings for fast devices (benchmarks/step_ops.py counts their operators); their defaults
    # give the numbers of the plain loop bit for bit.
    optimizer_impl: OptimizerImpl = Field(
        "foreach", description="the optimizer step as one foreach call per group (bitwise equal to the per-parameter "
                               "loop for SGD, Adam and AdamW: a test checks it), a fused kernel (Adam's last bits differ), "
                               "or the loop")
    cudnn_benchmark: bool | None = Field(None, description="cuDNN autotuning; None: on unless --deterministic (CUDA only)")
    share_prefixes: bool = Field(True, description="train a state several runs of the invocation reach once (its "
                                 "lineage key, prunebench.lineage) and start the others from it: same numbers, bit for bit")
    async_checkpoints: bool = Field(True, description="checkpoints copied to host memory and written by a background "
                                    "thread while training goes on (one write in flight; awaited at a level's end)")
