"""The pruning API: Method, Scorer, Session, and their registries.

A method is a short script over a Session and reads like the paper's pseudocode::

    @register_method("lrr")
    class LRR(Method):
        class Params(MethodParams):
            levels: int = 5
            fraction: float = 0.2
        def run(self, s: Session, p: Params) -> None:
            s.train()
            s.record(0)
            for level in range(1, p.levels + 1):
                s.prune(s.score("magnitude"), remove=p.fraction)
                s.train()
                s.record(level)

The Session owns the model, masks, optimizer, data, randomness, snapshots and the run's records;
a method never touches files or devices. Every Session call is an *operation* with a sequence
number. A checkpoint stores the full state and the number of the next operation (and, inside a
``train``, the step reached), so an interrupted run replays the method script from the top,
skipping finished operations instantly, and continues with bit-identical results. This requires
what every method already is: a deterministic script whose control flow depends only on its
parameters and on values the Session returned (those are journaled and replayed).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from prunebench.connectivity import effective_density
from prunebench.diagnostics import forward_flops, layer_macs, mask_iou, negative, sign_flip_fraction
from prunebench.masks import Masks, Scores, allocate, full_masks, mask_stats, pack
from prunebench.models.init import NORM_LAYERS
from prunebench.spec import Point, RunSpec
from prunebench.store import RunRecords
from prunebench.train import EpochStats, PartialEpoch, Trainer

Restorable = Literal["weights", "bn_affine", "bn_stats", "optimizer", "data_order"]
SignSource = Literal["keep", "init", "producer"]
RESTORABLE: tuple[str, ...] = ("weights", "bn_affine", "bn_stats", "optimizer", "data_order")


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts: independent streams for init, data order, scorers, ..."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# ------------------------------------------------------------------------------------ registries
class UnknownName(LookupError):
    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known)}.{hint}")


class MethodParams(BaseModel):
    """Base of a method's typed parameters; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Method:
    """A pruning method. Subclasses set ``Params`` and implement ``run``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    prunes: ClassVar[bool] = True  # needs a non-empty prunable set
    standalone: ClassVar[bool] = False  # trains its own toy model: gets a StandaloneSession, no data/model/train

    def run(self, s: Session, p: Any) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class ScoreContext:
    """What a scorer may read. Scorers return a score per prunable tensor; higher means keep."""

    model: nn.Module
    params: Mapping[str, nn.Parameter]
    masks: Masks
    batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # n examples -> batches
    generator: torch.Generator
    num_classes: int
    level: int = 0  # the level the scores will prune for
    producers: Mapping[str, RunRecords] = field(default_factory=dict)  # role -> another run's records


Scorer = Callable[..., Scores]  # (ctx: ScoreContext, **options) -> Scores

_METHODS: dict[str, type[Method]] = {}
_SCORERS: dict[str, Scorer] = {}
_PLUGINS_LOADED: list[bool] = []


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        _METHODS[name] = cls
        return cls

    return deco


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    def deco(fn: Scorer) -> Scorer:
        _SCORERS[name] = fn
        return fn

    return deco


def _load_plugins() -> None:
    """Import the built-in methods and scorers, then third-party ``prunebench.methods`` entry points."""
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED.append(True)
    importlib.import_module("prunebench.scorers")
    importlib.import_module("prunebench.methods")
    for ep in entry_points(group="prunebench.methods"):
        ep.load()


def method_names() -> list[str]:
    _load_plugins()
    return sorted(_METHODS)


def scorer_names() -> list[str]:
    _load_plugins()
    return sorted(_SCORERS)


def get_method(name: str) -> type[Method]:
    _load_plugins()
    if name not in _METHODS:
        raise UnknownName("method", name, method_names())
    return _METHODS[name]


def get_scorer(name: str) -> Scorer:
    _load_plugins()
    if name not in _SCORERS:
        raise UnknownName("scorer", name, scorer_names())
    return _SCORERS[name]


# --------------------------------------------------------------------------------------- session
class Recorder(Protocol):
    """Where a Session writes its records (prunebench.store.RunDir implements it)."""

    def append_metrics(self, row: dict[str, Any]) -> None: ...
    def save_masks(self, level: int, packed: dict[str, Any]) -> None: ...
    def save_signs(self, level: int, packed: dict[str, Any]) -> None: ...
    def records(self) -> RunRecords: ...
    def save_checkpoint(self, state: dict[str, Any]) -> None: ...
    def metrics_count(self) -> int: ...


@dataclass
class Resume:
    """Where a replayed script picks up: the operation number and, inside a train, the step (and the
    epoch a stop request cut short, to be finished)."""

    op: int
    step: int | None = None
    partial: dict[str, Any] | None = None


class Interrupted(Exception):
    """Training stopped on request (a signal) after writing a checkpoint; running again resumes it."""


class Session:
    def __init__(
        self,
        spec: RunSpec,
        trainer: Trainer,
        prunable: dict[str, nn.Parameter],
        recorder: Recorder,
        *,
        num_classes: int,
        checkpoint_every: int = 1,
        checkpoint_interval_s: float = 0.0,
        on_epoch: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        producers: Mapping[str, RunRecords] | None = None,
    ) -> None:
        self.spec = spec
        self.trainer = trainer
        self.model = trainer.model
        self.prunable = prunable
        self.recorder = recorder
        self.num_classes = num_classes
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.on_epoch = on_epoch or (lambda epochs: None)
        self.should_stop = should_stop
        self.producers = dict(producers or {})
        self.masks: Masks = full_masks(prunable)
        self._init_signs = negative(prunable)  # the seed's initialisation: a resumed session rebuilds the same
        self._macs = layer_macs(self.model, trainer.train_loader.sample_shape)
        self.train_flops = 0.0
        self.target_density = 1.0
        self.level = 0  # the level being trained: number of record() calls so far
        self.data_level = 0  # which level's data order the next epochs use
        self.steps_trained = 0
        self.levels: list[dict[str, Any]] = []  # the per-level rows of the result
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._journal: dict[int, Any] = {}
        self._next_op = 0
        self._resume: Resume | None = None
        self._started = self._last_checkpoint = time.perf_counter()

    # ---- positions
    @property
    def steps_per_epoch(self) -> int:
        return self.trainer.steps_per_epoch

    def steps(self, point: Point | str | None, default: int) -> int:
        if point is None:
            return default
        point = Point.model_validate(point)
        steps = point.steps(self.steps_per_epoch)
        if steps > self.trainer.total_steps:
            raise ValueError(f"point {point} lies beyond the level's {self.spec.train.epochs} epochs")
        return steps

    # ---- operation bookkeeping (replay after a resume)
    def _op(self) -> tuple[int, bool]:
        """(this operation's number, whether it must run) and advance the counter."""
        op = self._next_op
        self._next_op += 1
        return op, self._resume is None or op >= self._resume.op

    # ---- training
    def train(self, start: Point | str | None = None, stop: Point | str | None = None) -> None:
        """Train steps [start, stop) of the level's schedule (default: the whole schedule)."""
        op, run = self._op()
        if not run:
            return
        first = self.steps(start, 0)
        last = self.steps(stop, self.trainer.total_steps)
        carry = None
        if self._resume is not None and self._resume.op == op:
            first = self._resume.step
            carry = PartialEpoch(**self._resume.partial) if self._resume.partial else None
        self._resume = None

        def epoch_key(epoch: int) -> int:
            return derive_seed(self.spec.seed, "data", self.data_level, epoch)

        flops_per_example = 3 * forward_flops(self._macs, self.masks)  # forward + backward (~2x forward)

        def on_epoch(stats: EpochStats) -> None:
            steps = stats.last_step - stats.first_step
            self.steps_trained += steps
            self.train_flops += stats.examples * flops_per_example
            row = {
                "kind": "epoch", "level": self.level, "epoch": stats.epoch, "steps": steps,
                "complete": stats.complete, "lr": stats.lr, "train_loss": stats.train_loss,
                "train_accuracy": stats.train_accuracy, "epochs_trained": self.epochs_trained, "time_s": stats.seconds,
                "train_flops": self.train_flops,
            }
            if self.spec.train.eval_every_epoch and stats.complete:
                row.update({f"test_{k}": v for k, v in self.trainer.evaluate().items()})
            self.recorder.append_metrics(row)
            self.on_epoch(steps / self.steps_per_epoch)
            due = self.checkpoint_every and stats.complete and (stats.epoch + 1) % self.checkpoint_every == 0
            waited = time.perf_counter() - self._last_checkpoint >= self.checkpoint_interval_s
            if due and waited and stats.last_step < last:
                self._checkpoint(Resume(op, stats.last_step))

        partial = self.trainer.train(first, last, epoch_key, on_epoch, self.should_stop, carry)
        if partial is not None:  # its steps count once the epoch is finished, after the resume
            self._checkpoint(Resume(op, partial.step, partial.state()))
            raise Interrupted(f"stopped at step {partial.step} of level {self.level}; checkpoint written")

    @property
    def epochs_trained(self) -> float:
        return self.steps_trained / self.steps_per_epoch

    def reset_optimizer(self) -> None:
        """Fresh optimizer state (momentum buffers) for the following training."""
        if self._op()[1]:
            self.trainer.reset_optimizer()

    # ---- snapshots and rewinding
    def snapshot(self, name: str) -> None:
        """Save everything a later restore may name (weights, BN, optimizer state, data order)."""
        if not self._op()[1]:
            return
        self._snapshots[name] = {
            "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.trainer.optimizer.state_dict()),
            "data_level": self.data_level,
        }

    def restore(self, name: str, what: Sequence[Restorable]) -> None:
        """Restore the named parts of snapshot ``name``; the masks stay as they are."""
        if not self._op()[1]:
            return
        unknown = set(what) - set(RESTORABLE)
        if unknown:
            raise ValueError(f"cannot restore {sorted(unknown)}; restorable: {', '.join(RESTORABLE)}")
        snap = self._snapshots[name]
        keys = state_keys(self.model)
        chosen = {k for part in what if part in keys for k in keys[part]}
        state = self.model.state_dict()
        with torch.no_grad():
            for key in chosen:
                state[key].copy_(snap["state"][key])
        if "optimizer" in what:
            self.trainer.optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
        if "data_order" in what:
            self.data_level = snap["data_level"]
        self._masks_changed()

    # ---- scoring and pruning
    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        """Scores per prunable tensor from a registered scorer (default: the suite's)."""
        op, run = self._op()
        if not run:
            return {}
        name = scorer or self.spec.prune.scorer
        ctx = ScoreContext(
            model=self.model,
            params=self.prunable,
            masks=self.masks,
            batches=self._scoring_batches(op),
            generator=self.rng(f"score:{name}", op),
            num_classes=self.num_classes,
            level=self.level,
            producers=self.producers,
        )
        return get_scorer(name)(ctx, **options)

    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None, allocation: str | None = None) -> None:
        """Prune to ``density`` of all prunable weights, or remove a fraction of the remaining ones."""
        if (density is None) == (remove is None):
            raise ValueError("prune takes exactly one of density= or remove=")
        if not self._op()[1]:
            return
        target = density if density is not None else self.target_density * (1.0 - remove)
        self.masks = allocate(scores, self.masks, target, allocation or self.spec.prune.allocation)
        self.target_density = target
        self._masks_changed()

    def _masks_changed(self) -> None:
        """Enforce the masks (pruned weights to zero from now on)."""
        self.trainer.set_masks(self.prunable, self.masks)

    # ---- signs
    def set_signs(self, source: SignSource, level: int | None = None) -> None:
        """Give every prunable weight the sign of ``source`` and keep its magnitude: "init" (this
        run's initialisation), "producer" (the ``signs`` producer run at ``level``, default the
        current one), or "keep" (nothing)."""
        if not self._op()[1] or source == "keep":
            return
        if source == "init":
            signs = self._init_signs
        else:
            signs = self._producer("signs").signs(self.level if level is None else level)
        with torch.no_grad():
            for name, p in self.prunable.items():
                sign = 1.0 - 2.0 * signs[name].to(device=p.device, dtype=p.dtype)  # True (negative) -> -1
                p.copy_(p.abs() * sign)

    def flip_signs(self, fraction: float) -> None:
        """Flip the sign of exactly round(fraction * n) of the n unpruned weights of every prunable
        tensor, chosen uniformly at random (pruned weights are never touched)."""
        op, run = self._op()
        if not run or fraction == 0:
            return
        g = self.rng("flip_signs", op)
        with torch.no_grad():
            for name, p in self.prunable.items():
                kept = torch.nonzero(self.masks[name].reshape(-1).cpu()).flatten()
                chosen = kept[torch.randperm(len(kept), generator=g)[: round(fraction * len(kept))]]
                sign = torch.ones(p.numel())
                sign[chosen] = -1.0
                p.mul_(sign.view(p.shape).to(device=p.device, dtype=p.dtype))

    def _producer(self, role: str) -> RunRecords:
        if role not in self.producers:
            raise ValueError(f"this run has no {role!r} producer; give the suite entry `from: {{{role}: LABEL}}`")
        return self.producers[role]

    def rng(self, tag: str, op: int | None = None) -> torch.Generator:
        """A generator keyed by the run's seed, the operation and ``tag``: same numbers after a resume."""
        op = self._next_op if op is None else op
        return torch.Generator().manual_seed(derive_seed(self.spec.seed, "rng", op, tag))

    def _scoring_batches(self, op: int) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        loader = self.trainer.train_loader

        def batches(n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            plan = loader.plan(derive_seed(self.spec.seed, "score-data", op))
            for b in range(-(-min(n, len(loader)) // loader.batch_size)):
                x, y = loader.batch(plan, b)
                yield x[: n - b * loader.batch_size], y[: n - b * loader.batch_size]

        return batches

    # ---- evaluation and records
    def evaluate(self) -> dict[str, float]:
        op, run = self._op()
        if not run:
            return self._journal[op]
        self._journal[op] = self.trainer.evaluate()
        return self._journal[op]

    def record(self, level: int, **extra: Any) -> None:
        """End of a level: evaluate, write the level's row and mask, checkpoint."""
        op, run = self._op()
        if not run:
            return
        stats = mask_stats(self.masks)
        input_shape = self.trainer.train_loader.sample_shape
        signs = negative(self.prunable)
        row = {
            "kind": "level", "level": level, "target_density": self.target_density,
            "density": stats.density, "sparsity": stats.sparsity, "kept": stats.kept, "prunable": stats.total,
            # weights on no input-to-output path count as pruned; a fully pruned tensor cuts every path
            "effective_density": effective_density(self.model, self.masks, input_shape),
            "collapsed_layers": [name for name, (kept, _) in stats.layers.items() if kept == 0],
            **{f"test_{k}": v for k, v in self.trainer.evaluate().items()},
            "epochs_trained": self.epochs_trained,
            "train_flops": self.train_flops,
            "wall_time_s": time.perf_counter() - self._started,
            "layer_density": stats.layer_density(),
            "sign_flips_vs_init": sign_flip_fraction(signs, self._init_signs, self.masks),
            **self._versus_previous_level(signs),
            **extra,
        }
        self.levels.append(row)
        self.recorder.append_metrics(row)
        self.recorder.save_masks(level, pack(self.masks))
        self.recorder.save_signs(level, pack(signs))
        self.level = self.data_level = level + 1
        self._checkpoint(Resume(op + 1))

    def _versus_previous_level(self, signs: dict[str, torch.Tensor]) -> dict[str, float]:
        """Sign flips and mask overlap against the end of the previously recorded level."""
        if not self.levels:
            return {}
        previous, records = self.levels[-1]["level"], self.recorder.records()
        return {
            "sign_flips_vs_previous": sign_flip_fraction(signs, records.signs(previous), self.masks),
            "mask_iou_previous": mask_iou(self.masks, records.masks(previous)),
        }

    # ---- checkpoints
    def _checkpoint(self, at: Resume) -> None:
        self.recorder.save_checkpoint(self.state_dict(at))
        self._last_checkpoint = time.perf_counter()

    def state_dict(self, at: Resume) -> dict[str, Any]:
        return {
            "format": 1,
            "op": at.op,
            "step": at.step,
            "partial": at.partial,
            "model": self.model.state_dict(),
            "optimizer": self.trainer.optimizer.state_dict(),
            "masks": self.masks,
            "snapshots": self._snapshots,
            "journal": self._journal,
            "levels": self.levels,
            "counters": {
                "target_density": self.target_density, "level": self.level,
                "data_level": self.data_level, "steps_trained": self.steps_trained, "train_flops": self.train_flops,
            },
            "metrics_count": self.recorder.metrics_count(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a checkpoint: the method script is then replayed up to ``state['op']``."""
        self.model.load_state_dict(state["model"])
        self.masks = {k: v.bool() for k, v in state["masks"].items()}
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self._snapshots = state["snapshots"]
        self._journal = state["journal"]
        self.levels = state["levels"]
        counters = state["counters"]
        self.target_density = counters["target_density"]
        self.level, self.data_level = counters["level"], counters["data_level"]
        self.steps_trained = counters["steps_trained"]
        self.train_flops = counters.get("train_flops", 0.0)
        self._masks_changed()
        self._resume = Resume(state["op"], state["step"], state.get("partial"))


def state_keys(model: nn.Module) -> dict[str, set[str]]:
    """state_dict keys by restorable part: norm-layer affine, norm-layer statistics, everything else."""
    affine, stats = set(), set()
    for mname, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            prefix = f"{mname}." if mname else ""
            affine |= {prefix + n for n, _ in module.named_parameters(recurse=False)}
            stats |= {prefix + n for n, _ in module.named_buffers(recurse=False)}
    weights = {k for k, _ in model.named_parameters()} - affine
    return {"weights": weights, "bn_affine": affine, "bn_stats": stats}


class PlanSession:
    """Runs a method script without training, to count what it would train (``--dry-run``).

    It answers the Session's calls with the same signatures; training is counted, not done.
    """

    def __init__(self, spec: RunSpec, steps_per_epoch: int) -> None:
        self.spec = spec
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = spec.train.epochs * steps_per_epoch
        self.steps_trained = 0
        self.levels = 0
        self.target_density = 1.0

    @property
    def epochs_trained(self) -> float:
        return self.steps_trained / self.steps_per_epoch

    def steps(self, point: Point | str | None, default: int) -> int:
        return default if point is None else Point.model_validate(point).steps(self.steps_per_epoch)

    def train(self, start: Point | str | None = None, stop: Point | str | None = None) -> None:
        self.steps_trained += self.steps(stop, self.total_steps) - self.steps(start, 0)

    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None, allocation: str | None = None) -> None:
        self.target_density = density if density is not None else self.target_density * (1.0 - remove)

    def record(self, level: int, **extra: Any) -> None:
        self.levels += 1

    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        return {}

    def evaluate(self) -> dict[str, float]:
        return {"accuracy": float("nan"), "loss": float("nan")}

    def rng(self, tag: str, op: int | None = None) -> torch.Generator:
        return torch.Generator().manual_seed(0)

    def snapshot(self, name: str) -> None: ...
    def restore(self, name: str, what: Sequence[Restorable]) -> None: ...
    def reset_optimizer(self) -> None: ...
    def set_signs(self, source: SignSource, level: int | None = None) -> None: ...
    def flip_signs(self, fraction: float) -> None: ...


class IterativeParams(MethodParams):
    """Parameters of a method that prunes over several levels: a fraction per level or explicit targets,
    and the sign ablations of Gadhikar & Burkholz 2024 applied after every prune."""

    levels: int = 5
    fraction: float = 0.2  # of the remaining weights, per level
    densities: list[float] | None = None  # explicit density of each level after the first (overrides the two above)
    signs: SignSource = "keep"  # "init": |w| * sign(w at init); "producer": |w| * sign(w of the signs producer)
    flip_signs: float = Field(0.0, ge=0, le=1)  # sign perturbation: this fraction of unpruned weights per layer...
    flip_at: Point | None = None  # ...at this point of the level's schedule (default: right after the prune)...
    flip_levels: list[int] | None = None  # ...in these levels (default: every level after the first)

    def level_densities(self) -> list[float]:
        """Target density (fraction of prunable weights kept) of levels 1, 2, ..."""
        if self.densities is not None:
            return list(self.densities)
        return [(1.0 - self.fraction) ** k for k in range(1, self.levels + 1)]


def retrain(s: Session, p: IterativeParams, level: int, start: Point) -> None:
    """Train pruned level ``level`` from ``start`` of its schedule, with the sign perturbation the
    parameters ask for (Gadhikar & Burkholz 2024): flip ``flip_signs`` of the unpruned weights of
    every layer at ``flip_at`` (or before training) in the levels ``flip_levels`` (or all)."""
    fraction = p.flip_signs if p.flip_levels is None or level in p.flip_levels else 0.0
    if p.flip_at is None:
        s.flip_signs(fraction)
        s.train(start=start)
        return
    if s.steps(p.flip_at, 0) < s.steps(start, 0):
        raise ValueError(f"flip_at {p.flip_at} lies before the level's training starts ({start})")
    s.train(start=start, stop=p.flip_at)
    s.flip_signs(fraction)
    s.train(start=p.flip_at)


# Pruning rounds a scorer is iterated for when a method is not told (Tanaka et al. 2020: 100 for SynFlow).
DEFAULT_ROUNDS = {"synflow": 100}


def prune_in_rounds(s: Session, density: float, rounds: int | None = None, **options: Any) -> None:
    """Score and prune ``rounds`` times along density^(k / rounds), k = 1..rounds (the SynFlow
    paper's prune loop; one round is one-shot pruning). Each round is an ordinary Session score and
    prune, so masks are exact and nested under any allocation."""
    rounds = rounds or DEFAULT_ROUNDS.get(s.spec.prune.scorer, 1)
    for k in range(1, rounds + 1):
        s.prune(s.score(**options), density=density ** (k / rounds))


class StandaloneSession:
    """What a standalone method (a closed toy experiment, e.g. the single hidden neuron) works with:
    the run's seed, keyed randomness and level records. It has no checkpoints: such runs take seconds."""

    def __init__(self, spec: RunSpec, recorder: Recorder) -> None:
        self.spec = spec
        self.recorder = recorder
        self.levels: list[dict[str, Any]] = []
        self.epochs_trained = 0.0

    def rng(self, tag: str) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.spec.seed, "standalone", tag))

    def record(self, level: int, *, density: float, accuracy: float, epochs: float, **extra: Any) -> None:
        """A level row in the common schema: ``accuracy`` is what the leaderboard ranks by."""
        self.epochs_trained = epochs
        row = {"kind": "level", "level": level, "target_density": density, "density": density, "sparsity": 1.0 - density,
               "test_accuracy": accuracy, "epochs_trained": epochs, **extra}
        self.levels.append(row)
        self.recorder.append_metrics(row)
