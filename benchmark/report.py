"""Aggregation, leaderboards, CSV, plots and comparisons, derived from run records alone.

A leaderboard has one row per method (label and sweep variant) and level: target and achieved
sparsity, weights remaining, final-epoch test accuracy as mean ± sample std over seeds (n), the
difference to the dense baseline, the matching reference with its difference, and the verdict of
prunebench.references. Runs are matched to a suite by run id, so ``bench report DIR`` needs only DIR.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench.diagnostics import mask_iou
from prunebench.references import ClaimVerdict, Verdict, cells, evaluate_claim, judge_all
from prunebench.spec import ReferencesSpec, RunSpec, Tolerance
from prunebench.store import SUITES_DIR, RunDir, atomic_write_json, read_json


def save_resolved_suite(results: Path, name: str, specs: Sequence[RunSpec], meta: dict[str, Any]) -> Path:
    """Write the suite's resolved runs beside the records, so reports can be rebuilt from DIR alone."""
    path = Path(results) / SUITES_DIR / f"{name}.json"
    atomic_write_json(path, {**meta, "name": name, "runs": [{"run_id": s.run_id, **s.model_dump(mode="json")} for s in specs]})
    return path


def load_resolved_suites(results: Path) -> list[dict[str, Any]]:
    return [s for p in sorted((Path(results) / SUITES_DIR).glob("*.json")) if (s := read_json(p))]


def level_rows(results: Path, specs: Sequence[RunSpec]) -> pd.DataFrame:
    """One row per (run, level) of the complete runs among ``specs``."""
    rows = []
    for order, spec in enumerate(specs):
        result = RunDir(results, spec).result()
        if result is None:
            continue
        for level in result["levels"]:
            rows.append({
                "order": order, "label": spec.label, "variant": spec.variant, "method": spec.method,
                "seed": spec.seed, "run_id": spec.run_id, "level": level["level"],
                "target_sparsity": 1.0 - level["target_density"], "sparsity": level["sparsity"],
                "accuracy": level["test_accuracy"], "epochs_trained": level["epochs_trained"],
            })
    return pd.DataFrame(rows)


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n over seeds per (label, variant, level), in suite order."""
    if rows.empty:
        return rows
    grouped = rows.groupby(["label", "variant", "level"], sort=False)
    out = grouped.agg(
        order=("order", "min"),
        method=("method", "first"),
        target_sparsity=("target_sparsity", "mean"),
        sparsity=("sparsity", "mean"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        n=("accuracy", "size"),
        epochs_trained=("epochs_trained", "mean"),
        seeds=("seed", list),
        accuracies=("accuracy", list),
    ).reset_index()
    return out.sort_values(["order", "level"]).drop(columns="order").reset_index(drop=True)


@dataclass
class SuiteResults:
    """Everything a report shows about one suite, computed once from the records."""

    name: str
    specs: list[RunSpec]
    meta: dict[str, Any]
    table: pd.DataFrame  # aggregate()
    statuses: dict[str, str]  # run id -> status
    verdicts: list[Verdict] = field(default_factory=list)
    claims: list[ClaimVerdict] = field(default_factory=list)
    tolerance: Tolerance = field(default_factory=Tolerance)  # the one the verdicts applied
    failures: dict[str, str] = field(default_factory=dict)  # run id -> first line of the reason
    provenance: str = ""

    @property
    def counts(self) -> dict[str, int]:
        values = list(self.statuses.values())
        return {k: values.count(k) for k in ("complete", "failed", "partial", "pending") if values.count(k)}

    @property
    def metric(self) -> str:
        """What the percentages are: test accuracy, unless the suite says otherwise."""
        return self.meta.get("metric") or "test acc"

    @property
    def dense_accuracy(self) -> float | None:
        dense = self.table[self.table["method"] == "dense"] if not self.table.empty else self.table
        return None if dense.empty else float(dense["accuracy_mean"].iloc[0])


def collect(results: Path, name: str, specs: Sequence[RunSpec], meta: dict[str, Any] | None = None,
            references: ReferencesSpec | None = None) -> SuiteResults:
    meta = meta or {}
    references = references or ReferencesSpec.model_validate(meta.get("references") or {})
    table = aggregate(level_rows(results, specs))
    ours = cells(table)
    runs = {s.run_id: RunDir(results, s) for s in specs}
    statuses = {run_id: run.status() for run_id, run in runs.items()}
    failures = {run_id: ((runs[run_id].failure() or {}).get("reason") or "").split("\n")[0]
                for run_id, status in statuses.items() if status == "failed"}
    return SuiteResults(
        name=name, specs=list(specs), meta=meta, table=table, statuses=statuses,
        verdicts=judge_all(references.numbers, ours, references.tolerance),
        claims=[evaluate_claim(c, ours) for c in references.claims],
        tolerance=references.tolerance,
        failures=failures,
        provenance=provenance_line(results, [s for s in specs if statuses[s.run_id] == "complete"]),
    )


# ------------------------------------------------------------------------------------ rendering
def _name(label: str, variant: str) -> str:
    return f"{label} ({variant})" if variant else label


def _mean_std(mean: float, std: float | None, n: int | None, scale: float = 100.0) -> str:
    if std is None or (isinstance(std, float) and math.isnan(std)) or (n is not None and n < 2):
        return f"{scale * mean:.2f}"
    return f"{scale * mean:.2f} ± {scale * std:.2f}"


def _signed(x: float | None) -> str:
    return "" if x is None else f"{x:+.2f}"


def _cell_verdicts(sr: SuiteResults) -> dict[tuple[str, str, int], list[Verdict]]:
    """Verdicts attached to the leaderboard row they matched."""
    from prunebench.references import find_cell

    ours = cells(sr.table)
    out: dict[tuple[str, str, int], list[Verdict]] = {}
    for v in sr.verdicts:
        cell = find_cell(ours, v.reference.method, v.reference.variant, v.reference.sparsity, v.reference.level)
        if cell is not None:
            out.setdefault((cell["label"], cell["variant"], int(cell["level"])), []).append(v)
    return out


def leaderboard_rows(sr: SuiteResults) -> list[dict[str, Any]]:
    """The leaderboard as records (the markdown table and the CSV are two views of these)."""
    dense = sr.dense_accuracy
    expected: dict[tuple[str, str], int] = {}
    for s in sr.specs:
        expected[(s.label, s.variant)] = expected.get((s.label, s.variant), 0) + 1
    attached = _cell_verdicts(sr)
    rows = []
    for r in sr.table.itertuples():
        std = None if pd.isna(r.accuracy_std) else float(r.accuracy_std)
        vs = attached.get((r.label, r.variant, int(r.level)), [])
        ref = vs[0].reference if vs else None
        rows.append({
            "method": r.label, "variant": r.variant, "level": int(r.level),
            "target_sparsity_pct": 100 * r.target_sparsity, "sparsity_pct": 100 * r.sparsity,
            "weights_remaining_pct": 100 * (1 - r.sparsity),
            "accuracy_mean_pct": 100 * r.accuracy_mean, "accuracy_std_pct": None if std is None else 100 * std,
            "n": int(r.n), "n_expected": expected.get((r.label, r.variant), int(r.n)),
            "delta_vs_dense": None if dense is None or r.method == "dense" else 100 * (r.accuracy_mean - dense),
            "reference_mean_pct": None if ref is None else ref.mean, "reference_std_pct": None if ref is None else ref.std,
            "reference_n": None if ref is None else ref.n, "reference_approx": None if ref is None else ref.approx,
            "delta_vs_reference": vs[0].delta if vs else None,
            "verdict": "; ".join(v.verdict for v in vs), "epochs_trained": float(r.epochs_trained),
            "seeds": list(r.seeds), "accuracies_pct": [100 * a for a in r.accuracies],
        })
    return rows


def leaderboard_markdown(sr: SuiteResults) -> str:
    rows = leaderboard_rows(sr)
    if not rows:
        return "_no complete runs_\n"
    from tabulate import tabulate

    has_refs = any(r["reference_mean_pct"] is not None for r in rows)
    headers = ["method", "level", "target sparsity %", "sparsity %", "weights remaining %", f"{sr.metric} % (mean ± std)",
               "n", "Δ dense", "epochs"] + (["reference", "Δ ref", "verdict"] if has_refs else [])
    body = []
    for r in rows:
        n = f"{r['n']}" if r["n"] == r["n_expected"] else f"{r['n']}/{r['n_expected']}"
        line = [_name(r["method"], r["variant"]), r["level"], f"{r['target_sparsity_pct']:.2f}", f"{r['sparsity_pct']:.2f}",
                f"{r['weights_remaining_pct']:.3g}", _mean_std(r["accuracy_mean_pct"], r["accuracy_std_pct"], r["n"], 1.0),
                n, _signed(r["delta_vs_dense"]), f"{r['epochs_trained']:g}"]
        if has_refs:
            ref = "" if r["reference_mean_pct"] is None else (
                _mean_std(r["reference_mean_pct"], r["reference_std_pct"], r["reference_n"], 1.0)
                + (f" ({r['reference_n']})" if r["reference_n"] else "") + (" ≈" if r["reference_approx"] else ""))
            line += [ref, _signed(r["delta_vs_reference"]), r["verdict"]]
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=("left",) + ("right",) * (len(headers) - 1)) + "\n"


def references_markdown(sr: SuiteResults) -> str:
    """Verdict counts, the references that matched no run, the claims, and the sources."""
    lines = []
    if sr.verdicts:
        counts: dict[str, int] = {}
        for v in sr.verdicts:
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
        tol = sr.tolerance
        lines.append("References: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                     + f" (reproduced: |Δ| <= {tol.k} combined SE + {tol.abs} points; "
                     f"≈ approximate references: within {tol.band} points).")
    if sr.claims:
        lines += ["", "| claim | verdict | detail | source |", "|:--|:--|:--|:--|"]
        lines += [f"| `{c.claim.claim}` | {c.verdict} | {c.detail} | {c.claim.source} |" for c in sr.claims]
    sources = sorted({v.reference.source for v in sr.verdicts})
    if sources or sr.table is not None and not sr.table.empty:
        lines += ["", "<details><summary>Per-seed accuracies and reference sources</summary>", ""]
        for r in leaderboard_rows(sr):
            per_seed = ", ".join(f"seed {s}: {a:.2f}" for s, a in zip(r["seeds"], r["accuracies_pct"]))
            lines.append(f"- {_name(r['method'], r['variant'])}, level {r['level']}: {per_seed}")
        if sources:
            lines += ["", "Sources:"] + [f"- {s}" for s in sources]
        lines += ["", "</details>"]
    return "\n".join(lines).strip() + "\n" if lines else ""


def suite_markdown(sr: SuiteResults) -> str:
    """The markdown section of one suite: heading, protocol line, notes, leaderboard, references, claims."""
    lines = [f"## {sr.name}", ""]
    if sr.meta.get("description"):
        lines += [sr.meta["description"].strip(), ""]
    if sr.specs and sr.specs[0].data is not None:
        d, m = sr.specs[0].data, sr.specs[0].model
        resized = f" (resized to {d.resize})" if d.resize else ""
        lines += [f"Dataset `{d.dataset}`{resized}, model `{m.name}`, {sr.specs[0].train.epochs} epochs per level. Runs: "
                  + ", ".join(f"{v} {k}" for k, v in sr.counts.items()) + ".", ""]
    if sr.meta.get("reduced"):
        lines += ["_Reduced profile (CI scale): not comparable with the paper's numbers._", ""]
    if sr.meta.get("stale_run_ids"):
        lines += [f"_{sr.meta['stale_run_ids']} runs of this suite were recorded by code with another PROTOCOL_VERSION "
                  "(benchmark/spec.py): their run ids differ from this code's, so they count as pending here._", ""]
    lines += [f"- {note}" for note in sr.meta.get("notes", [])]
    if sr.meta.get("notes"):
        lines.append("")
    lines.append(leaderboard_markdown(sr))
    if sr.provenance:
        lines.append(sr.provenance)
    lines += _incomplete_lines(sr)
    refs = references_markdown(sr)
    if refs:
        lines += ["", refs]
    return "\n".join(lines).rstrip() + "\n"


def _incomplete_lines(sr: SuiteResults, most: int = 20) -> list[str]:
    """One line per failed or missing run (the first ``most`` of them)."""
    out = []
    for spec in sr.specs:
        status = sr.statuses.get(spec.run_id)
        if status == "complete":
            continue
        reason = f": {sr.failures[spec.run_id]}" if spec.run_id in sr.failures else ""
        out.append(f"- {status}: {_name(spec.label, spec.variant)} seed {spec.seed} ({spec.run_id}){reason}")
    return out[:most] + ([f"- ... and {len(out) - most} more"] if len(out) > most else [])


def suite_csv(sr: SuiteResults) -> str:
    frame = pd.DataFrame(leaderboard_rows(sr))
    if not frame.empty:
        frame["seeds"] = frame["seeds"].map(lambda xs: " ".join(map(str, xs)))
        frame["accuracies_pct"] = frame["accuracies_pct"].map(lambda xs: " ".join(f"{x:.4f}" for x in xs))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.4f")
    return buffer.getvalue()


def plot_suite(sr: SuiteResults, path: Path) -> Path | None:
    """Write the suite's figure as PNG; None when there are no results to plot."""
    if sr.table.empty:
        return None
    fig = suite_figure(sr)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def suite_figure(sr: SuiteResults):
    """Accuracy vs weights remaining (log axis): a line per method with a ±std band over seeds (at a
    sparsity several levels share, the last one), the dense baseline dashed, references as points
    with error bars (x markers when approximate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colors: dict[str, Any] = {}
    for label, rows in sr.table[sr.table["method"] != "dense"].groupby("label", sort=False):
        # one point per sparsity: where several levels (cycles) or sweep points share it, the last level
        rows = rows.assign(key=rows["target_sparsity"].round(6)).sort_values("level", kind="stable")
        rows = rows.drop_duplicates("key", keep="last")
        x = 100 * (1 - rows["target_sparsity"].to_numpy())
        order = x.argsort()[::-1]
        x, mean = x[order], 100 * rows["accuracy_mean"].to_numpy()[order]
        std = 100 * rows["accuracy_std"].fillna(0).to_numpy()[order]
        (line,) = ax.plot(x, mean, marker="o", markersize=3, label=label)
        colors[label] = line.get_color()
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if sr.dense_accuracy is not None:
        ax.axhline(100 * sr.dense_accuracy, color="black", linestyle="--", linewidth=1, label="dense")
    refs = [v.reference for v in sr.verdicts]
    for label in dict.fromkeys(r.method for r in refs):
        mine = [r for r in refs if r.method == label]
        ax.errorbar([100 - r.sparsity for r in mine], [r.mean for r in mine], yerr=[r.std or 0 for r in mine],
                    fmt="x" if mine[0].approx else "s", markersize=4, capsize=2, color=colors.get(label, "gray"),
                    alpha=0.8, label=f"{label} (reference{', approx.' if mine[0].approx else ''})")
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05) if ax.get_xlim()[0] * 0.99 <= t <= ax.get_xlim()[1] * 1.01]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test accuracy (%)" if sr.metric == "test acc" else f"{sr.metric} (%)")
    ax.set_title(sr.name + (" (reduced)" if sr.meta.get("reduced") else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def provenance_line(results: Path, specs: Sequence[RunSpec]) -> str:
    """Where the numbers came from, read from the runs' provenance records."""
    records = [read_json(RunDir(results, s).path / "provenance.json") or {} for s in specs]
    if not records:
        return ""
    commits = sorted({(r.get("git") or {}).get("commit") or "unknown" for r in records})
    dirty = any((r.get("git") or {}).get("dirty") for r in records)
    devices = sorted({f"{r.get('device', '?')} ({r.get('device_name', '?')}, torch threads: {r.get('torch_threads', '?')})" for r in records})
    torch_versions = sorted({(r.get("packages") or {}).get("torch") or "?" for r in records})
    wall = sum(r.get("wall_time_s", 0.0) for r in records)
    code = ", ".join(c[:12] for c in commits) + (" (with uncommitted changes)" if dirty else "")
    return (f"_Provenance: {len(records)} runs on {'; '.join(devices)}, torch {', '.join(torch_versions)}, "
            f"code {code}; {wall / 60:.1f} min of run wall time._\n")


# --------------------------------------------------------------------------------- diagnostics
DIAGNOSTICS = ("sign_flips_vs_init", "sign_flips_vs_previous", "mask_iou_previous", "effective_density", "train_flops")


def diagnostics_table(results: Path, specs: Sequence[RunSpec]) -> pd.DataFrame:
    """Per (label, variant, level), the mean over seeds of the per-level diagnostics the runs recorded,
    and the range of the per-layer densities (a layer far below the rest is one close to collapse)."""
    rows = []
    for spec in specs:
        for level in (RunDir(results, spec).result() or {}).get("levels", []):
            layers = list((level.get("layer_density") or {}).values())
            rows.append({"label": spec.label, "variant": spec.variant, "level": level["level"], "density": level["density"],
                         "epochs_trained": level["epochs_trained"], **{k: level.get(k, math.nan) for k in DIAGNOSTICS},
                         "layer_density_min": min(layers, default=math.nan), "layer_density_max": max(layers, default=math.nan)})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby(["label", "variant", "level"], sort=False).mean(numeric_only=True).reset_index()


def method_overlap(results: Path, specs: Sequence[RunSpec]) -> pd.DataFrame:
    """Mask intersection over union between every two methods (same sweep point and seed) at each level
    both recorded, averaged over seeds: how far IMP's and LRR's masks part ways, level by level.
    Each run's record and each level's mask is read once."""
    by_key: dict[tuple[str, int], list[tuple[RunSpec, set[int]]]] = {}
    for spec in specs:
        result = RunDir(results, spec).result()
        if result is not None:
            by_key.setdefault((spec.variant, spec.seed), []).append((spec, {r["level"] for r in result["levels"]}))
    cache: dict[tuple[str, int], Any] = {}

    def masks(spec: RunSpec, level: int):
        if (spec.run_id, level) not in cache:
            try:
                cache[(spec.run_id, level)] = RunDir(results, spec).records().masks(level)
            except FileNotFoundError:  # a method without model masks (standalone)
                cache[(spec.run_id, level)] = None
        return cache[(spec.run_id, level)]

    rows = []
    for (variant, seed), group in by_key.items():
        for (a, levels_a), (b, levels_b) in itertools.combinations(group, 2):
            for level in sorted(levels_a & levels_b):
                ma, mb = masks(a, level), masks(b, level)
                if ma is not None and mb is not None:
                    rows.append({"a": a.label, "b": b.label, "variant": variant, "level": level, "seed": seed,
                                 "iou": mask_iou(ma, mb)})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby(["a", "b", "variant", "level"], sort=False)["iou"].agg(["mean", "size"]).reset_index()


def _fmt(x: float, scale: float = 100.0, digits: int = 2) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{scale * x:.{digits}f}"


def diagnostics_markdown(sr: SuiteResults, results: Path) -> str:
    """The per-level diagnostics of Gadhikar & Burkholz 2024 (sign flips, mask overlap) beside the
    training budget, and the overlap of different methods' masks at the same level."""
    from tabulate import tabulate

    table = diagnostics_table(results, sr.specs)
    if table.empty or table[list(DIAGNOSTICS)].isna().all().all():  # e.g. a standalone method: nothing to show
        return ""
    head = ["method", "level", "density %", "sign flips vs init %", "sign flips vs previous %", "mask IoU vs previous %",
            "effective density %", "layer density % (min–max)", "epochs", "train FLOPs"]
    body = [[_name(r.label, r.variant), r.level, _fmt(r.density), _fmt(r.sign_flips_vs_init), _fmt(r.sign_flips_vs_previous),
             _fmt(r.mask_iou_previous), _fmt(r.effective_density),
             f"{_fmt(r.layer_density_min)}–{_fmt(r.layer_density_max)}" if not math.isnan(r.layer_density_min) else "",
             f"{r.epochs_trained:g}", "" if math.isnan(r.train_flops) else f"{r.train_flops:.3g}"] for r in table.itertuples()]
    lines = [f"### {sr.name}: per-level diagnostics", "", "_Means over seeds. Sign flips count unpruned weights only; "
             "train FLOPs: 3 x the forward FLOPs (2 per multiply-add) per example trained, at each layer's density._", "",
             tabulate(body, headers=head, tablefmt="pipe", disable_numparse=True, colalign=("left",) + ("right",) * (len(head) - 1))]
    overlap = method_overlap(results, sr.specs)
    if not overlap.empty:
        lines += ["", f"### {sr.name}: mask overlap between methods (IoU %, same seed and level)", "",
                  tabulate([[_name(r.a, r.variant), r.b, r.level, _fmt(r.mean), r.size] for r in overlap.itertuples()],
                           headers=["method", "versus", "level", "IoU %", "seeds"], tablefmt="pipe", disable_numparse=True,
                           colalign=("left", "left", "right", "right", "right"))]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ results folders
def suites_in(results: Path) -> list[SuiteResults]:
    suites = load_resolved_suites(results)
    if not suites:
        raise FileNotFoundError(f"{results}: no resolved suites under {Path(results) / SUITES_DIR} (run `bench run` with --results {results})")
    out = []
    for suite in suites:
        specs = [RunSpec.model_validate({k: v for k, v in r.items() if k != "run_id"}) for r in suite["runs"]]
        stale = sum(r.get("run_id") != s.run_id for r, s in zip(suite["runs"], specs))
        out.append(collect(results, suite["name"], specs, {**suite, "stale_run_ids": stale}))
    return out


def write_outputs(sr: SuiteResults, out_dir: Path, extra_markdown: str = "") -> list[Path]:
    """<name>.md (with ``extra_markdown`` appended), <name>.csv and <name>.png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    markdown = suite_markdown(sr) + (f"\n{extra_markdown}" if extra_markdown else "")
    for suffix, text in ((".md", markdown), (".csv", suite_csv(sr))):
        path = out_dir / f"{sr.name}{suffix}"
        path.write_text(text)
        written.append(path)
    if (png := plot_suite(sr, out_dir / f"{sr.name}.png")) is not None:
        written.append(png)
    return written


def compare_markdown(a: Path, b: Path) -> str:
    """Two result sets side by side: every (suite, method, level) present in either, with deltas."""
    from tabulate import tabulate

    def frame(results: Path) -> pd.DataFrame:
        parts = []
        for sr in suites_in(results):
            t = sr.table.assign(suite=sr.name) if not sr.table.empty else sr.table
            parts.append(t)
        return pd.concat(parts) if parts else pd.DataFrame()

    fa, fb = frame(a), frame(b)
    keys = ["suite", "label", "variant", "level"]
    merged = pd.merge(fa, fb, on=keys, how="outer", suffixes=("_a", "_b"))
    body = []
    for r in merged.itertuples():
        ma, mb = getattr(r, "accuracy_mean_a"), getattr(r, "accuracy_mean_b")
        delta = "" if pd.isna(ma) or pd.isna(mb) else f"{100 * (mb - ma):+.2f}"
        body.append([r.suite, _name(r.label, r.variant), r.level,
                     "" if pd.isna(ma) else _mean_std(ma, r.accuracy_std_a, r.n_a),
                     "" if pd.isna(mb) else _mean_std(mb, r.accuracy_std_b, r.n_b), delta])
    headers = ["suite", "method", "level", f"A: {a}", f"B: {b}", "B - A (points)"]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True) + "\n"
