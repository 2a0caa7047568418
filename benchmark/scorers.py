"""Built-in scorers: a score per prunable weight, higher means keep.

Every scorer reads the model as it is (at initialisation, after training, after a rewind) and
changes nothing: no weight, buffer, BN running statistic or ``.grad`` is written (gradients come
from ``torch.autograd.grad``; SynFlow works on a copy), and the model's train/eval mode is restored.
Scorers that run the model do so with BN (and dropout) in eval mode, as the SynFlow authors' code
does for every scorer (``prune_loop``: ``model.eval()``), so scoring never updates BN statistics and
a batch of 100 examples is normalised by the running statistics, not by its own.

Data come only from ``ctx.batches`` (training batches keyed by the run's seed and the operation) and
randomness only from ``ctx.generator``, so a score is a pure function of the run's seed and state.

Scorers prune nothing; a method that prunes iteratively (SynFlow's 100 rounds) calls score and
prune once per round (see ``methods/pai.py``), so every scorer composes with every allocation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.api import ScoreContext, register_scorer
from prunebench.masks import Scores


@register_scorer("magnitude")
def magnitude(ctx: ScoreContext) -> Scores:
    """|w|: the weights' current magnitudes (at initialisation, after training, or after a rewind)."""
    return {name: p.detach().abs().clone() for name, p in ctx.params.items()}


@register_scorer("random")
def random(ctx: ScoreContext) -> Scores:
    """Uniform random scores from the session's keyed generator: random pruning, reproducible."""
    return {name: torch.rand(p.shape, generator=ctx.generator).to(p.device) for name, p in ctx.params.items()}


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """BN and dropout in eval mode for the block; the caller's train/eval mode (per module) afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


def _loss_batches(ctx: ScoreContext, examples: int | None) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], int]:
    """The scoring batches (``examples`` training examples, default 10 per class) and their count."""
    n = examples or 10 * ctx.num_classes
    batches = list(ctx.batches(n))
    return batches, sum(len(y) for _, y in batches)


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int, temperature: float = 1.0) -> torch.Tensor:
    """This batch's share of the mean cross-entropy over all ``n`` scoring examples."""
    return F.cross_entropy(model(x) / temperature, y, reduction="sum") / n


def _loss_gradient(ctx: ScoreContext, batches: list, n: int, temperature: float = 1.0) -> list[torch.Tensor]:
    """d(mean loss)/dw for every prunable weight, summed over batches (any batch size gives the same)."""
    weights = list(ctx.params.values())
    total = [torch.zeros_like(w) for w in weights]
    for x, y in batches:
        grads = torch.autograd.grad(_batch_loss(ctx.model, x, y, n, temperature), weights)
        total = [t + g for t, g in zip(total, grads)]
    return total


@register_scorer("snip")
def snip(ctx: ScoreContext, examples: int | None = None) -> Scores:
    """SNIP (Lee et al. 2019): |dL/dw * w|, the loss's sensitivity to removing each weight.

    L is the mean cross-entropy over ``examples`` random training examples (default 10 per class:
    100 for CIFAR-10, as in the SynFlow authors' protocol; they take them at random, not balanced per
    class). The authors' ``|dL/dmask|`` equals this, and their normalisation by the sum changes no ranking.
    """
    with eval_mode(ctx.model):
        batches, n = _loss_batches(ctx, examples)
        grads = _loss_gradient(ctx, batches, n)
    return {name: (g * w).detach().abs() for (name, w), g in zip(ctx.params.items(), grads)}


@register_scorer("grasp")
def grasp(ctx: ScoreContext, examples: int | None = None, temperature: float = 200.0) -> Scores:
    """GraSP (Wang, Zhang & Grosse 2020): keep score w * (H g), the negation of the paper's S = -w * (H g).

    g is the gradient of the loss L (mean cross-entropy of the logits divided by ``temperature``, 200 in
    both the authors' and the SynFlow code) over ``examples`` training examples, H its Hessian, and
    H g a Hessian-vector product: the gradient of (g_stopped . dL/dw).

    Which weights GraSP removes: removing weight q changes the gradient norm g.g by about
    -2 w_q (H g)_q = 2 S_q, and the paper removes the weights with the highest S (their removal
    reduces gradient flow least, or raises it). The authors' code (alecwangcq/GraSP, pruner/GraSP.py)
    computes ``-theta * Hg``, takes the top ``ratio`` of it by ``torch.topk`` as the threshold and keeps
    ``score <= threshold``; the SynFlow code (Pruners/pruners.py) computes ``Hg * theta`` and prunes
    ``score <= threshold``. Both keep the weights with the highest w * (H g), which we return, so that
    higher means keep. Differences from the original GraSP: no re-initialisation of linear layers
    with Xavier before scoring (the original code's ``reinit``; the SynFlow code does not do it either),
    and random rather than class-balanced examples, as in the SynFlow protocol.
    """
    weights = list(ctx.params.values())
    with eval_mode(ctx.model):
        batches, n = _loss_batches(ctx, examples)
        g = [t.detach() for t in _loss_gradient(ctx, batches, n, temperature)]
        hg = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            grads = torch.autograd.grad(_batch_loss(ctx.model, x, y, n, temperature), weights, create_graph=True)
            dot = sum((gi * di).sum() for gi, di in zip(g, grads))
            hg = [acc + h for acc, h in zip(hg, torch.autograd.grad(dot, weights))]
    return {name: (w * h).detach() for (name, w), h in zip(ctx.params.items(), hg)}


@register_scorer("synflow")
def synflow(ctx: ScoreContext) -> Scores:
    """SynFlow (Tanaka et al. 2020), one round: |dR/dw * w| on the network made positive, R = sum of its output.

    On a float64 copy: every floating-point parameter and buffer replaced by its absolute value (the
    authors' ``linearize``: ``abs_()`` of every state_dict entry, biases included, so they stay in the
    flow), pruned weights zeroed, eval mode, one all-ones input of the data's shape. No data are used
    beyond that shape. BN in eval mode with absolute values computes |gamma| (x - |mean|) / sqrt(|var| + eps)
    + |beta|: at initialisation (mean 0, var 1) a positive per-channel scale and shift, which keeps the
    network a positive map as the method needs; after training it subtracts |running mean|, exactly as
    the authors' code does (we reproduce it rather than repair it).

    float64 is a deliberate deviation from the authors' float32 (their ``model.double()`` is commented
    out): the products of |w| over depth span many orders of magnitude and float32 ties or flushes the
    smallest scores. The iterative schedule (100 rounds, density^(k/100)) belongs to the caller.
    """
    net = copy.deepcopy(ctx.model).double().eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
        params = dict(net.named_parameters())
        for name, mask in ctx.masks.items():
            params[name].mul_(mask.to(params[name].device))
    x, _ = next(iter(ctx.batches(1)))
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    weights = [params[name] for name in ctx.params]
    grads = torch.autograd.grad(net(ones).sum(), weights)
    return {name: (g * w).detach().abs() for name, g, w in zip(ctx.params, grads, weights)}


@register_scorer("mask_of")
def mask_of(ctx: ScoreContext, level: int | None = None) -> Scores:
    """The ``masks`` producer's mask at this level (or at ``level``) as scores (1 kept, 0 pruned):
    pruning to the producer's density then keeps exactly its mask. For "IMP with the LRR mask" and
    the like (the suite entry names the producer, ``from: {masks: lrr}``, and prunes on its schedule),
    and for cyclic training of the mask of one of the producer's levels (``mask_level``)."""
    if "masks" not in ctx.producers:
        raise ValueError("scorer mask_of needs a masks producer: give the suite entry `from: {masks: LABEL}`")
    masks = ctx.producers["masks"].masks(ctx.level if level is None else level)
    return {name: masks[name].to(device=p.device, dtype=torch.float32) for name, p in ctx.params.items()}
