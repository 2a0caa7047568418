"""run_one end to end on tiny runs: determinism, resume after an interrupt, failures."""

import json

import pytest
import torch

from prunebench.executors import plan_suite, run_local
from prunebench.runner import run_one
from prunebench.spec import ExecSettings
from prunebench.store import RunDir
from prunebench.train import Trainer
from tests.conftest import tiny_spec

IMP = dict(method="imp", params={"levels": 3, "rewind": "3it", "fraction": 0.4},
           model={"name": "resnet20", "options": {"width": 4}})


def records(tmp_path, spec):
    """(result, metric rows without wall times, packed masks per level) of a complete run."""
    run = RunDir(tmp_path, spec)
    rows = [{k: v for k, v in row.items() if k not in ("wall_time_s", "time_s")} for row in run.metrics()]
    return run.result(), rows, [run.load_masks(k) for k in range(len(run.result().levels))]


def strip_times(result):
    return [level.model_dump(exclude={"wall_time_s", "time_s"}) for level in result.levels]


def test_same_seed_bitwise_identical(tmp_path):
    spec = tiny_spec(**IMP)
    for d in ("a", "b"):
        assert run_one(spec, tmp_path / d, ExecSettings()).status == "complete"
    (ra, ma, ka), (rb, mb, kb) = records(tmp_path / "a", spec), records(tmp_path / "b", spec)
    assert strip_times(ra) == strip_times(rb)
    assert ma == mb  # every epoch's loss, accuracy and lr, printed exactly
    assert all(torch.equal(x[n]["bits"], y[n]["bits"]) for x, y in zip(ka, kb) for n in x)
    other = tiny_spec(**{**IMP, "seed": 1})
    run_one(other, tmp_path / "c", ExecSettings())
    assert strip_times(RunDir(tmp_path / "c", other).result()) != strip_times(ra)


class Interrupt(BaseException):
    """Stands for a kill: not an Exception, so run_one does not record it as a failure."""


def interrupt_after(monkeypatch, epochs: int) -> None:
    """Make training raise Interrupt right after its ``epochs``-th epoch callback (records written)."""
    original = Trainer.train
    seen = {"n": 0}

    def interrupted(self, start, stop, key, on_epoch, *args):
        def counting(stats):
            on_epoch(stats)
            seen["n"] += 1
            if seen["n"] == epochs:
                raise Interrupt

        return original(self, start, stop, key, counting, *args)

    monkeypatch.setattr(Trainer, "train", interrupted)


@pytest.mark.parametrize("after_epochs,checkpoint_every,resumes", [
    # IMP's level 0 is [0, 3it) then [3it, 2ep): epoch callbacks 1 (partial), 2 (epoch 0 ends), 3 (epoch 1 ends)
    (1, 1, 0),  # killed before any checkpoint: starts over
    (3, 1, 1),  # resumes mid-level from the checkpoint at the end of epoch 0
    (3, 0, 0),  # level-end checkpoints only: starts over
    (6, 1, 1),
    (6, 0, 1),  # resumes from the end of level 0
])
def test_resume_after_interrupt_equals_uninterrupted(tmp_path, monkeypatch, after_epochs, checkpoint_every, resumes):
    spec = tiny_spec(**IMP)
    settings = ExecSettings(checkpoint_every=checkpoint_every, checkpoint_interval_s=0)
    run_one(spec, tmp_path / "clean", settings)

    interrupt_after(monkeypatch, after_epochs)
    with pytest.raises(Interrupt):
        run_one(spec, tmp_path / "resumed", settings)
    assert RunDir(tmp_path / "resumed", spec).status() in ("partial", "pending")
    monkeypatch.undo()
    assert run_one(spec, tmp_path / "resumed", settings).status == "complete"
    clean, resumed = records(tmp_path / "clean", spec), records(tmp_path / "resumed", spec)
    assert strip_times(clean[0]) == strip_times(resumed[0])
    assert clean[1] == resumed[1]
    provenance = json.loads((RunDir(tmp_path / "resumed", spec).path / "provenance.json").read_text())
    assert len(provenance.get("resumes", [])) == resumes


def test_completed_run_is_skipped(tmp_path):
    spec = tiny_spec()
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"
    assert run_one(spec, tmp_path, ExecSettings()).status == "skipped"


def test_diverged_run_recorded_and_suite_goes_on(tmp_path):
    bad = tiny_spec(label="bad", train={"optimizer": {"lr": 1e30}})
    good = tiny_spec(label="good")
    outcomes = run_local(plan_suite([bad, good], tmp_path), tmp_path, ExecSettings(), progress=False)
    assert [o.status for o in outcomes] == ["failed", "complete"]
    failure = RunDir(tmp_path, bad).failure()
    assert failure["reason"].startswith("diverged: non-finite training loss")
    # a failed run is not retried unless asked
    again = run_local(plan_suite([bad, good], tmp_path), tmp_path, ExecSettings(), progress=False)
    assert sorted(o.status for o in again) == ["failed", "skipped"]


def test_exception_in_a_run_is_recorded_with_reason(tmp_path, monkeypatch):
    spec = tiny_spec()
    monkeypatch.setattr(Trainer, "evaluate", lambda self, loader=None: 1 / 0)
    outcome = run_one(spec, tmp_path, ExecSettings())
    assert outcome.status == "failed" and "ZeroDivisionError" in outcome.reason
    assert "Traceback" in RunDir(tmp_path, spec).failure()["reason"]


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, monkeypatch):
    spec = tiny_spec(**IMP)
    run_one(spec, tmp_path / "clean", ExecSettings())
    interrupt_after(monkeypatch, 4)
    with pytest.raises(Interrupt):
        run_one(spec, tmp_path / "r", ExecSettings(checkpoint_interval_s=0))
    latest = RunDir(tmp_path / "r", spec).path / "checkpoints" / "latest.pt"
    assert (latest.parent / "previous.pt").exists()
    latest.write_bytes(latest.read_bytes()[:100])  # torn write
    monkeypatch.undo()
    assert run_one(spec, tmp_path / "r", ExecSettings()).status == "complete"
    assert records(tmp_path / "clean", spec)[1] == records(tmp_path / "r", spec)[1]


def test_corrupt_result_json_is_not_complete(tmp_path):
    spec = tiny_spec()
    run_one(spec, tmp_path, ExecSettings())
    run = RunDir(tmp_path, spec)
    (run.path / "result.json").write_text('{"run_id": "' + spec.run_id + '", "lev')
    assert run.status() != "complete"
    assert run_one(spec, tmp_path, ExecSettings()).status == "complete"


def test_checkpoint_interval_limits_mid_level_checkpoints(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(RunDir, "save_checkpoint", lambda self, state: saved.append((state["op"], state["step"])))
    spec = tiny_spec(method="lrr", params={"levels": 1})
    run_one(spec, tmp_path / "a", ExecSettings(checkpoint_every=1, checkpoint_interval_s=0))
    # LRR's operations: 0 train(stop=rewind), 1 train, 2 record, 3 score, 4 prune, 5 set_signs, 6 flip_signs,
    # 7 train, 8 record; a checkpoint names the operation to resume (and the step inside a train)
    # mid-level after epoch 0, every level end, and before training what was scored (the interval allowing)
    assert saved == [(1, 8), (3, None), (7, 0), (7, 8), (9, None)]
    saved.clear()
    run_one(spec, tmp_path / "b", ExecSettings(checkpoint_every=1, checkpoint_interval_s=3600))
    assert saved == [(3, None), (9, None)]  # level ends only


def test_provenance_names_the_plugin_a_run_used(tmp_path, monkeypatch):
    from importlib import metadata

    from prunebench import api
    from prunebench.runner import plugin_versions

    assert plugin_versions(tiny_spec(method="lrr")) == {}  # built-ins only

    def outside(ctx):
        return {name: p.detach().abs() for name, p in ctx.params.items()}

    outside.__module__ = "torch.nn.outside"  # as if an installed third-party distribution provided it
    monkeypatch.setitem(api.SCORERS._entries, "outside", outside)
    spec = tiny_spec(method="lrr", params={"levels": 1}, prune={"scorer": "outside"})
    assert plugin_versions(spec) == {"torch": metadata.version("torch")}
    run_one(spec, tmp_path, ExecSettings())
    assert json.loads((RunDir(tmp_path, spec).path / "provenance.json").read_text())["plugins"] == {"torch": metadata.version("torch")}


def test_step_loop_settings_reach_the_trainer_and_provenance(tmp_path):
    import torch

    from prunebench.runner import check_settings, configure_torch, cudnn_benchmark

    spec = tiny_spec()
    settings = ExecSettings(threads=1, optimizer_impl="fused", cudnn_benchmark=False, async_checkpoints=False)
    assert run_one(spec, tmp_path, settings).status == "complete"
    recorded = json.loads((RunDir(tmp_path, spec).path / "provenance.json").read_text())["settings"]
    assert (recorded["optimizer_impl"], recorded["cudnn_benchmark"], recorded["async_checkpoints"]) == ("fused", False, False)
    assert cudnn_benchmark(ExecSettings()) and not cudnn_benchmark(ExecSettings(deterministic=True))
    configure_torch(ExecSettings(threads=1))
    assert torch.backends.cudnn.benchmark  # autotuning unless deterministic
    configure_torch(ExecSettings(threads=1, deterministic=True))
    assert not torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(False)
    with pytest.raises(ValueError, match="--cudnn-benchmark with --deterministic"):
        check_settings(ExecSettings(cudnn_benchmark=True, deterministic=True))


def test_provenance_records_the_cpu_model_its_vector_extensions_and_torchs_kernels(tmp_path):
    from prunebench.report.aggregate import provenance_line
    from prunebench.runner import cpu_info, provenance

    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw aes\n")
    info = cpu_info(fake)
    assert info == {"model": "AMD EPYC 9B14", "vector_extensions": ["avx", "avx2", "avx512bw", "avx512f", "fma", "sse4_2"],
                    "torch_capability": torch.backends.cpu.get_cpu_capability()}
    recorded = provenance(ExecSettings(), torch.device("cpu"))
    assert recorded["cpu"]["torch_capability"] in ("DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "VSX", "SVE256")
    run = RunDir(tmp_path / "r", tiny_spec())
    run.start(recorded)
    assert f"{recorded['cpu']['torch_capability']} kernels, torch threads:" in provenance_line([run])
