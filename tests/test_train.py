import math

import pytest
import torch

from prunebench.data import DeviceLoader, load_prepared
from prunebench.masks import allocate, full_masks, prunable_parameters
from prunebench.models import build_model
from prunebench.spec import DataSpec, PrunableSpec, SyntheticSpec, TrainSpec
from prunebench.train import Diverged, Trainer

DATA = DataSpec(dataset="synthetic", synthetic=SyntheticSpec(channels=1, size=8, classes=4, train_size=256, test_size=64))


def trainer(optimizer: dict | None = None, epochs: int = 3, model: str = "lenet_300_100", **train) -> Trainer:
    prepared = load_prepared(DATA)
    torch.manual_seed(0)
    options = {"hidden": [32, 16]} if model == "lenet_300_100" else {"width": 4}
    from prunebench.spec import ModelSpec

    net = build_model(ModelSpec(name=model, options=options), 4, prepared.shape)
    spec = TrainSpec.model_validate({
        "epochs": epochs, "batch_size": 32,
        "optimizer": optimizer or {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "unit": "step"}, **train,
    })
    kw = dict(mean=prepared.mean, std=prepared.std)
    return Trainer(net, DeviceLoader(prepared.train, batch_size=32, **kw), DeviceLoader(prepared.test, batch_size=64, **kw), spec)


def key(epoch: int) -> int:
    return 1000 + epoch


def prune_half(t: Trainer):
    params = prunable_parameters(t.model, PrunableSpec())
    masks = allocate({n: torch.rand(p.shape) for n, p in params.items()}, full_masks(params), 0.5, "global")
    t.set_masks(params, masks)
    return params, masks


@pytest.mark.parametrize("optimizer", [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    {"name": "adam", "lr": 0.01, "weight_decay": 0.05},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
])
def test_pruned_weights_stay_exactly_zero(optimizer):
    t = trainer(optimizer, epochs=6)
    params, masks = prune_half(t)
    before = {n: p.detach().clone() for n, p in params.items()}
    t.train(0, t.total_steps, key, lambda s: None)
    for name, p in params.items():
        assert torch.count_nonzero(p[~masks[name]]) == 0, name
        assert not torch.equal(p[masks[name]], before[name][masks[name]]), f"{name}: kept weights did not train"
    # the optimizer's momentum does not leak into pruned weights after more steps either
    assert all(torch.count_nonzero(p[~masks[n]]) == 0 for n, p in params.items())


def test_segments_equal_one_pass_bitwise():
    """Training [0, k) then [k, T) is the same computation as [0, T): the basis of rewinding and resume."""
    a, b = trainer(), trainer()
    torch.manual_seed(1)
    prune_half(a)
    torch.manual_seed(1)
    prune_half(b)
    a.train(0, a.total_steps, key, lambda s: None)
    b.train(0, 13, key, lambda s: None)  # stops mid-epoch (8 steps per epoch)
    b.train(13, b.total_steps, key, lambda s: None)
    for (na, pa), (nb, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), na


def test_learning_rate_set_per_step_from_the_schedule():
    t = trainer()
    seen = []
    original = t.optimizer.step

    def spy(*args, **kw):
        seen.append(t.optimizer.param_groups[0]["lr"])
        return original(*args, **kw)

    t.optimizer.step = spy
    t.train(3, 11, key, lambda s: None)
    assert seen == [t.lr_at(s) for s in range(3, 11)]


def test_epoch_callback_reports_partial_and_complete_epochs():
    t = trainer()
    stats = []
    t.train(5, 20, key, stats.append)
    assert [(s.epoch, s.first_step, s.last_step, s.complete) for s in stats] == [(0, 5, 8, True), (1, 8, 16, True), (2, 16, 20, False)]


def test_progress_is_reported_between_epochs_and_adds_up_to_the_steps_trained(monkeypatch):
    """A progress bar moves within an epoch (every PROGRESS_EVERY_S), and a stop or an epoch end reports the rest."""
    import prunebench.train as train_module

    t, reported = trainer(), []
    t.on_steps = reported.append
    monkeypatch.setattr(train_module, "PROGRESS_EVERY_S", float("inf"))  # no clock in the test: epoch ends only
    t.train(5, 20, key, lambda stats: reported.append(("epoch", stats.last_step)))
    assert reported == [3, ("epoch", 8), 8, ("epoch", 16), 4, ("epoch", 20)]
    monkeypatch.setattr(train_module, "PROGRESS_EVERY_S", 0.0)
    reported.clear()
    calls = iter(range(100))
    partial = t.train(0, 20, key, lambda stats: None, should_stop=lambda: next(calls) == 10)
    assert partial.step == 12 and reported == [1] * 12  # every step; nothing left to report at the stop


def test_non_finite_loss_raises_diverged():
    t = trainer({"name": "sgd", "lr": 1e30, "momentum": 0.9})
    with pytest.raises(Diverged, match="non-finite training loss"):
        t.train(0, t.total_steps, key, lambda s: None)


def test_evaluate_counts_and_restores_mode():
    t = trainer(model="resnet20")
    t.model.train()
    out = t.evaluate()
    assert t.model.training
    logits = torch.cat([t.model.eval()(x) for x, _ in t.test_loader.in_order(64)])
    expected = (logits.argmax(1) == t.test_loader.labels).float().mean().item()
    assert out["accuracy"] == pytest.approx(expected)


def test_weight_decay_on_weights_only_skips_bn_and_biases():
    t = trainer({"name": "sgd", "lr": 0.1, "weight_decay": 0.1, "weight_decay_on": "weights"}, model="resnet20")
    decayed, plain = t.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])


# ---- the fast path (issue 7): execution settings that may change the last bits, never the masks or the zeros
def rebuilt(t: Trainer, **settings) -> Trainer:
    """A Trainer over ``t``'s model, data and spec with other execution settings."""
    return Trainer(t.model, t.train_loader, t.test_loader, t.spec, **settings)


def trained_pair(model: str, steps: int, **settings) -> tuple[Trainer, Trainer, dict]:
    """The plain path and the path with ``settings``, same init and masks, after ``steps`` steps."""
    plain, fast = trainer(model=model), rebuilt(trainer(model=model), **settings)
    for t in (plain, fast):
        torch.manual_seed(1)
        _, masks = prune_half(t)
        t.train(0, steps, key, lambda s: None)
    return plain, fast, masks


def assert_same_training(plain: Trainer, fast: Trainer, masks: dict, rtol: float, atol: float) -> None:
    names = prunable_parameters(plain.model, PrunableSpec())
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), fast.model.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
        if name in names:
            assert torch.count_nonzero(a[~masks[name]]) == 0 and torch.count_nonzero(b[~masks[name]]) == 0, name
    # the next pruning decision (global magnitude) is the same on both paths
    magnitudes = lambda t: {n: p.detach().abs() for n, p in prunable_parameters(t.model, PrunableSpec()).items()}  # noqa: E731
    again = [allocate(magnitudes(t), masks, 0.25, "global") for t in (plain, fast)]
    assert all(torch.equal(again[0][n], again[1][n]) for n in masks)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_channels_last_trains_like_the_plain_path():
    # The Trainer refuses channels_last on the CPU with oneDNN (wrong gradients, see the next test); with
    # oneDNN off, the native kernels check this module's part: the layouts of model, batches and masks.
    with torch.backends.mkldnn.flags(enabled=False):
        plain, fast, masks = trained_pair("resnet20", 4, channels_last=True)
        evaluations = plain.evaluate(), fast.evaluate()
    conv = fast.model.blocks[0].conv1.weight  # 4 -> 4 channels: the two layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(m.stride() == p.stride() for p, m in zip(*fast._masked))
    assert_same_training(plain, fast, masks, rtol=1e-4, atol=1e-5)
    assert evaluations[1] == pytest.approx(evaluations[0], rel=1e-4)


def test_channels_last_is_refused_on_the_cpu_with_onednn():
    """oneDNN's channels_last weight gradient of 1x1 stride-2 convs with 2-7 input channels is wrong,
    and often a segfault (results/throughput_cpu.md has the reproducer): never run it in-process here."""
    with pytest.raises(ValueError, match="channels_last is a GPU setting"):
        rebuilt(trainer(model="resnet20"), channels_last=True)


def test_compiled_step_matches_eager_and_is_compiled_once_per_architecture():
    from torch._dynamo.utils import counters

    plain, fast, masks = trained_pair("lenet_300_100", 4, compile=True)
    assert_same_training(plain, fast, masks, rtol=1e-4, atol=1e-5)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    another = rebuilt(trainer(), compile=True)  # a new run (new model, optimizer) of the same architecture
    another.train(0, 8, key, lambda s: None)
    assert counters["stats"]["unique_graphs"] == graphs, "the compiled step was not reused"


def test_bf16_autocasts_the_forward_only_and_keeps_pruned_weights_zero():
    with pytest.warns(UserWarning, match="bf16 on the CPU"):
        t = trainer(model="resnet20", precision="bf16")
    params, masks = prune_half(t)
    before = {n: p.detach().clone() for n, p in params.items()}
    dtypes = set()
    first_conv = next(m for m in t.model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, args, out: dtypes.add(out.dtype))
    stats = []
    t.train(0, 12, key, stats.append)
    assert dtypes == {torch.bfloat16}  # the forward really ran under autocast
    assert all(math.isfinite(s.train_loss) for s in stats)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # fp32 master weights
    assert all(v.dtype == torch.float32 for s in t.optimizer.state.values() for v in s.values())
    for name, p in params.items():
        assert torch.count_nonzero(p[~masks[name]]) == 0, name
        assert not torch.equal(p[masks[name]], before[name][masks[name]]), name


def test_step_loop_reads_nothing_back_from_the_device():
    """The only device-to-host reads are the two per epoch (loss, accuracy): none inside the step loop."""
    from torch.utils._python_dispatch import TorchDispatchMode

    reads = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default, torch.ops.aten.nonzero.default,
             torch.ops.aten.item.default}

    class CountReads(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            CountReads.count += func in reads
            return func(*args, **(kwargs or {}))

    t = trainer()
    prune_half(t)
    epochs = []
    with CountReads():
        t.train(3, 21, key, epochs.append)  # 18 steps: a partial, a whole and a partial epoch
    assert len(epochs) == 3 and CountReads.count == 2 * len(epochs)  # float(loss_sum), int(correct) per epoch


def test_build_session_passes_the_execution_settings(tmp_path):
    from prunebench.data import DataCache
    from prunebench.runner import build_session
    from prunebench.spec import ExecSettings
    from prunebench.store import RunDir
    from prunebench.train import compiled_forward_loss, forward_loss
    from tests.conftest import tiny_spec

    spec = tiny_spec(model={"name": "resnet20", "options": {"width": 4}})
    session = lambda **settings: build_session(  # noqa: E731
        spec, RunDir(tmp_path, spec), ExecSettings(device="cpu", **settings), DataCache(), torch.device("cpu"))
    assert session().trainer._forward_loss is forward_loss and session(compile=True).trainer._forward_loss is compiled_forward_loss()
    with pytest.raises(ValueError, match="channels_last"):  # refused on the CPU: it reached the Trainer
        session(channels_last=True)


def dropout_trainer(epochs: int = 2) -> Trainer:
    t = trainer(epochs=epochs)
    t.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                  torch.nn.Linear(32, 4))
    torch.manual_seed(3)
    t.model.apply(lambda m: m.reset_parameters() if isinstance(m, torch.nn.Linear) else None)
    t.reset_optimizer()
    return t


def test_stop_request_then_carry_equals_one_pass_with_dropout():
    """A stop mid-epoch hands back the epoch's sums; finishing it later is bitwise the same as never
    stopping (dropout included, which draws from the global generator)."""
    from prunebench.train import PartialEpoch

    a, b = dropout_trainer(), dropout_trainer()
    stats_a, stats_b = [], []
    a.train(0, a.total_steps, key, stats_a.append)
    calls = {"n": 0}

    def stop_after_five():
        calls["n"] += 1
        return calls["n"] == 5

    partial = b.train(0, b.total_steps, key, stats_b.append, should_stop=stop_after_five)
    assert isinstance(partial, PartialEpoch) and partial.step == 5 and partial.seen == 5 * 32 and stats_b == []
    torch.manual_seed(999)  # whatever happened meanwhile to the global generator
    assert b.train(partial.step, b.total_steps, key, stats_b.append, carry=partial) is None
    assert [(s.epoch, s.first_step, s.last_step, s.train_loss, s.train_accuracy) for s in stats_a] == \
           [(s.epoch, s.first_step, s.last_step, s.train_loss, s.train_accuracy) for s in stats_b]
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


@pytest.mark.parametrize("split", [4, 8, 13])  # mid-epoch (8 steps an epoch), at an epoch end, mid-epoch of the second
def test_a_level_split_into_segments_trains_as_one_pass_with_dropout(split):
    """A level trained as [0, k) then [k, T) (a rewind point, flip_at, an in-training mask update) gives
    bitwise the numbers of one pass, for a model whose dropout draws from the global generator. Before
    the fix a segment starting mid-epoch reseeded the epoch's stream and trained different weights."""
    a, b = dropout_trainer(), dropout_trainer()
    a.train(0, a.total_steps, key, lambda s: None)
    b.train(0, split, key, lambda s: None)
    torch.manual_seed(999)  # whatever runs between two segments (scoring, evaluation) may draw from it
    b.train(split, b.total_steps, key, lambda s: None)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


# ---- step-loop settings (issue 16): the optimizer step's implementation and a compiled update
@pytest.mark.parametrize("optimizer", [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    {"name": "adam", "lr": 0.01, "weight_decay": 0.05},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.05, "weight_decay_on": "weights"},
])
def test_foreach_optimizer_step_is_bitwise_the_per_parameter_loop(optimizer):
    """The default (foreach) gives the loop's numbers exactly: runs recorded before it keep their results."""
    def trained(impl: str) -> dict:
        t = trainer(optimizer, model="resnet20")
        t = Trainer(t.model, t.train_loader, t.test_loader, t.spec, optimizer_impl=impl)
        torch.manual_seed(1)
        prune_half(t)
        t.train(0, 6, key, lambda s: None)
        return t.model.state_dict()

    loop, foreach = trained("loop"), trained("foreach")
    assert all(torch.equal(loop[k], foreach[k]) for k in loop)


def test_fused_optimizer_step_trains_like_the_loop_and_keeps_pruned_weights_zero():
    plain, fast, masks = trained_pair("resnet20", 4, optimizer_impl="fused")
    assert all(g.get("fused") for g in fast.optimizer.param_groups) and not plain.optimizer.param_groups[0].get("fused")
    assert_same_training(plain, fast, masks, rtol=1e-5, atol=1e-6)


def test_compiled_whole_step_matches_eager_and_keeps_pruned_weights_zero():
    plain, fast, masks = trained_pair("lenet_300_100", 6, compile=True, compile_update=True)
    assert all(torch.is_tensor(g["lr"]) for g in fast.optimizer.param_groups)  # the schedule feeds the graph, no recompile
    assert fast.optimizer.param_groups[0]["lr"].item() == pytest.approx(plain.lr_at(5))
    assert_same_training(plain, fast, masks, rtol=1e-4, atol=1e-5)
