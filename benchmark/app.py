"""Whole-suite operations, called alike by the command line, by ``bench golden`` and from Python.

From a notebook::

    from prunebench import run_suite, load_results

    board = run_suite("suites/fashionmnist_quick.yaml", reduced=True, results="runs")  # a pandas DataFrame
    board[["method", "level", "sparsity_pct", "accuracy_mean_pct"]]
    load_results("runs")                     # every suite recorded there, one frame

``run_suite`` trains what is not complete yet (finished runs are skipped, interrupted ones resume)
and returns the leaderboard; ``execute_suite`` returns the outcomes and the full SuiteResults (what
the CLI prints); ``suite_results`` checks a suite's records against its references without training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench.analyses import analyse_suite
from prunebench.executors import PlannedRun, Worker, plan_suite, require_data, run_local, run_pool, select
from prunebench.report import SuiteResults, collect, leaderboard_rows, suites_in
from prunebench.runner import Outcome
from prunebench.spec import ExecSettings
from prunebench.store import save_resolved_suite
from prunebench.suite import Suite, load_suite

ONLY_KEYS = ("method", "label", "seed", "run")


def load(suite: str | Path | Suite, reduced: bool = False, overrides: Sequence[str] = ()) -> Suite:
    """A validated suite (prunebench.suite.SuiteError, with file:line, for an invalid one)."""
    return suite if isinstance(suite, Suite) else load_suite(suite, reduced=reduced, overrides=overrides)


def result_name(suite: Suite, overrides: Sequence[str] = ()) -> str:
    """The name a suite's records go under: ``<name>-reduced`` for the reduced profile, and ``.set-<hash>``
    of the --set overrides, so one results directory keeps a resolved record per override set (a
    `--set seeds=[0]` run never hides the suite's other records from `bench report`)."""
    name = suite.name + ("-reduced" if suite.spec.reduced_applied else "")
    if overrides:
        name += ".set-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return name


def suite_meta(suite: Suite, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """What a results folder keeps about the suite, so reports and checks need nothing else."""
    spec = suite.spec
    return {"source": suite.path, "reduced": spec.reduced_applied, "overrides": list(overrides),
            "description": spec.description, "notes": spec.notes, "metric": spec.metric,
            "references": spec.references.model_dump(mode="json"),
            "analyses": spec.analyses.model_dump(mode="json") if spec.analyses else None}


@dataclass(frozen=True)
class SuiteRun:
    """What running a suite did: each executed or skipped run's outcome, and the suite's results."""

    outcomes: list[Outcome]
    results: SuiteResults
    analysed: tuple[int, int, int] = (0, 0, 0)  # runs whose analyses were measured now, wait, failed

    @property
    def incomplete(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status not in ("complete", "skipped")]


def execute_suite(suite: Suite, plans: Sequence[PlannedRun], results: Path, settings: ExecSettings, *,
                  overrides: Sequence[str] = (), workers: Sequence[Worker] | None = None, retry_failed: bool = False,
                  progress: bool = True, should_stop: Callable[[], bool] | None = None) -> SuiteRun:
    """Record the resolved suite beside the runs, execute the planned runs (in this process, or on
    ``workers``), measure the analyses the suite asks for (prunebench.analyses), then collect the
    suite's results and verdicts from the records."""
    results = Path(results)
    require_data(plans, settings.data_root)  # DatasetError before anything starts
    save_resolved_suite(results, result_name(suite, overrides), suite.runs(), suite_meta(suite, overrides))
    if workers:
        outcomes = run_pool(plans, results, settings, workers, retry_failed=retry_failed, progress=progress,
                            should_stop=should_stop)
    else:
        outcomes = run_local(plans, results, settings, retry_failed=retry_failed, progress=progress, should_stop=should_stop)
    stopped = should_stop is not None and should_stop()
    analysed = (0, 0, 0) if stopped else analyse_suite(suite.runs(), suite.spec.analyses, results, settings)
    return SuiteRun(outcomes, suite_results(suite, results, overrides), analysed)


def suite_results(suite: Suite, results: Path, overrides: Sequence[str] = ()) -> SuiteResults:
    """A suite's results in ``results`` against its references and claims (nothing is trained)."""
    return collect(Path(results), result_name(suite, overrides), suite.runs(), suite_meta(suite, overrides), suite.spec.references)


def leaderboard(sr: SuiteResults) -> pd.DataFrame:
    """The leaderboard as a DataFrame: one row per method, sweep point and level (the CSV's columns)."""
    return pd.DataFrame(leaderboard_rows(sr))


def run_suite(suite: str | Path | Suite, *, results: str | Path = "runs", reduced: bool = False,
              overrides: Sequence[str] = (), only: Mapping[str, set[str]] | None = None,
              settings: ExecSettings | None = None, retry_failed: bool = False, progress: bool = True) -> pd.DataFrame:
    """Run a suite (what is not complete yet) and return its leaderboard."""
    loaded = load(suite, reduced, overrides)
    plans = plan_suite(select(loaded.runs(), only), Path(results))
    done = execute_suite(loaded, plans, Path(results), settings or ExecSettings(), overrides=overrides,
                         retry_failed=retry_failed, progress=progress)
    return leaderboard(done.results)


def load_results(results: str | Path) -> pd.DataFrame:
    """The leaderboards of every suite recorded in a results directory, with a ``suite`` column."""
    frames = [leaderboard(sr).assign(suite=sr.name) for sr in suites_in(Path(results))]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
