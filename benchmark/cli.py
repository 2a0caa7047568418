"""The ``bench`` command line.

Exit codes: 0 success; 1 a result deviates from its reference or a claim fails (`check`, `run
--check`); 2 a usage or suite error (click's own usage errors are 2 as well); 3 some runs of the
suite failed or are missing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import get_args

import click

from prunebench.spec import ExecSettings, OptimizerImpl

EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
DEFAULT_RESULTS = "runs"
MARKDOWN_HELP = "print the full markdown leaderboard to the terminal too (pipes and files always get it)"


def _leaderboard(sr, markdown: bool, results: Path | None = None) -> str:
    """The full markdown for pipes (and with --markdown); a table that fits the terminal for a person."""
    from prunebench.report import suite_markdown, terminal_summary

    if markdown or not _terminal():
        return suite_markdown(sr)
    import shutil

    hint = f"(full markdown: bench report {results} --markdown, or -o DIR for files)\n" if results else ""
    return terminal_summary(sr, width=min(120, shutil.get_terminal_size().columns)) + hint


def _terminal() -> bool:
    return sys.stdout.isatty()


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _load(path: str, reduced: bool, overrides: tuple[str, ...]):
    from prunebench.suite import SuiteError, load_suite

    if not Path(path).is_file():
        _fail(f"error: {path}: no such suite file{_closest_suite(path)}")
    try:
        return load_suite(path, reduced=reduced, overrides=overrides)
    except SuiteError as e:
        _fail(f"error: invalid suite\n{e}")


def _closest_suite(path: str) -> str:
    """'; did you mean ...?' with the closest suite file beside it or under suites/ (or nothing)."""
    from prunebench.registry import closest

    given = Path(path)
    candidates = {str(c) for folder in {given.parent, Path("suites")} if folder.is_dir() for c in folder.glob("*.yaml")}
    close = closest(str(given), sorted(candidates))
    return f"; did you mean {close}?" if close else ""


def _parse_only(only: tuple[str, ...]) -> dict[str, set[str]]:
    """('method=lrr,seed=0', 'method=imp') -> {'method': {'lrr', 'imp'}, 'seed': {'0'}}: values of one key
    are alternatives, keys must all match; keys: method, label, seed, run."""
    selection: dict[str, set[str]] = {}
    for part in filter(None, ",".join(only).split(",")):
        if "=" not in part:
            _fail(f"error: --only expects KEY=VALUE[,KEY=VALUE...], got {part!r}")
        key, value = part.split("=", 1)
        if key not in ("method", "label", "seed", "run"):
            _fail(f"error: --only key {key!r} is not one of method, label, seed, run")
        selection.setdefault(key, set()).add(value)
    return selection


def _check_selection(selection: dict[str, set[str]], specs) -> None:
    """Every --only value must name something of the suite (a typo would silently select nothing)."""
    from prunebench.registry import closest

    known = {"method": {s.method for s in specs}, "label": {s.label for s in specs}, "seed": {str(s.seed) for s in specs},
             "run": {s.run_id for s in specs}}
    for key, values in selection.items():
        for value in sorted(values - known[key]):
            close = closest(value, sorted(known[key]))
            hint = f"; did you mean {key}={close}?" if close else f"; the suite has {', '.join(sorted(known[key])[:12])}"
            _fail(f"error: --only {key}={value}: no run of the suite has {key} {value!r}{hint}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="prunebench", prog_name="bench", message="%(prog)s (prunebench) %(version)s")
def main() -> None:
    """prunebench: reproducible neural-network pruning benchmarks."""
    from prunebench.messages import say_warnings

    say_warnings()


def _invocation_fault(e: Exception, results: Path) -> None:
    """A fault of the whole command (data missing or unreadable, records unwritable): one line, exit 2."""
    from prunebench.store import SuiteClash

    if isinstance(e, OSError) and not isinstance(e, SuiteClash):
        where = f" {e.filename}" if e.filename else ""
        _fail(f"error: cannot write the records in {results}/:{where}: {e.strerror or e}")
    _fail(f"error: {e}")


class GroupedOptions(click.Command):
    """A command whose --help lists its options under headings (``groups``: heading -> parameter names)."""

    def __init__(self, *args, groups: dict[str, list[str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups = groups

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx) if isinstance(p, click.Option)}
        for heading, names in [*self.groups.items(), ("Other options", [n for n in records if not any(
                n in names for names in self.groups.values())])]:
            rows = [records[n] for n in names if records.get(n)]
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)


RUN_OPTIONS = {
    "Core options": ["results", "data_root", "reduced", "overrides", "only", "dry_run", "retry_failed", "rerun", "check_after",
                     "markdown", "no_progress"],
    "Training settings": ["device", "threads", "deterministic", "compile_step", "compile_update", "channels_last",
                          "optimizer_impl", "cudnn_benchmark", "sync_checkpoints", "checkpoint_every", "checkpoint_interval",
                          "share_prefixes"],
    "Scale out (one machine, or machines sharing --results)": ["gpus", "runs_per_gpu", "jobs", "shard"],
    "SLURM (--executor slurm: one job array of the runs to do)": ["executor_kind", "partition", "time_limit",
                                                                   "array_parallelism", "slurm_gpus", "slurm_cpus"],
}
RUN_EXAMPLES = """\b
Examples:
  bench run suites/fashionmnist_quick.yaml --reduced      # the CI profile: 6 runs, about 15 s on 2 CPU cores
  bench run suites/cifar10_resnet18.yaml --gpus 0,1 --only method=imp,method=lrr --check
                                                          # IMP and LRR, a worker per GPU, then the reference check
"""


@main.command(cls=GroupedOptions, groups=RUN_OPTIONS, epilog=RUN_EXAMPLES)
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--results", default=DEFAULT_RESULTS, show_default=True, type=click.Path(file_okay=False), help="run records directory")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="where datasets are looked for first")
@click.option("--reduced", is_flag=True, help="apply the suite's reduced (CI) profile")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="override a suite value (repeatable)")
@click.option("--dry-run", is_flag=True, help="show the runs, their status and the epochs to train; train nothing")
@click.option("--only", multiple=True, metavar="KEY=V,...", help="run a subset: method=, label=, seed=, run= (repeatable: values add up)")
@click.option("--retry-failed", is_flag=True, help="run again runs that failed before")
@click.option("--rerun", is_flag=True, help="redo selected runs even if complete (old records are kept, renamed)")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="torch threads (bitwise reproducibility holds per thread count)")
@click.option("--checkpoint-every", default=1, show_default=True, type=int,
              help="checkpoint every N epochs inside a level (0: level ends only)...")
@click.option("--checkpoint-interval", default=120.0, show_default=True, type=float,
              help="...but at most once per this many seconds (level ends always)")
@click.option("--deterministic", is_flag=True, help="torch deterministic algorithms (slower on GPU)")
@click.option("--compile", "compile_step", is_flag=True, help="torch.compile the train step (faster ResNets; not bitwise equal to eager)")
@click.option("--compile-update", is_flag=True,
              help="torch.compile the optimizer step and mask multiply too (with --compile: the whole step)")
@click.option("--channels-last", is_flag=True, help="NHWC memory format (GPU only: refused on the CPU, see results/throughput_cpu.md)")
@click.option("--optimizer-impl", type=click.Choice(get_args(OptimizerImpl)), default="foreach", show_default=True,
              help="the optimizer step: foreach (bitwise the loop's numbers), fused (Adam's last bits differ), loop")
@click.option("--cudnn-benchmark/--no-cudnn-benchmark", default=None, help="cuDNN autotuning [default: on unless --deterministic]")
@click.option("--sync-checkpoints", is_flag=True, help="write checkpoints in the training thread (default: a background thread)")
@click.option("--share-prefixes/--no-share-prefixes", default=True, show_default=True,
              help="train a state several runs reach (e.g. one seed's dense level 0) once, in RESULTS/prefixes, and start "
                   "the others from it: bitwise the same numbers")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--markdown", is_flag=True, help=MARKDOWN_HELP)
@click.option("--check", "check_after", is_flag=True,
              help="then check the results against the suite's references (exit codes of `bench check`)")
@click.option("--gpus", default=None, metavar="0,1,...", help="one worker process per listed GPU")
@click.option("--runs-per-gpu", default=1, show_default=True, type=click.IntRange(min=1),
              help="runs sharing each GPU at once, a worker process each (small models on a large GPU); "
                   "without --gpus: every visible GPU")
@click.option("--jobs", default=None, type=click.IntRange(min=1), help="this many CPU worker processes")
@click.option("--shard", default=None, metavar="i/N", help="only the runs of shard i of N (machines sharing --results)")
@click.option("--executor", "executor_kind", type=click.Choice(["local", "slurm"]), default="local", show_default=True)
@click.option("--partition", default=None, help="SLURM partition")
@click.option("--time", "time_limit", default="24:00:00", show_default=True, help="SLURM time limit per run")
@click.option("--array-parallelism", default=64, show_default=True, type=int, help="SLURM tasks running at once")
@click.option("--slurm-gpus", default=1, show_default=True, type=int, help="GPUs per SLURM task")
@click.option("--slurm-cpus", default=8, show_default=True, type=int, help="CPU cores per SLURM task")
def run(suite, results, data_root, reduced, overrides, dry_run, only, retry_failed, rerun, device, threads,
        checkpoint_every, checkpoint_interval, deterministic, compile_step, compile_update, channels_last, optimizer_impl,
        cudnn_benchmark, sync_checkpoints, share_prefixes, no_progress, markdown, check_after, gpus, runs_per_gpu, jobs, shard,
        executor_kind, partition, time_limit, array_parallelism, slurm_gpus, slurm_cpus) -> None:
    """Run SUITE (YAML): every method x sweep point x seed, skipping finished runs, then print the leaderboard."""
    from prunebench.executors import cpu_workers, gpu_workers, parse_shard, plan_suite, select
    from prunebench.messages import say_levels

    say_levels()
    loaded = _load(suite, reduced, overrides)
    try:
        shard_of = parse_shard(shard) if shard else None
        if runs_per_gpu > 1 and not gpus:
            gpus = _visible_gpus()
        workers = gpu_workers(gpus, runs_per_gpu) if gpus else cpu_workers(jobs) if jobs and jobs > 1 else None
    except ValueError as e:
        _fail(f"error: {e}")
    selection = _parse_only(only)
    _check_selection(selection, loaded.runs())
    specs = select(loaded.runs(), selection, shard_of)
    if not specs:
        _fail(f"error: --only/--shard select none of the suite's {len(loaded.runs())} runs")
    results_dir = Path(results)
    try:
        if rerun and not dry_run:
            _set_aside(results_dir, specs)
    except OSError as e:
        _invocation_fault(e, results_dir)
    plans = plan_suite(specs, results_dir)
    settings = ExecSettings(device=device, threads=threads, data_root=data_root, checkpoint_every=checkpoint_every,
                            checkpoint_interval_s=checkpoint_interval, deterministic=deterministic, compile=compile_step,
                            compile_update=compile_update, channels_last=channels_last, optimizer_impl=optimizer_impl,
                            cudnn_benchmark=cudnn_benchmark, async_checkpoints=not sync_checkpoints, share_prefixes=share_prefixes)
    if executor_kind == "local" and not dry_run:
        from prunebench.runner import check_settings

        try:
            check_settings(settings, gpus=len({w.env["CUDA_VISIBLE_DEVICES"] for w in workers}) if gpus else 0)
        except ValueError as e:
            _fail(f"error: {e}")
    if executor_kind == "slurm":
        _run_slurm(loaded, plans, results_dir, settings, dry_run, retry_failed, partition, time_limit, array_parallelism,
                   slurm_gpus, slurm_cpus, overrides)
        return
    if dry_run:
        _print_plan(plans, retry_failed, results_dir, settings)
        if loaded.spec.analyses is not None:
            from prunebench.analyses import pending

            todo = len(pending(loaded.runs(), loaded.spec.analyses, results_dir))
            click.echo(f"Analyses (analyses:): {todo} run{'s' if todo != 1 else ''} to measure once the runs are complete.")
        return
    from prunebench.data import DatasetError
    from prunebench.executors import require_data

    try:
        require_data(plans, data_root)
    except DatasetError as e:
        _invocation_fault(e, results_dir)
    click.echo(plan_line(loaded.name, plans, retry_failed, results_dir, settings, workers), err=True)
    from prunebench import app  # the rest of the harness (pandas, the report) after the plan line
    from prunebench.runner import InvocationError, stop_on_signals
    from prunebench.store import SuiteClash

    started = time.perf_counter()
    try:
        with stop_on_signals() as stop:  # SIGINT/SIGTERM/SIGUSR1: checkpoint at the next step, then exit 3
            done = app.execute_suite(loaded, plans, results_dir, settings, overrides=overrides, workers=workers,
                                     retry_failed=retry_failed, progress=not no_progress, should_stop=stop.requested)
    except (DatasetError, InvocationError, SuiteClash, OSError) as e:
        _invocation_fault(e, results_dir)
    click.echo(_leaderboard(done.results, markdown, results_dir))
    if any(o.status == "interrupted" for o in done.outcomes):
        click.echo("interrupted: a checkpoint was written; run the same command again to resume", err=True)
    click.echo(f"{outcome_summary(done.outcomes)}; {time.perf_counter() - started:.1f} s; records in {results_dir}/", err=True)
    if any(done.analysed):
        measured, waiting, failed = done.analysed
        click.echo(f"analyses: {measured} run{'s' if measured != 1 else ''} measured" +
                   (f", {waiting} waiting for records (theirs or their next seed's)" if waiting else "") +
                   (f", {failed} failed (see the warnings; the next bench run tries again)" if failed else ""), err=True)
    if check_after:
        sys.exit(_check_exit(done.results, strict=False))
    if done.incomplete:
        sys.exit(EXIT_INCOMPLETE)


def _visible_gpus() -> str:
    """'0,1,...' for every CUDA GPU this process sees (--runs-per-gpu without --gpus)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        raise ValueError(f"--runs-per-gpu: this machine has no CUDA GPU (torch {torch.__version__})")
    return os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(str(i) for i in range(count))


def plan_line(name: str, plans, retry_failed: bool, results_dir: Path, settings: ExecSettings, workers) -> str:
    """What this invocation will do, in one line, before anything slow starts: 'bench run fashionmnist_quick:
    6 runs, 4 to do, 2 done; 60 epochs to train; records in runs/; device cpu, 2 threads'."""
    import torch

    from prunebench.cpus import usable_cpus
    from prunebench.executors import prefix_sharing, to_run

    todo, _ = to_run(plans, retry_failed)
    done = sum(p.status == "complete" for p in plans)
    failed = sum(p.status == "failed" for p in plans) if not retry_failed else 0
    if workers:
        where = f"{len(workers)} workers ({', '.join(sorted({w.device for w in workers}))}"
        where += f", {workers[0].threads} threads each)" if workers[0].threads else ")"
    else:
        device = settings.device if settings.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
        where = f"device {device}, {settings.threads or usable_cpus()[0]} threads"
    counts = f"{len(plans)} run{'s' if len(plans) != 1 else ''}, {len(todo)} to do, {done} done"
    counts += f", {failed} failed before" if failed else ""
    epochs = f"{sum(p.epochs for p in todo):g} epochs to train"
    saved = prefix_sharing(todo, settings).epochs_saved
    epochs += f" ({saved:g} of them loaded from shared prefixes)" if saved else ""
    return f"bench run {name}: {counts}; {epochs}; records in {results_dir}/; {where}"


def outcome_summary(outcomes) -> str:
    """'6 run(s): 2 completed, 1 interrupted (checkpointed), 1 not started, 2 already complete': each
    run counted as what happened to it in this invocation."""
    kinds = {"completed": 0, "failed": 0, "interrupted (checkpointed)": 0, "not started": 0, "blocked": 0,
             "held by another process": 0, "already complete": 0, "failed before (--retry-failed)": 0}
    for o in outcomes:
        kind = {"complete": "completed", "skipped": "already complete", "blocked": "blocked",
                "locked": "held by another process"}.get(o.status)
        if o.status == "failed":
            kind = "failed before (--retry-failed)" if o.reason.startswith("failed earlier") else "failed"
        elif o.status == "interrupted":
            kind = "not started" if o.reason.startswith("not started") else "interrupted (checkpointed)"
        kinds[kind] += 1
    return f"{len(outcomes)} run(s): " + ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)


def _run_slurm(loaded, plans, results_dir, settings, dry_run, retry_failed, partition, time_limit, array_parallelism,
               gpus, cpus, overrides) -> None:
    """Submit the incomplete runs as one SLURM job array (or, with --dry-run, show its sbatch file)."""
    from prunebench import app
    from prunebench.executors import to_run
    from prunebench.slurm import make_executor, sbatch_script, slurm_parameters, submit
    from prunebench.store import save_resolved_suite

    todo, _ = to_run(plans, retry_failed)
    try:
        params = slurm_parameters(partition, time_limit, array_parallelism, gpus, cpus, job_name=f"bench-{loaded.name}")
    except ValueError as e:
        _fail(f"error: {e}")
    settings = settings.model_copy(update={"device": "cuda" if gpus else "cpu", "threads": settings.threads or cpus})
    folder = results_dir / "slurm"
    if dry_run:
        _print_plan(plans, retry_failed, results_dir, settings.model_copy(update={"share_prefixes": False}))  # tasks share none
        click.echo("\nsbatch file of the job array:\n" + sbatch_script(params, max(len(todo), 1), folder))
        return
    if not todo:
        click.echo("nothing to submit: every selected run is complete (or failed; --retry-failed)")
        return
    save_resolved_suite(results_dir, app.result_name(loaded, overrides), loaded.runs(), app.suite_meta(loaded, overrides))
    jobs = submit(todo, results_dir, settings, make_executor(folder, params))
    click.echo(f"submitted {len(jobs)} runs as SLURM job array {jobs[0].job_id.split('_')[0]}; "
               f"follow with `bench status {results_dir}`, then `bench report {results_dir}`")


def _check_exit(sr, strict: bool) -> int:
    """0 all reproduced; 1 a deviation or failed claim (or, with strict, an approximate cell out of band);
    3 runs missing or failed (when nothing deviates). Says which on stderr."""
    bad = [v for v in sr.verdicts if v.failed or (strict and v.verdict == "out of band")]
    bad += [c for c in sr.claims if c.failed]
    missing = sum(status != "complete" for status in sr.statuses.values())
    code = EXIT_REGRESSION if bad else EXIT_INCOMPLETE if missing else 0
    click.echo({0: "check: all reproduced", EXIT_REGRESSION: "check: REGRESSION (a deviation or a failed claim)",
                EXIT_INCOMPLETE: f"check: {missing} run(s) missing or failed"}[code], err=True)
    return code


def _set_aside(results: Path, specs) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for spec in specs:
        path = results / spec.run_id
        if path.exists():
            path.rename(results / f"{spec.run_id}.replaced-{stamp}")


def _print_plan(plans, retry_failed: bool, results_dir: Path, settings: ExecSettings | None = None) -> None:
    from tabulate import tabulate

    from prunebench.executors import prefix_sharing, to_run
    from prunebench.status import format_duration, measured_seconds_per_epoch

    settings = settings or ExecSettings()
    todo, _ = to_run(plans, retry_failed)
    to_do = {p.spec.run_id for p in todo}  # by id: runs of one id share their records, so to_run takes all or none
    sharing = prefix_sharing(todo, settings)
    rows = [[p.spec.label, p.spec.seed, p.spec.run_id, p.status, p.levels, f"{p.epochs:g}",
             f"{sharing.saved.get(p.spec.run_id, 0.0):g}", "run" if p.spec.run_id in to_do else "skip"] for p in plans]
    # alignment given, so tabulate does not infer column types cell by cell (0.27 s of a 2,000-run plan)
    click.echo(tabulate(rows, headers=["method", "seed", "run id", "status", "levels", "epochs", "shared", "action"],
                        tablefmt="simple", disable_numparse=True,
                        colalign=("left", "right", "left", "left", "right", "right", "right", "left")))
    epochs, saved = sum(p.epochs for p in todo), sharing.epochs_saved
    click.echo(f"\n{len(todo)} of {len(plans)} runs to execute, {epochs:g} epochs to train "
               f"({sum(p.epochs for p in plans if p.status == 'complete'):g} epochs already done).")
    if settings.share_prefixes:
        click.echo(f"Prefix sharing: {saved:g} of these epochs are loaded from states another run trains first "
                   f"({len(sharing.keys)} shared states); {epochs - saved:g} epochs trained (--no-share-prefixes: {epochs:g}).")
    epochs -= saved
    seconds = measured_seconds_per_epoch(results_dir, [p.spec for p in plans])
    if seconds is None:
        click.echo("Device time: unknown until an epoch of this suite has been timed (see results/throughput_*.md for rates).")
    elif epochs:
        click.echo(f"Device time: about {format_duration(epochs * seconds)} ({seconds:.2f} s per epoch measured here); "
                   "divide by the number of devices.")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files) -> None:
    """Check suites (and their reduced profiles) without running anything."""
    from prunebench.suite import SuiteError, load_suite

    bad = 0
    for path in files:
        try:
            suite = load_suite(path)
            line = f"ok: {path}: {len(suite.runs())} runs"
            if suite.spec.reduced:
                line += f"; reduced profile: {len(load_suite(path, reduced=True).runs())} runs"
            click.echo(line)
        except SuiteError as e:
            bad += 1
            click.echo(f"invalid: {path}\n{e}", err=True)
    if bad:
        sys.exit(EXIT_USAGE)


@main.command("list")
@click.argument("kind", type=click.Choice(["methods", "scorers", "allocations", "models", "datasets", "suites"]))
@click.option("--suites-dir", default="suites", show_default=True, type=click.Path(file_okay=False))
def list_(kind, suites_dir) -> None:
    """List what a suite can name."""
    from prunebench import api, data, masks, models

    if kind == "methods":
        for name in api.method_names():
            params = api.get_method(name).Params.model_fields
            defaults = " ".join(f"{k}={_show(f.default)}" for k, f in params.items())
            click.echo(f"{name:20s} {defaults}")
    elif kind == "scorers":
        click.echo("\n".join(api.scorer_names()))
    elif kind == "allocations":
        click.echo("\n".join(masks.allocation_names()))
    elif kind == "models":
        click.echo("\n".join(models.model_names()))
    elif kind == "datasets":
        for name in data.dataset_names():
            info = data.dataset_info(name)
            click.echo(f"{name:15s} {info.num_classes:4d} classes  {'x'.join(map(str, info.shape))}")
    else:
        for path in sorted(Path(suites_dir).rglob("*.yaml")):
            if "golden" not in path.relative_to(suites_dir).parts:  # golden/ holds recorded results, not suites
                click.echo(str(path))


def _show(value) -> str:
    from pydantic_core import PydanticUndefined

    if value is PydanticUndefined:
        return "(required)"
    return str(value) if not isinstance(value, tuple) else ",".join(map(str, value))


@main.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False))
@click.option("--output-dir", "-o", default=None, type=click.Path(file_okay=False),
              help="write <suite>.md, .csv (a row per run and level), .json and .png here")
@click.option("--diagnostics", is_flag=True, help="also show per-level sign flips, mask overlap, layer densities and FLOPs")
@click.option("--markdown", is_flag=True, help=MARKDOWN_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON instead (schema: docs/report-json.md)")
def report(results, output_dir, diagnostics, markdown, as_json) -> None:
    """Rebuild the leaderboards of every suite recorded in RESULTS from the run records alone."""
    from prunebench.report import diagnostics_markdown, method_overlap, suites_in, write_outputs
    from prunebench.report.document import report_json, suite_report

    try:
        suites = suites_in(Path(results))
    except FileNotFoundError as e:
        _fail(f"error: {e}")
    documents = []
    for sr in suites:
        overlap = method_overlap(Path(results), sr.specs, sr.run_results) if diagnostics else None
        document = suite_report(sr, overlap) if as_json or output_dir else None
        documents.append(document)
        extra = diagnostics_markdown(sr, Path(results), overlap) if diagnostics else ""
        if not as_json:
            click.echo(_leaderboard(sr, markdown))
            if extra:
                click.echo(extra)
        if output_dir:
            for path in write_outputs(sr, Path(output_dir), extra, document):
                click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(report_json(documents), nl=False)


@main.command()
@click.argument("results", default=DEFAULT_RESULTS, type=click.Path(file_okay=False))
def status(results) -> None:
    """Per suite in RESULTS: runs complete / running / failed (with reason) / pending, and an ETA."""
    from prunebench.status import format_duration, results_status

    if not (Path(results) / "suites").is_dir():
        _fail(f"error: {results}: no suites recorded here (run `bench run SUITE --results {results}`)")
    statuses = results_status(Path(results))
    if not statuses:
        _fail(f"error: {results}: no readable suite records under {Path(results) / 'suites'}")
    for st in statuses:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(st.counts.items()))
        click.echo(f"{st.name}: {counts}; {st.epochs_done:g} epochs done, {st.epochs_left:g} to go; "
                   f"ETA {format_duration(st.eta_s) if st.epochs_left else '-'}"
                   + (f" ({st.seconds_per_epoch:.1f} s/epoch measured)" if st.seconds_per_epoch else ""))
        for state, label, reason in st.failures:
            click.echo(f"  {state}: {label}: {reason}")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--results", default=DEFAULT_RESULTS, show_default=True, type=click.Path(file_okay=False))
@click.option("--reduced", is_flag=True, help="check the reduced profile (against its golden references)")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE")
@click.option("--strict", is_flag=True, help="also fail when an approximate reference is out of its band")
@click.option("--github-summary", is_flag=True, help="append the report to $GITHUB_STEP_SUMMARY when set")
@click.option("--markdown", is_flag=True, help=MARKDOWN_HELP)
def check(suite, results, reduced, overrides, strict, github_summary, markdown) -> None:
    """Check SUITE's results in RESULTS against its reference numbers and claims.

    Exit 0: everything checked is reproduced and every claim holds; 1: a deviation or a failed claim;
    2: a usage or suite error; 3: runs missing or failed (and nothing deviates).
    """
    from prunebench import app
    from prunebench.report import suite_markdown

    loaded = _load(suite, reduced, overrides)
    sr = app.suite_results(loaded, Path(results), overrides)
    other = Path(results) / "suites" / f"{loaded.name}{'' if reduced else '-reduced'}.json"
    if any(status != "complete" for status in sr.statuses.values()) and other.exists():
        click.echo(f"note: {results} holds the {'full' if reduced else 'reduced'} profile of this suite ({other}): "
                   f"check it {'without' if reduced else 'with'} --reduced", err=True)
    click.echo(_leaderboard(sr, markdown))
    if github_summary and os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(suite_markdown(sr) + "\n")
    sys.exit(_check_exit(sr, strict))


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--results", default=DEFAULT_RESULTS, show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE")
def golden(suite, results, overrides) -> None:
    """Record the reduced profile's results in RESULTS as SUITE's golden references (explicit, never automatic)."""
    from prunebench.golden import record_golden

    loaded = _load(suite, True, overrides)
    try:
        path, n = record_golden(loaded, Path(results), command=" ".join(["bench", "golden", *sys.argv[2:]]))
    except RuntimeError as e:
        _fail(f"error: {e}", EXIT_INCOMPLETE)
    click.echo(f"wrote {n} golden references to {path}")


@main.command()
@click.argument("a", type=click.Path(exists=True, file_okay=False))
@click.argument("b", type=click.Path(exists=True, file_okay=False))
def compare(a, b) -> None:
    """Two result sets side by side (every suite, method and level in either), with B - A."""
    from prunebench.report import compare_markdown

    try:
        click.echo(compare_markdown(Path(a), Path(b)))
    except FileNotFoundError as e:
        _fail(f"error: {e}")


@main.command("export")
@click.argument("results", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "tracker", required=True, type=click.Choice(["tensorboard", "wandb", "mlflow"]))  # export.TRACKERS
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False), help="where the tracker writes [default: RESULTS/<tracker>]")
@click.option("--project", default="prunebench", show_default=True, help="W&B project")
@click.option("--uri", default=None, help="MLflow tracking URI [default: its file store under --out]")
def export_(results, tracker, out, project, uri) -> None:
    """Every complete run in RESULTS as a tracker run: its spec as config, its epoch and level rows as metrics."""
    from prunebench.export import TrackerMissing, export

    target = Path(out) if out else Path(results) / tracker
    try:
        count = export(Path(results), tracker, target, project=project, uri=uri)
    except TrackerMissing as e:
        _fail(f"error: {e}")
    click.echo(f"exported {count} runs to {tracker} under {target}" + (f" ({uri})" if uri else ""))


@main.group()
def data() -> None:
    """Datasets: where they are found, and explicit downloads."""


@data.command("where")
@click.argument("name")
@click.option("--data-root", default=None, type=click.Path(file_okay=False))
def data_where(name, data_root) -> None:
    """Print the folder a dataset is read from (or how to get it)."""
    from prunebench.data import DatasetError, locate
    from prunebench.registry import UnknownName

    try:
        click.echo(locate(name, data_root))
    except (DatasetError, UnknownName) as e:
        _fail(f"error: {e}")


@data.command("download")
@click.argument("name")
@click.option("--data-root", required=True, type=click.Path(file_okay=False))
def data_download(name, data_root) -> None:
    """Download a dataset into DATA_ROOT (needs internet; never done implicitly)."""
    from prunebench.data import DatasetError, dataset_info
    from prunebench.registry import UnknownName

    try:
        info = dataset_info(name)
    except (DatasetError, UnknownName) as e:
        _fail(f"error: {e}")
    if info.download is None:
        _fail(f"error: {name} cannot be downloaded: {info.how_to_get}")
    Path(data_root).mkdir(parents=True, exist_ok=True)
    try:
        info.download(Path(data_root))
    except Exception as e:  # noqa: BLE001 - offline, a proxy, a moved mirror: one line, not torchvision's traceback
        _fail(f"error: downloading {name} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
              f"without internet: {info.how_to_get}")
    click.echo(f"downloaded {name} under {data_root}")


if __name__ == "__main__":
    main()
