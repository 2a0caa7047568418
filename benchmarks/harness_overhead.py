"""The harness's own overhead: planning, reporting and diagnostics against the number of runs.

For each N of ``--runs`` (a multiple of 5), a suite shaped like suites/fashionmnist_quick.yaml
(Fashion-MNIST, LeNet-300-100, global magnitude pruning of the linear layers) with five method entries
(dense; IMP and LRR at fractions 0.5 and 0.2, 4 levels each) and N / 5 seeds. Synthetic records of
the largest suite's runs are written once, through the store as a run writes them
(prunebench.store.RunDir: spec and provenance, metrics.jsonl with 3 epoch rows and one level row per
level, bit-packed masks and signs of every level, result.json with their digests); a run's id does not
depend on the suite's seeds, so each N's results folder holds its resolved suite (suites/) and links to
its N runs' records. Masks are random and nested (a random permutation of the weights, the first
round(density * n) kept), so the mask overlap computes real IoUs. Nothing is trained, no dataset read.

Then times, in this process (CPU seconds by time.process_time, wall by time.perf_counter), through the
command line itself (click's CliRunner, output captured):

- ``plan``: ``bench run SUITE --dry-run --results P`` (load_suite, the suite's runs, plan_suite with
  every run's method script against the planner, the printed plan), where P holds half of the runs
  complete (every other run in suite order: links to the written records) and half pending;
- ``report``: ``bench report R`` (every recorded suite: records read, leaderboard, verdicts, markdown);
- ``diagnostics``: ``bench report R --diagnostics`` minus ``report`` (the per-level diagnostics and
  the mask overlap between methods, which reads every level's masks);

and the start-up of ``bench validate suites/fashionmnist_quick.yaml`` as a subprocess (wall, median
of 3). Imports, and one warm-up pass over a 5-run suite (lazy imports, registries), are timed apart.
Each figure is the median of ``--repeats`` timings; a setting that once took over ``--cap-s`` seconds
is not repeated and not measured at larger N (the table says so). Nothing here asserts a speed.

    python benchmarks/harness_overhead.py --runs 50 200 500 1000 2000 --json results/harness_overhead.json
"""

from __future__ import annotations

import time

_WALL0, _CPU0 = time.perf_counter(), time.process_time()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from prunebench import app, executors, report, status  # noqa: E402,F401  (what the commands import lazily)
from prunebench.api import get_method  # noqa: E402
from prunebench.cli import main as bench  # noqa: E402
from prunebench.data import train_size  # noqa: E402
from prunebench.data.loader import steps_per_epoch  # noqa: E402
from prunebench.masks import pack, prunable_parameters  # noqa: E402
from prunebench.models import build_model  # noqa: E402
from prunebench.planner import PlanSession  # noqa: E402
from prunebench.records import EpochRecord, LevelRecord  # noqa: E402
from prunebench.runner import cpu_name, provenance, run_result  # noqa: E402
from prunebench.spec import ExecSettings, RunSpec  # noqa: E402
from prunebench.store import RunDir, save_resolved_suite  # noqa: E402
from prunebench.suite import Suite, load_suite  # noqa: E402

IMPORT_WALL_S, IMPORT_CPU_S = time.perf_counter() - _WALL0, time.process_time() - _CPU0

ENTRIES = 5  # method entries of the suite: N runs are N / 5 seeds
SUITE = """\
name: overhead
description: Synthetic records for benchmarks/harness_overhead.py (nothing was trained).
notes: ["{seeds} seeds x 5 method entries"]
data:
  dataset: fashion_mnist
  mean: [0.2860]
  std: [0.3530]
model:
  name: lenet_300_100
  init: kaiming_normal_fan_in
train:
  epochs: 3
  batch_size: 128
  optimizer: {{name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 1.0e-4}}
  schedule: {{name: cosine, unit: step}}
prune:
  scorer: magnitude
  allocation: global
  prunable: {{types: [linear]}}
methods:
  - name: dense
  - {{name: imp, levels: 4, fraction: 0.5, rewind: 0ep}}
  - {{name: lrr, levels: 4, fraction: 0.5}}
  - {{name: imp, label: imp_f20, levels: 4, fraction: 0.2, rewind: 0ep}}
  - {{name: lrr, label: lrr_f20, levels: 4, fraction: 0.2}}
seeds: {seed_list}
references:
  numbers:
    - {{method: lrr, sparsity: 75, mean: 88.0, std: 0.3, n: 3, source: "made up"}}
    - {{method: imp, sparsity: 93.75, mean: 87.0, source: "made up", approx: true}}
  claims:
    - {{claim: "lrr >= imp at sparsity >= 50", source: "made up"}}
"""


def write_suite(folder: Path, runs: int) -> Path:
    seeds = runs // ENTRIES
    path = folder / f"overhead_{runs}.yaml"
    path.write_text(SUITE.format(seeds=seeds, seed_list=list(range(seeds))))
    return path


def planned_levels(spec: RunSpec) -> list[LevelRecord]:
    """The level rows the method script would record (target densities, epochs), from the planner."""
    plan = PlanSession(spec, max(steps_per_epoch(train_size(spec.data), spec.train.batch_size, spec.train.drop_last), 1))
    method = get_method(spec.method)
    method().run(plan, method.Params.model_validate(spec.params))
    return plan.levels


def write_records(store: Path, specs: list[RunSpec], prov: dict[str, Any]) -> None:
    """Complete records of every run of ``specs``, written through the store as a training run writes them."""
    model = build_model(specs[0].model, 10, (1, 28, 28))
    params = prunable_parameters(model, specs[0].prune.prunable)
    shapes = {name: p.shape for name, p in params.items()}
    sizes = [p.numel() for p in params.values()]
    total = sum(sizes)
    for spec in specs:
        g = torch.Generator().manual_seed(int(spec.run_id[:8], 16))
        rank = torch.randperm(total, generator=g)
        run = RunDir(store, spec)
        run.start(prov)
        levels, previous = [], None
        for planned in planned_levels(spec):
            keep = round(planned.target_density * total)
            flat = rank < keep
            masks = {n: part.reshape(shapes[n]) for n, part in zip(shapes, flat.split(sizes))}
            signs = {n: torch.rand(shapes[n], generator=g) < 0.5 for n in shapes}
            epochs = 3
            for e in range(epochs):
                trained = planned.epochs_trained - epochs + e + 1
                run.append_metrics(EpochRecord(level=planned.level, epoch=e, steps=469, complete=True, lr=0.05, train_loss=0.3,
                                               train_accuracy=0.9, epochs_trained=trained, time_s=1.5 + 0.01 * e,
                                               train_flops=1e12 * trained).model_dump(mode="json", exclude_none=True))
            layer = {n: float(m.float().mean()) for n, m in masks.items()}
            density = keep / total
            row = LevelRecord(
                level=planned.level, target_density=planned.target_density, density=density, sparsity=1 - density,
                kept=keep, prunable=total, effective_density=density, collapsed_layers=[],
                test_accuracy=0.89 - 0.02 * planned.level + 0.001 * (spec.seed % 7), test_loss=0.31 + 0.01 * planned.level,
                epochs_trained=planned.epochs_trained, train_flops=1e12 * planned.epochs_trained,
                dense_train_flops=1e12 * planned.epochs_trained, inference_flops=2.0 * keep, dense_inference_flops=2.0 * total,
                wall_time_s=4.5 * (planned.level + 1), layer_density=layer, sign_flips_vs_init=0.1 if planned.level else 0.0,
                **({} if previous is None else {"sign_flips_vs_previous": 0.05, "mask_iou_previous": keep / previous}),
            )
            levels.append(row)
            run.append_metrics(row.model_dump(mode="json", exclude_none=True))
            run.save_masks(planned.level, pack(masks))
            run.save_signs(planned.level, pack(signs))
            previous = keep
        run.update_provenance(wall_time_s=4.5 * len(levels))
        run.complete(run_result(spec, levels, levels[-1].epochs_trained, 4.5 * len(levels), "cpu"))


def results_folder(store: Path, suite: Suite, folder: Path, every: int = 1) -> Path:
    """A results folder linking to every ``every``-th run of the suite in ``store`` (the rest: pending),
    with the resolved suite (as `bench run` records it) when it links to them all."""
    folder.mkdir(parents=True)
    specs = suite.runs()
    for spec in specs[::every]:
        (folder / spec.run_id).symlink_to(store / spec.run_id, target_is_directory=True)
    if every == 1:
        save_resolved_suite(folder, app.result_name(suite), specs, app.suite_meta(suite))
    return folder


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def cli(*args: str) -> Callable[[], None]:
    def call() -> None:
        out = CliRunner().invoke(bench, list(args), catch_exceptions=False)
        if out.exit_code != 0:
            raise RuntimeError(f"bench {' '.join(args)} exited {out.exit_code}:\n{out.output[-2000:]}")
    return call


def measure(tmp: Path, store: Path, runs: int, repeats: int, skip: set[str], cap_s: float) -> dict[str, Any]:
    folder = tmp / f"n{runs}"
    folder.mkdir()
    suite_file = write_suite(folder, runs)
    suite = load_suite(suite_file)
    assert len(suite.runs()) == runs, (len(suite.runs()), runs)
    records = results_folder(store, suite, folder / "records")
    plan_dir = results_folder(store, suite, folder / "plan", every=2)
    commands = {
        "plan": cli("run", str(suite_file), "--results", str(plan_dir), "--dry-run"),
        "report": cli("report", str(records)),
        "report_diagnostics": cli("report", str(records), "--diagnostics"),
    }
    row: dict[str, Any] = {"runs": runs, "cpu_s": {}, "wall_s": {}, "capped": [], "timings": {}}
    for name, fn in commands.items():
        if name in skip:
            row["capped"].append(name)
            continue
        cpu, wall = [], []
        for _ in range(repeats):
            c, w = timed(fn)
            cpu.append(c)
            wall.append(w)
            if w > cap_s:
                skip.add(name)  # not repeated, and not measured at larger N
                break
        row["cpu_s"][name], row["wall_s"][name] = statistics.median(cpu), statistics.median(wall)
        row["timings"][name] = {"cpu_s": cpu, "wall_s": wall}
    for kind in ("cpu_s", "wall_s"):
        got = row[kind]
        if "report" in got and "report_diagnostics" in got:
            got["diagnostics"] = got["report_diagnostics"] - got["report"]
    shutil.rmtree(folder)
    return row


def write_store(tmp: Path, runs: int) -> tuple[Path, float]:
    """Records of the runs of the suite of ``runs`` runs (every smaller suite's runs are among them)."""
    store = tmp / "store"
    suite = load_suite(write_suite(tmp, runs))
    started = time.perf_counter()
    write_records(store, suite.runs(), provenance(ExecSettings(device="cpu"), torch.device("cpu")))
    return store, time.perf_counter() - started


def validate_startup(repeats: int = 3) -> dict[str, Any]:
    exe = shutil.which("bench")
    cmd = [exe] if exe else [sys.executable, "-m", "prunebench.cli"]
    cmd += ["validate", "suites/fashionmnist_quick.yaml"]
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        walls.append(time.perf_counter() - started)
        if proc.returncode != 0 or not proc.stdout.startswith("ok:"):
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return {"command": " ".join(["bench" if exe else "python -m prunebench.cli", *cmd[-2:]]), "wall_s": walls,
            "median_s": statistics.median(walls)}


def git_state() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit or 'unknown'}{' (with uncommitted changes)' if dirty else ''}"


def _fmt(row: dict[str, Any], key: str, kind: str = "cpu_s") -> str:
    if key in row[kind]:
        return f"{row[kind][key]:.3f}"
    return "capped" if key in row["capped"] or (key == "diagnostics" and row["capped"]) else ""


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| runs | plan s | report s | diagnostics s | wall s (plan / report / diagnostics) |", "|--:|--:|--:|--:|--:|"]
    for r in rows:
        wall = " / ".join(_fmt(r, k, "wall_s") or "-" for k in ("plan", "report", "diagnostics"))
        lines.append(f"| {r['runs']} | {_fmt(r, 'plan')} | {_fmt(r, 'report')} | {_fmt(r, 'diagnostics')} | {wall} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, nargs="+", default=[50, 200, 500, 1000, 2000], help="suite sizes (multiples of 5)")
    ap.add_argument("--repeats", type=int, default=3, help="timings per setting (the median is shown)")
    ap.add_argument("--cap-s", type=float, default=60.0, help="a setting slower than this once is not repeated, nor run at larger N")
    ap.add_argument("--validate-repeats", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="folder for the records (default: a temporary one)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if any(n <= 0 or n % ENTRIES for n in args.runs):
        ap.error(f"--runs: every value must be a positive multiple of {ENTRIES} (the suite's method entries)")
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
               f"Python {platform.python_version()}, code {git_state()}"
               + ("" if Path(app.__file__).parent == REPO / "benchmark" else f" (prunebench imported from {Path(app.__file__).parent})"))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.tmp) as name:
        tmp = Path(name)
        store, written_s = write_store(tmp, max(args.runs))
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        measure(tmp, store, ENTRIES, 1, set(), math.inf)  # lazy imports, registries, first calls
        warmup = {"cpu_s": time.process_time() - started_cpu, "wall_s": time.perf_counter() - started_wall}
        skip: set[str] = set()
        rows = [measure(tmp, store, n, args.repeats, skip, args.cap_s) for n in sorted(args.runs)]
    validate = validate_startup(args.validate_repeats)
    print(f"machine: {machine}")
    print(f"imports: {IMPORT_CPU_S:.2f} s CPU ({IMPORT_WALL_S:.2f} s wall); warm-up pass (a 5-run suite): "
          f"{warmup['cpu_s']:.2f} s CPU; records of {max(args.runs)} runs written in {written_s:.0f} s; load average "
          f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"CPU seconds, median of {args.repeats}; plan: `bench run --dry-run`, half the runs complete; report: "
          f"`bench report`; diagnostics: `bench report --diagnostics` minus report\n")
    print(table(rows))
    capped = sorted({k for r in rows for k in r["capped"]})
    if capped:
        print(f"\ncapped: {', '.join(capped)} took over {args.cap_s:g} s once, so not repeated and not run at larger N")
    print(f"\n`{validate['command']}` start-up (subprocess wall, median of {len(validate['wall_s'])}): {validate['median_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "settings": vars(args), "machine": machine, "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "git": git_state(), "command": " ".join(["python", *sys.argv]),
            "imports": {"cpu_s": IMPORT_CPU_S, "wall_s": IMPORT_WALL_S}, "warmup": warmup, "records_written_s": written_s,
            "load_average": {"before": load_before, "after": os.getloadavg()}, "rows": rows,
            "validate": validate}, indent=2) + "\n")


if __name__ == "__main__":
    main()
