"""Golden references: a reduced suite's own results, recorded explicitly, checked by CI.

``bench golden SUITE --results DIR`` writes ``golden/<name>.yaml`` beside the suite with the mean,
std and n of every leaderboard cell of the reduced profile and the provenance of the runs behind
them. ``bench check SUITE --reduced`` then fails when a change moves a result outside its band.
Nothing regenerates these values silently: a change of numbers is a reviewed change of this file.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from prunebench.app import result_name, suite_results
from prunebench.report import leaderboard_rows
from prunebench.spec import GoldenFile, ReferenceNumber
from prunebench.store import RunDir, read_json
from prunebench.suite import Suite, golden_path

HEADER = "# Golden references of the reduced profile, recorded by `bench golden`; regenerate, never edit.\n"


def record_golden(suite: Suite, results: Path, command: str) -> tuple[Path, int]:
    specs = suite.runs()
    name = result_name(suite)
    sr = suite_results(suite, results)
    missing = [s for s in specs if sr.statuses[s.run_id] != "complete"]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(specs)} runs of {name} are not complete in {results}; run "
                           f"`bench run {suite.path} --reduced --results {results}` first")
    provenance = [read_json(RunDir(results, s).path / "provenance.json") or {} for s in specs]
    commits = sorted({(p.get("git") or {}).get("commit") or "unknown" for p in provenance})
    devices = sorted({f"{p.get('device_name', '?')} ({p.get('torch_threads', '?')} threads)" for p in provenance})
    source = f"golden: our run, recorded {time.strftime('%Y-%m-%d')} (see provenance)"
    numbers = [
        ReferenceNumber(method=r["method"], variant=r["variant"], level=r["level"], sparsity=round(r["target_sparsity_pct"], 4),
                        mean=round(r["accuracy_mean_pct"], 4),
                        std=None if r["accuracy_std_pct"] is None else round(r["accuracy_std_pct"], 4),
                        n=r["n"], source=source)
        for r in leaderboard_rows(sr)
    ]
    existing = golden_path(suite.path, suite.name)
    tolerance = GoldenFile.model_fields["tolerance"].default
    if existing.is_file():  # keep a hand-tuned tolerance across regenerations
        from prunebench.suite import load_golden

        tolerance = load_golden(existing).tolerance
    golden = GoldenFile(
        provenance={"command": command, "commits": commits, "devices": devices, "recorded": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                    "run_wall_time_s": round(sum(p.get("wall_time_s", 0.0) for p in provenance), 1)},
        tolerance=tolerance, numbers=numbers,
    )
    existing.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(golden.model_dump(mode="json", exclude_none=True), sort_keys=False, width=200)
    existing.write_text(HEADER + body)
    return existing, len(numbers)
