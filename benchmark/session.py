"""The Session that trains: a run's model, masks, optimizer, data, randomness, snapshots and records.

Every Session call is an *operation* with a sequence number. A checkpoint stores the full state and
the number of the next operation (and, inside a ``train``, the step reached), so an interrupted run
replays the method script from the top, skipping finished operations instantly, and continues with
bit-identical results. This requires what every method already is: a deterministic script whose
control flow depends only on its parameters and on values the Session returned (those are journaled
and replayed).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from prunebench.api import (
    RESTORABLE,
    DropGrow,
    GradualPrune,
    MaskUpdates,
    ProducerRecords,
    Restorable,
    ScoreContext,
    SignSource,
    get_scorer,
)
from prunebench.connectivity import effective_density
from prunebench.diagnostics import forward_flops, layer_macs, mask_iou, negative, sign_flips
from prunebench.lineage import Lineage, epoch_rows
from prunebench.masks import Masks, Scores, allocate, drop_and_grow, full_masks, mask_stats, on_host, pack
from prunebench.messages import LEVELS
from prunebench.models.init import NORM_LAYERS
from prunebench.prefixes import PrefixStore
from prunebench.records import EpochRecord, LevelRecord
from prunebench.seeds import derive_seed
from prunebench.sparsity import cubic_density, drop_fraction, is_update_step
from prunebench.spec import Point, RunSpec, WeightPoint, level_steps, points_in
from prunebench.store import BackgroundWriter, host_copy
from prunebench.train import EpochStats, PartialEpoch, Trainer

levels_log = logging.getLogger(LEVELS)


class Recorder(Protocol):
    """Where a Session writes its records (prunebench.store.RunDir implements it)."""

    def append_metrics(self, row: dict[str, Any]) -> None: ...
    def save_masks(self, level: int, packed: dict[str, Any]) -> None: ...
    def save_signs(self, level: int, packed: dict[str, Any]) -> None: ...
    def save_weights(self, name: str, state: dict[str, Any]) -> None: ...
    def has_weights(self, name: str) -> bool: ...
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


class TrainingSession:
    """The runtime implementation of prunebench.api.Session."""

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
        on_progress: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        producers: Mapping[str, ProducerRecords] | None = None,
        async_checkpoints: bool = False,
        prefixes: PrefixStore | None = None,
        shared_prefixes: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = spec
        self.trainer = trainer
        self.model = trainer.model
        self.prunable = prunable
        self.recorder = recorder
        self.num_classes = num_classes
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.on_progress = on_progress or (lambda epochs: None)  # epochs trained since its last call (a progress bar)
        self.should_stop = should_stop
        self.producers = dict(producers or {})
        self.masks: Masks = full_masks(prunable)
        self._init_signs = negative(prunable)  # the seed's initialisation: a resumed session rebuilds the same
        self._macs = layer_macs(self.model, trainer.train_loader.sample_shape)
        self._dense_forward = forward_flops(self._macs, {})  # FLOPs of one example's dense forward pass
        self.train_flops = 0.0  # at each step's densities (RigL's count)
        self.dense_train_flops = 0.0  # what the dense model would have spent on the same examples
        self.target_density = 1.0
        self.level = 0  # the level being trained: number of record() calls so far
        self.data_level = 0  # which level's data order the next epochs use
        self.steps_trained = 0
        self.levels: list[LevelRecord] = []  # the per-level rows of the result
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._previous: dict[str, Masks] = {}  # the last recorded level's masks and signs (its files are write-only here)
        self._scored = False  # a score since the last checkpoint (SynFlow's 100 rounds): checkpoint before training
        self._journal: dict[int, Any] = {}
        self._next_op = 0
        self._resume: Resume | None = None
        self._started = self._last_checkpoint = time.perf_counter()
        # Checkpoints copied to host memory, then written by a thread while training goes on
        self._writer = BackgroundWriter() if async_checkpoints else None
        # Prefix sharing: the states other runs of the invocation reach too (prunebench.lineage) are
        # written to (or, when there, loaded from) ``prefixes`` at the end of a train
        self.lineage = Lineage(spec)
        self.prefixes = prefixes
        self.shared_prefixes = shared_prefixes
        self._rows: list[tuple[int, int, dict[str, Any]]] = []  # epoch rows since the lineage's last train began
        self._last_scores: Scores | None = None

    # ---- positions
    @property
    def steps_per_epoch(self) -> int:
        return self.trainer.steps_per_epoch

    @property
    def epochs_trained(self) -> float:
        return self.steps_trained / self.steps_per_epoch

    def steps(self, point: Point | str | None, default: int) -> int:
        return level_steps(point, default, self.steps_per_epoch, self.trainer.total_steps)

    # ---- operation bookkeeping (replay after a resume)
    def _op(self) -> tuple[int, bool]:
        """(this operation's number, whether it must run) and advance the counter."""
        op = self._next_op
        self._next_op += 1
        return op, self._resume is None or op >= self._resume.op

    # ---- training
    def train(self, start: Point | str | None = None, stop: Point | str | None = None,
              updates: MaskUpdates | None = None) -> None:
        """Train steps [start, stop) of the level's schedule (default: the whole schedule), updating the
        masks with ``updates`` after their steps (prunebench.api.MaskUpdates)."""
        op, run = self._op()
        if not run:
            return
        origin = first = self.steps(start, 0)
        last = self.steps(stop, self.trainer.total_steps)
        carry = None
        kept = self._kept_steps()
        resumed = self._resume is not None and self._resume.op == op
        if resumed:
            first = self._resume.step
            carry = PartialEpoch(**self._resume.partial) if self._resume.partial else None
        self._resume = None
        if first in kept:  # a point where training starts (0ep: the initialisation; IMP's level k at its rewind point)
            self._keep_weights(kept[first])
        if not resumed:
            inside = [k for k, name in kept.items() if first < k < last and not self.recorder.has_weights(name)]
            if not inside and self._load_prefix(first, last, updates):  # a kept point inside: trained, to be kept
                if last in kept:
                    self._keep_weights(kept[last])
                return
            if not self.lineage.merges(first, self.data_level, updates):
                self._rows = []
            if self._scored and time.perf_counter() - self._last_checkpoint >= self.checkpoint_interval_s:
                self._checkpoint(Resume(op, first))  # scoring (SynFlow's 100 rounds) is not redone after a kill in training

        def epoch_key(epoch: int) -> int:
            return derive_seed(self.spec.seed, "data", self.data_level, epoch)

        begin, end, every = self._update_steps(updates, last) if updates else (0, 0, 1)
        forward = forward_flops(self._macs, self.masks)

        def after_step(step: int, examples: int) -> None:
            """A step costs 3 sparse forwards (forward, backward ~ 2x); a RigL update step 2 sparse
            forwards and one dense one (its dense gradient), as the RigL paper counts."""
            nonlocal forward
            cost = 3 * forward
            if updates is not None and is_update_step(step, begin, end, every):
                if isinstance(updates.rule, DropGrow) and updates.rule.grow == "gradient":
                    cost = 2 * forward + self._dense_forward
                self._update_masks(updates.rule, step, begin, end)
                forward = forward_flops(self._macs, self.masks)
            self.train_flops += examples * cost
            self.dense_train_flops += examples * 3 * self._dense_forward
            if step + 1 in kept:  # the state this step reaches, with the mask multiply still to come applied
                self._keep_weights(kept[step + 1], self.trainer.state_after_masks())

        def on_epoch(stats: EpochStats) -> None:
            steps = stats.last_step - stats.first_step
            self.steps_trained += steps
            record = EpochRecord(
                level=self.level, epoch=stats.epoch, steps=steps, complete=stats.complete, lr=stats.lr,
                train_loss=stats.train_loss, train_accuracy=stats.train_accuracy, epochs_trained=self.epochs_trained,
                time_s=stats.seconds, train_flops=self.train_flops,
            )
            if self.spec.train.eval_every_epoch and stats.complete:
                evaluated = self.trainer.evaluate()
                record.test_accuracy, record.test_loss = evaluated["accuracy"], evaluated["loss"]
            row = record.model_dump(mode="json", exclude_none=True)
            self.recorder.append_metrics(row)
            self._rows.append((stats.first_step, stats.last_step, row))
            # Periodic checkpoints fall on epoch ends of the level's schedule, wherever its segments
            # start and stop, so a level trained in pieces is checkpointed as often as one trained at
            # once; the end of the schedule is left to the level's record(), which always checkpoints.
            due = self.checkpoint_every and stats.complete and (stats.epoch + 1) % self.checkpoint_every == 0
            waited = time.perf_counter() - self._last_checkpoint >= self.checkpoint_interval_s
            if due and waited and stats.last_step < self.trainer.total_steps:
                self._checkpoint(Resume(op, stats.last_step))

        self.trainer.on_steps = lambda steps: self.on_progress(steps / self.steps_per_epoch)
        partial = self.trainer.train(first, last, epoch_key, on_epoch, self.should_stop, carry, after_step)
        if partial is not None:  # its steps count once the epoch is finished, after the resume
            self._checkpoint(Resume(op, partial.step, partial.state()))
            self.wait_for_checkpoints()
            raise Interrupted(f"stopped at step {partial.step} of level {self.level}; checkpoint written")
        self.lineage.train(origin, last, self.data_level, self.level, updates)
        self._share_prefix()

    # ---- kept weights (spec.keep_weights: a suite entry's keep_weights)
    def _kept_steps(self) -> dict[int, str]:
        """The steps of this level's schedule where the run keeps its model state -> the file name."""
        return {self.steps(p.at, 0): p.file(self.level) for p in points_in(self.spec.keep_weights, self.level)}

    def _keep_weights(self, name: str, state: Mapping[str, torch.Tensor] | None = None) -> None:
        """Write the model state (now, or ``state``) as weights/<name>.pt, unless an earlier attempt did."""
        if not self.recorder.has_weights(name):
            self.recorder.save_weights(name, on_host(dict(state if state is not None else self.model.state_dict())))

    def missing_weights(self) -> list[str]:
        """The points of keep_weights that the recorded levels passed without the run reaching them."""
        return [f"{p} ({p.file(level)})" for p in self.spec.keep_weights for level in range(len(self.levels))
                if p.matches(level) and not self.recorder.has_weights(p.file(level))]

    # ---- shared prefixes
    def _load_prefix(self, first: int, last: int, updates: MaskUpdates | None) -> bool:
        """Instead of training [first, last): the state another run reached with the same lineage, and
        its epoch rows of these steps (marked with the prefix), if it wrote them."""
        key = self.lineage.key(self.lineage.after_train(first, last, self.data_level, self.level, updates))
        state = self.prefixes.load(key) if self.prefixes is not None and key in self.shared_prefixes else None
        if state is None:
            return False
        rows = {(r["first"], r["last"]): r["row"] for r in state["rows"]}
        wanted = epoch_rows(first, last, self.steps_per_epoch)
        if not all(w in rows for w in wanted):  # its epochs were cut elsewhere: its rows are not ours
            return False
        if not self.lineage.merges(first, self.data_level, updates):
            self._rows = []
        self.model.load_state_dict(state["model"])
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self.masks = {k: v.bool().to(self.masks[k].device) for k, v in state["masks"].items()}
        self._load_counters(state["counters"])
        self._masks_changed()
        for w in wanted:
            self.recorder.append_metrics({**rows[w], "level": self.level, "prefix": key})
            self._rows.append((*w, rows[w]))
        self.lineage.train(first, last, self.data_level, self.level, updates)
        self.on_progress((last - first) / self.steps_per_epoch)
        return True

    def _share_prefix(self) -> None:
        """Write the state this train ended in, if other runs reach it too and nobody wrote it yet."""
        key = self.lineage.key()
        if self.prefixes is None or key not in self.shared_prefixes or self.prefixes.has(key):
            return
        state = {"model": self.model.state_dict(), "optimizer": self.trainer.optimizer.state_dict(), "masks": self.masks,
                 "counters": self._counters(), "rows": [{"first": a, "last": b, "row": row} for a, b, row in self._rows]}
        if self._writer is None:
            self.prefixes.save(key, state)
        else:
            self._writer.submit(self.prefixes.save, key, host_copy(state))

    def _update_steps(self, updates: MaskUpdates, last: int) -> tuple[int, int, int]:
        """(first, last, every) update step; the last is the last one on the grid begin + k * every, so
        a schedule that reaches its final value at ``end`` reaches it at an update."""
        every = updates.every if isinstance(updates.every, int) else self.steps(updates.every, 1)
        if every < 1:
            raise ValueError(f"mask updates every {updates.every}: at least one step apart")
        begin = self.steps(updates.begin, 0)
        end = self.steps(updates.end, last - 1) if updates.end is not None else last - 1
        if end < begin:
            raise ValueError(f"mask updates end ({updates.end}) before they begin ({updates.begin})")
        return begin, begin + every * ((end - begin) // every), every

    def _update_masks(self, rule: DropGrow | GradualPrune, step: int, begin: int, end: int) -> None:
        """One in-training mask update after optimizer step ``step`` (its gradients are still there)."""
        if isinstance(rule, GradualPrune):
            density = cubic_density(step, rule.initial_density, rule.final_density, begin, end)
            if density >= self.target_density:
                return
            scores = get_scorer(rule.scorer)(self._score_context(rule.scorer, derive_seed("update", step)))
            self.masks = allocate(scores, self.masks, density, rule.allocation or self.spec.prune.allocation)
            self.target_density = density
        else:
            fraction = drop_fraction(step, rule.drop_fraction, begin, end, rule.anneal)
            magnitude = {name: p.detach().abs() for name, p in self.prunable.items()}
            if rule.grow == "random":
                g = self.rng(f"grow:{self.level}:{step}", 0)
                grow = {name: torch.rand(p.shape, generator=g) for name, p in self.prunable.items()}
            else:
                missing = [name for name, p in self.prunable.items() if p.grad is None]
                if missing:
                    raise RuntimeError(f"gradient growth needs the step's gradients; none for {missing}")
                grow = {name: p.grad.detach().abs() for name, p in self.prunable.items()}
            new, grown = drop_and_grow(self.masks, magnitude, grow, fraction)
            if rule.grow == "gradient":  # RigL: a weight dropped and regrown keeps its value
                grown = {name: grown[name] & ~self.masks[name].to(grown[name].device) for name in grown}
            self.masks = new
            self.trainer.start_at_zero(self.prunable, grown)
        self._masks_changed()

    def revive(self) -> None:
        """Unprune every weight (AC/DC's dense phase); revived weights start at zero with zero optimizer state."""
        if not self._op()[1]:
            return
        self.trainer.start_at_zero(self.prunable, {name: ~mask for name, mask in self.masks.items()})
        self.masks = full_masks(self.prunable)
        self.target_density = 1.0
        self._masks_changed()
        self.lineage.append("revive")

    def reset_optimizer(self) -> None:
        """Fresh optimizer state (momentum buffers) for the following training."""
        if self._op()[1]:
            self.trainer.reset_optimizer()
            self.lineage.append("reset_optimizer")

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
        self.lineage.snapshot(name)

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
        self.lineage.restore(name, what)

    # ---- scoring and pruning
    def score(self, scorer: str | None = None, **options: Any) -> Scores:
        """Scores per prunable tensor from a registered scorer (default: the suite's)."""
        op, run = self._op()
        if not run:
            return {}
        name = scorer or self.spec.prune.scorer
        self._scored = True
        self.lineage.score(op, name, options)
        self._last_scores = get_scorer(name)(self._score_context(name, op), **options)
        return self._last_scores

    def _score_context(self, scorer: str, key: int) -> ScoreContext:
        """What a scorer reads; its data and randomness keyed by ``key`` (the operation)."""
        return ScoreContext(
            model=self.model,
            params=self.prunable,
            masks=self.masks,
            batches=self._scoring_batches(key),
            generator=self.rng(f"score:{scorer}", key),
            num_classes=self.num_classes,
            level=self.level,
            producers=self.producers,
        )

    def prune(self, scores: Scores, *, density: float | None = None, remove: float | None = None,
              allocation: str | None = None) -> None:
        """Prune to ``density`` of all prunable weights, or remove a fraction of the remaining ones."""
        if (density is None) == (remove is None):
            raise ValueError("prune takes exactly one of density= or remove=")
        if not self._op()[1]:
            return
        target = density if density is not None else self.target_density * (1.0 - remove)
        self.masks = allocate(scores, self.masks, target, allocation or self.spec.prune.allocation)
        self.target_density = target
        self._masks_changed()
        self.lineage.prune(scores is self._last_scores, density, remove, allocation or self.spec.prune.allocation)
        self._last_scores = None

    def _masks_changed(self) -> None:
        """Enforce the masks (pruned weights to zero from now on)."""
        self.trainer.set_masks(self.prunable, self.masks)

    # ---- signs
    def set_signs(self, source: SignSource, level: int | None = None) -> None:
        """Give every prunable weight the sign of ``source`` and keep its magnitude: "init" (this
        run's initialisation), "rewind" (the weights of the "rewind" snapshot: the authors' "initial
        signs" are those after warm-up), "producer" (the ``signs`` producer run at ``level``, default
        the current one), or "keep" (nothing)."""
        if not self._op()[1] or source == "keep":
            return
        level = self.level if level is None else level
        self.lineage.append("set_signs", source, level, self.lineage.snapshots.get("rewind"))
        if source == "init":
            signs = self._init_signs
        elif source == "rewind":
            if "rewind" not in self._snapshots:
                raise ValueError("signs: rewind needs the method's 'rewind' snapshot, and it has none")
            state = self._snapshots["rewind"]["state"]
            signs = {name: state[name] < 0 for name in self.prunable}
        else:
            signs = self._producer("signs").signs(level)
        self._give_signs(signs)

    def _give_signs(self, negative_where: Mapping[str, torch.Tensor]) -> None:
        """|w| * (-1 where ``negative_where`` is True, else +1) for every prunable weight."""
        with torch.no_grad():
            for name, p in self.prunable.items():
                sign = 1.0 - 2.0 * negative_where[name].to(device=p.device, dtype=p.dtype)  # True (negative) -> -1
                p.copy_(p.abs() * sign)

    def load_weights(self, at: WeightPoint, signs_only: bool = False) -> None:
        """The model state the ``weights`` producer kept at ``at`` (weights, BN affine and statistics),
        or with ``signs_only`` only the signs of its prunable weights (this run's magnitudes stay); the
        masks stay as they are, and pruned weights stay zero."""
        if not self._op()[1]:
            return
        state = self._producer("weights").weights(at)
        self.lineage.append("load_weights", self.lineage.producers.get("weights"), str(at), signs_only)
        if signs_only:
            self._give_signs({name: state[name] < 0 for name in self.prunable})
        else:
            self.model.load_state_dict(state)
        self._masks_changed()

    def flip_signs(self, fraction: float, exact: bool = True) -> None:
        """Flip the sign of exactly round(fraction * n) of the n unpruned weights of every prunable
        tensor, chosen uniformly at random, or (``exact=False``, the authors' code) of each unpruned
        weight with probability ``fraction``; pruned weights are never touched."""
        op, run = self._op()
        if not run or fraction == 0:
            return
        g = self.rng("flip_signs", op)
        self.lineage.append("flip_signs", op, fraction, exact)
        with torch.no_grad():
            for name, p in self.prunable.items():
                kept = torch.nonzero(self.masks[name].reshape(-1).cpu()).flatten()
                if exact:
                    chosen = kept[torch.randperm(len(kept), generator=g)[: round(fraction * len(kept))]]
                else:
                    chosen = kept[torch.rand(len(kept), generator=g) < fraction]
                sign = torch.ones(p.numel())
                sign[chosen] = -1.0
                p.mul_(sign.view(p.shape).to(device=p.device, dtype=p.dtype))

    def _producer(self, role: str) -> ProducerRecords:
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
        masks = on_host(self.masks)  # one transfer; every statistic below is computed on the host copy
        stats = mask_stats(masks)
        signs = negative(self.prunable)
        vs_init = sign_flips(signs, self._init_signs, masks)
        evaluated = self.trainer.evaluate()
        row = LevelRecord(
            level=level, target_density=self.target_density, density=stats.density, sparsity=stats.sparsity,
            kept=stats.kept, prunable=stats.total,
            # weights on no input-to-output path count as pruned; a fully pruned tensor cuts every path
            effective_density=effective_density(self.model, self.masks, self.trainer.train_loader.sample_shape),
            collapsed_layers=[name for name, (kept, _) in stats.layers.items() if kept == 0],
            test_accuracy=evaluated["accuracy"], test_loss=evaluated["loss"],
            epochs_trained=self.epochs_trained, train_flops=self.train_flops, dense_train_flops=self.dense_train_flops,
            inference_flops=forward_flops(self._macs, masks), dense_inference_flops=self._dense_forward,
            wall_time_s=time.perf_counter() - self._started, layer_density=stats.layer_density(),
            sign_flips_vs_init=vs_init.fraction, layer_sign_flips_vs_init=vs_init.by_layer(),
            **self._versus_previous_level(signs, masks), **extra,
        )
        self.levels.append(row)
        levels_log.info("%s seed %d level %d: %.2f%% of weights, test acc %.2f%%, %.1f s", self.spec.label, self.spec.seed,
                        level, 100 * row.density, 100 * row.test_accuracy, row.wall_time_s)
        self.recorder.append_metrics(row.model_dump(mode="json", exclude_none=True))
        self.recorder.save_masks(level, pack(masks))
        self.recorder.save_signs(level, pack(signs))
        for point in self.spec.keep_weights:
            if point.at is None and point.matches(level):
                self._keep_weights(point.file(level))
        self._previous = {"masks": masks, "signs": signs}
        self.level = self.data_level = level + 1
        self._checkpoint(Resume(op + 1))

    def _versus_previous_level(self, signs: dict[str, torch.Tensor], masks: Masks) -> dict[str, Any]:
        """Sign flips and mask overlap against the end of the previously recorded level."""
        if not self._previous:
            return {}
        flips = sign_flips(signs, self._previous["signs"], masks)
        return {
            "sign_flips_vs_previous": flips.fraction, "layer_sign_flips_vs_previous": flips.by_layer(),
            "mask_iou_previous": mask_iou(masks, self._previous["masks"]),
        }

    # ---- checkpoints
    def _checkpoint(self, at: Resume) -> None:
        if self._writer is None:
            self.recorder.save_checkpoint(self.state_dict(at))
        else:
            self._writer.submit(self.recorder.save_checkpoint, host_copy(self.state_dict(at)))
        self._last_checkpoint = time.perf_counter()
        self._scored = False

    def wait_for_checkpoints(self) -> None:
        """Until the last checkpoint is on disk (before the run's lock is released or its end is recorded)."""
        if self._writer is not None:
            self._writer.wait()

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
            "previous": self._previous,
            "journal": self._journal,
            "levels": [row.model_dump(mode="json", exclude_none=True) for row in self.levels],
            "counters": {**self._counters(), "level": self.level, "data_level": self.data_level},
            "lineage": self.lineage.state(),
            "prefix_rows": self._rows,
            "metrics_count": self.recorder.metrics_count(),
        }

    def _counters(self) -> dict[str, float]:
        """The run's totals so far (a shared prefix carries them too: equal lineages, equal totals)."""
        return {"target_density": self.target_density, "steps_trained": self.steps_trained, "train_flops": self.train_flops,
                "dense_train_flops": self.dense_train_flops}

    def _load_counters(self, counters: Mapping[str, Any]) -> None:
        self.target_density = counters["target_density"]
        self.steps_trained = counters["steps_trained"]
        self.train_flops = counters.get("train_flops", 0.0)
        self.dense_train_flops = counters.get("dense_train_flops", 0.0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a checkpoint: the method script is then replayed up to ``state['op']``."""
        self.model.load_state_dict(state["model"])
        self.masks = {k: v.bool() for k, v in state["masks"].items()}
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self._snapshots = state["snapshots"]
        self._previous = {kind: {k: v.bool() for k, v in tensors.items()} for kind, tensors in state.get("previous", {}).items()}
        self._journal = state["journal"]
        self.levels = [LevelRecord.model_validate(row) for row in state["levels"]]
        counters = state["counters"]
        self._load_counters(counters)
        self.level, self.data_level = counters["level"], counters["data_level"]
        self.lineage.load(state.get("lineage"))
        self._rows = [tuple(row) for row in state.get("prefix_rows", [])]
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
