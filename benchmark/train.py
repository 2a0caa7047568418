"""The Trainer: trains a segment of a level's schedule with the masks enforced, and evaluates.

A level is one schedule of ``epochs * steps_per_epoch`` optimizer steps. ``train(start, stop)`` runs
steps ``[start, stop)`` of it: the learning rate of each step is a pure function of the step, and
each epoch's order and augmentation a pure function of the caller's key, so any split of a level
into segments (a rewind point, a resume) gives the same numbers as one uninterrupted pass.

Masks are enforced by one in-place multiply after every optimizer step, so pruned weights are
exactly zero for every forward pass whatever the optimizer does (momentum, weight decay, Adam).

Speed (issue 7; measured by benchmarks/throughput.py): the step loop never reads a device value
back (the epoch's loss and accuracy stay on the device until its end: one host sync per epoch), the
masks are one foreach multiply (no forward hooks, no multiply inside the forward), and two execution
settings, not part of the run id, trade bitwise equality with the plain path for speed:
``channels_last`` (model and batches in NHWC) and ``compile`` (forward and loss through
torch.compile, backward through AOTAutograd; the optimizer step and the mask multiply stay eager).
``precision: bf16`` autocasts the forward and the loss only; weights, gradients and optimizer
state stay fp32.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.data import DeviceLoader
from prunebench.masks import Masks, apply_masks
from prunebench.models.init import CONV_LINEAR
from prunebench.schedules import learning_rate
from prunebench.seeds import derive_seed
from prunebench.spec import OptimizerImpl, OptimizerSpec, TrainSpec


class Diverged(RuntimeError):
    """Training produced a non-finite loss; the run is recorded as failed with this reason."""


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # index in the level's schedule
    first_step: int
    last_step: int  # exclusive
    complete: bool  # the segment covered the end of this epoch
    train_loss: float
    train_accuracy: float
    lr: float  # of the epoch's last step
    seconds: float = 0.0  # wall time of these steps (since the resume, for a resumed epoch)
    examples: int = 0  # training examples the epoch's steps saw


@dataclass(frozen=True)
class PartialEpoch:
    """An epoch cut short by a stop request: the next step and the sums so far, so that finishing it
    later gives exactly the numbers of an uninterrupted epoch."""

    epoch: int
    first_step: int
    step: int
    loss_sum: float
    correct: int
    seen: int

    def state(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def make_optimizer(model: nn.Module, spec: OptimizerSpec, impl: OptimizerImpl = "foreach") -> torch.optim.Optimizer:
    """The suite's optimizer over ``model``; ``impl`` is how its step runs (an execution setting): one
    foreach call per parameter group, a fused kernel, or torch's per-parameter loop."""
    if spec.weight_decay_on == "all":
        groups = [{"params": list(model.parameters()), "weight_decay": spec.weight_decay}]
    else:
        decayed = {id(m.weight) for m in model.modules() if isinstance(m, CONV_LINEAR)}
        params = list(model.parameters())
        groups = [
            {"params": [p for p in params if id(p) in decayed], "weight_decay": spec.weight_decay},
            {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
        ]
    how = {"foreach": {"foreach": True}, "fused": {"fused": True}, "loop": {"foreach": False}}[impl]
    if spec.name == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, **how)
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=spec.lr, betas=spec.betas, **how)


def forward_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and mean cross-entropy of one batch: the part of a step that ``compile`` compiles."""
    logits = model(x)
    return logits, F.cross_entropy(logits, y, label_smoothing=label_smoothing)


@functools.cache
def compiled_forward_loss() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``forward_loss`` through torch.compile, made once per process.

    The model is an argument, so its parameters are graph inputs and the compiled code is reused
    by every Trainer of the same architecture (all levels and runs of a suite); a new graph is
    compiled only for a new architecture, batch shape (the last, partial batch of an epoch) or
    autocast state. ``dynamic=False``: static shapes give the best kernels and at most two graphs.
    """
    return torch.compile(forward_loss, dynamic=False)


def update(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    """The optimizer step, then the masks enforced: the part of a step that ``compile_update`` compiles."""
    optimizer.step()
    if params:
        apply_masks(params, masks)


@functools.cache
def compiled_update() -> Callable[..., None]:
    """``update`` through torch.compile, made once per process (parameters and masks are graph inputs,
    so new masks of the same shapes reuse the graph)."""
    return torch.compile(update, dynamic=False)


PROGRESS_EVERY_S = 0.5


def step_generators(device: torch.device) -> list[torch.Generator]:
    """The generators a model's stochastic layers draw from on ``device``: the CPU's, and the GPU's own."""
    generators = [torch.default_generator]
    if device.type == "cuda":
        torch.cuda.init()
        index = device.index if device.index is not None else torch.cuda.current_device()
        generators.append(torch.cuda.default_generators[index])
    return generators


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train_loader: DeviceLoader,
        test_loader: DeviceLoader,
        spec: TrainSpec,
        *,
        eval_batch_size: int = 1024,
        channels_last: bool = False,
        compile: bool = False,
        compile_update: bool = False,
        optimizer_impl: OptimizerImpl = "foreach",
    ) -> None:
        device = train_loader.device
        if spec.precision == "bf16" and device.type == "cpu":
            # Slow but correct: allowed (correctness tests use it), never what a CPU run wants.
            warnings.warn("precision bf16 on the CPU: without native bf16 (AVX2), autocast is 3-11x slower than fp32 "
                          "(measured: results/throughput_cpu.md); use it on a GPU", stacklevel=2)
        if channels_last and device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
            # Incorrect (and memory-unsafe): refused. Reproducer in results/throughput_cpu.md.
            raise ValueError("channels_last is a GPU setting: on the CPU, oneDNN (torch 2.14) computes wrong weight "
                             "gradients for 1x1 stride-2 convolutions with 2-7 input channels in channels_last")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model.to(memory_format=torch.channels_last)  # in place: the parameters keep their identity
        train_loader.memory_format = test_loader.memory_format = self.memory_format  # batches made in it, no copy after
        self.model = model
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.spec = spec
        self.eval_batch_size = eval_batch_size
        self.optimizer_impl = optimizer_impl
        # A compiled step takes the learning rate as a tensor (a Python float would be a constant of
        # the graph: one recompile per step of the schedule).
        self._lr_tensor = compile_update
        self.optimizer = self._new_optimizer()
        self.steps_per_epoch = train_loader.steps_per_epoch
        self.total_steps = spec.epochs * self.steps_per_epoch
        self._masked: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._forward_loss = compiled_forward_loss() if compile else forward_loss
        self._update = compiled_update() if compile_update else update
        self._generators = step_generators(device)
        self._autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if spec.precision == "bf16" else nullcontext
        )
        # Steps trained since the last call, every PROGRESS_EVERY_S of wall time and at every epoch end (a
        # progress bar between epochs; a clock read per step, no device sync).
        self.on_steps: Callable[[int], None] | None = None

    def _new_optimizer(self) -> torch.optim.Optimizer:
        optimizer = make_optimizer(self.model, self.spec.optimizer, self.optimizer_impl)
        if self._lr_tensor:
            device = next(self.model.parameters()).device
            for group in optimizer.param_groups:
                group["lr"] = torch.tensor(group["lr"], device=device)
        return optimizer

    def reset_optimizer(self) -> None:
        self.optimizer = self._new_optimizer()

    @torch.no_grad()
    def start_at_zero(self, params: dict[str, nn.Parameter], where: Masks) -> None:
        """Weights that (re)enter the network start at zero with zero optimizer state (momentum, Adam
        moments): nothing they accumulated while pruned carries over."""
        for name, chosen in where.items():
            p = params[name]
            chosen = chosen.to(p.device)
            p.masked_fill_(chosen, 0.0)
            for value in self.optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    value.masked_fill_(chosen, 0.0)

    def set_masks(self, params: dict[str, nn.Parameter], masks: Masks) -> None:
        """Enforce ``masks`` on ``params`` from now on, and zero the pruned weights at once."""
        ordered = list(masks)
        self._masked = (
            [params[n] for n in ordered],
            # empty_like keeps the parameter's layout (channels_last), so the multiply is elementwise in memory order
            [torch.empty_like(params[n]).copy_(masks[n]) for n in ordered],
        )
        apply_masks(*self._masked)

    def state_after_masks(self) -> dict[str, torch.Tensor]:
        """A copy of the model state with the masks applied as the step loop applies them (the same
        multiply, so pruned weights come out as the loop leaves them): in ``after_step`` the multiply
        is still to come."""
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        params, masks = self._masked
        if params:
            names = {id(p): n for n, p in self.model.named_parameters()}
            apply_masks([state[names[id(p)]] for p in params], masks)
        return state

    def lr_at(self, step: int) -> float:
        return learning_rate(self.spec.schedule, self.spec.optimizer.lr, step, self.steps_per_epoch, self.spec.epochs)

    def train(self, start: int, stop: int, epoch_key: Callable[[int], int], on_epoch: Callable[[EpochStats], None],
              should_stop: Callable[[], bool] | None = None, carry: PartialEpoch | None = None,
              after_step: Callable[[int, int], None] | None = None) -> PartialEpoch | None:
        """Run steps [start, stop) of the level's schedule; call ``on_epoch`` at every epoch end and at ``stop``.

        ``after_step(step, examples)`` runs after every optimizer step and before the mask multiply:
        where in-training mask updates change the masks (the step's gradients are still there).
        ``should_stop`` is asked after every step; when it says yes, training stops there and the
        cut-short epoch is returned (``carry`` it into the next call at its ``step`` to finish it).
        """
        if not 0 <= start <= stop <= self.total_steps:
            raise ValueError(f"segment [{start}, {stop}) outside the level's {self.total_steps} steps")
        self.model.train()
        spe, step = self.steps_per_epoch, start
        while step < stop:
            epoch = step // spe
            end = min(stop, (epoch + 1) * spe)
            key = epoch_key(epoch)
            if carry is not None and carry.step != step:
                carry = None
            stats = self._train_steps(self.train_loader.plan(key), key, epoch, step, end, should_stop, carry, after_step)
            carry = None
            if isinstance(stats, PartialEpoch):
                return stats
            step = end
            on_epoch(stats)
        return None

    def _train_steps(self, plan, key: int, epoch: int, first: int, end: int, should_stop: Callable[[], bool] | None,
                     carry: PartialEpoch | None, after_step: Callable[[int, int], None] | None) -> EpochStats | PartialEpoch:
        """Steps [first, end) of one epoch. Nothing in the loop reads a device value back to the host.

        Anything stochastic in the model (dropout) draws from the global generator, seeded at every
        step by the epoch's key and the step: a step's randomness is a pure function of its position,
        so a level split anywhere (a rewind point, a sign flip, a resume) trains as one pass does."""
        spe, model, opt, loader = self.steps_per_epoch, self.model, self.optimizer, self.train_loader
        started = time.perf_counter()
        loss_sum = torch.tensor(carry.loss_sum if carry else 0.0, device=loader.device)
        correct = torch.tensor(carry.correct if carry else 0, device=loader.device, dtype=torch.int64)
        seen, lr, smoothing = carry.seen if carry else 0, 0.0, self.spec.label_smoothing
        epoch_first = carry.first_step if carry else first
        reported, reported_at = first, started
        for step in range(first, end):
            lr = self.lr_at(step)  # a Python float (about 1 us), never read back from a device: no sync
            for group in opt.param_groups:
                if not self._lr_tensor:
                    group["lr"] = lr
                elif torch.is_tensor(group["lr"]):
                    group["lr"].fill_(lr)
                else:  # a float from an optimizer state loaded from a checkpoint of the eager path
                    group["lr"] = torch.tensor(lr, device=loader.device)
            x, y = loader.batch(plan, step - epoch * spe)
            seed = derive_seed(key, step)
            for generator in self._generators:  # ~2 us each; torch.manual_seed would cost ~350 us a step
                generator.manual_seed(seed)
            with self._autocast():
                logits, loss = self._forward_loss(model, x, y, smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if after_step is None:
                self._update(opt, *self._masked)
            else:  # an in-training mask update sees the step's gradients before the masks apply
                self._update(opt, [], [])
                after_step(step, y.shape[0])
                if self._masked[0]:
                    apply_masks(*self._masked)
            # both accumulators in one call (the loss is fp32 under autocast too)
            torch._foreach_add_([loss_sum, correct], [loss.detach() * y.shape[0], (logits.argmax(1) == y).sum()])
            seen += y.shape[0]
            if self.on_steps is not None and (now := time.perf_counter()) - reported_at >= PROGRESS_EVERY_S:
                self.on_steps(step + 1 - reported)
                reported, reported_at = step + 1, now
            if should_stop is not None and step + 1 < end and should_stop():
                self._report_steps(step + 1 - reported)
                return PartialEpoch(epoch, epoch_first, step + 1, float(loss_sum), int(correct), seen)
        self._report_steps(end - reported)
        mean_loss = float(loss_sum) / max(seen, 1)  # the one host sync of the epoch
        if not math.isfinite(mean_loss):
            raise Diverged(f"non-finite training loss ({mean_loss}) in epoch {epoch}, steps {epoch_first}-{end}")
        return EpochStats(epoch, epoch_first, end, end == (epoch + 1) * spe, mean_loss, int(correct) / max(seen, 1), lr,
                          time.perf_counter() - started, seen)

    def _report_steps(self, steps: int) -> None:
        if self.on_steps is not None and steps:
            self.on_steps(steps)

    @torch.no_grad()
    def evaluate(self, loader: DeviceLoader | None = None) -> dict[str, float]:
        """Test accuracy and loss of the current model, BN in eval mode, no augmentation."""
        loader = loader or self.test_loader
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), device=loader.device, dtype=torch.float64)
        correct = torch.zeros((), device=loader.device, dtype=torch.int64)
        for x, y in loader.in_order(self.eval_batch_size):
            with self._autocast():
                logits = self.model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
        self.model.train(was_training)
        n = len(loader)
        return {"accuracy": int(correct) / n, "loss": float(loss_sum) / n}
