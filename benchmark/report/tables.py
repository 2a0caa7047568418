"""Leaderboards as text: the markdown section of a suite, its CSV, and two result sets compared.

``leaderboard_rows`` turns the aggregated cells into records (the CSV writes them whole); the
markdown leaderboard shows the columns of ``COLUMNS``, each one entry: a header and how to show a
row, so a new column is one line here.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench.references import Verdict, cells, find_cell
from prunebench.report.aggregate import SuiteResults, suites_in


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
    ours = cells(sr.table)
    out: dict[tuple[str, str, int], list[Verdict]] = {}
    for v in sr.verdicts:
        cell = find_cell(ours, v.reference.method, v.reference.variant, v.reference.sparsity, v.reference.level)
        if cell is not None:
            out.setdefault((cell["label"], cell["variant"], int(cell["level"])), []).append(v)
    return out


def _number(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _ratio(a: Any, b: Any) -> float | None:
    a, b = _number(a), _number(b)
    return None if a is None or not b else a / b


def leaderboard_rows(sr: SuiteResults) -> list[dict[str, Any]]:
    """The leaderboard as records (the markdown table and the CSV are two views of these)."""
    dense = sr.dense_accuracy
    expected: dict[tuple[str, str], int] = {}
    for s in sr.specs:
        expected[(s.label, s.variant)] = expected.get((s.label, s.variant), 0) + 1
    attached = _cell_verdicts(sr)
    rows = []
    for r in sr.table.itertuples():
        std = _number(r.accuracy_std)
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
            "loss_mean": _number(r.loss_mean), "train_flops": _number(r.train_flops),
            "train_flops_x_dense": _ratio(r.train_flops, r.dense_train_flops),
            "inference_flops": _number(r.inference_flops),
            "inference_flops_x_dense": _ratio(r.inference_flops, r.dense_inference_flops),
            "seeds": list(r.seeds), "accuracies_pct": [100 * a for a in r.accuracies],
        })
    return rows


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its header (``{metric}`` is the suite's metric name) and its cell."""

    header: str
    cell: Callable[[dict[str, Any]], str]
    needs: str | None = None  # shown only when some row has a value of this record field


def _n(r: dict[str, Any]) -> str:
    return f"{r['n']}" if r["n"] == r["n_expected"] else f"{r['n']}/{r['n_expected']}"


def _reference(r: dict[str, Any]) -> str:
    if r["reference_mean_pct"] is None:
        return ""
    return (_mean_std(r["reference_mean_pct"], r["reference_std_pct"], r["reference_n"], 1.0)
            + (f" ({r['reference_n']})" if r["reference_n"] else "") + (" ≈" if r["reference_approx"] else ""))


COLUMNS: list[Column] = [
    Column("method", lambda r: _name(r["method"], r["variant"])),
    Column("level", lambda r: str(r["level"])),
    Column("sparsity %", lambda r: _sparsity(r)),
    Column("{metric} % (mean ± std)", lambda r: _mean_std(r["accuracy_mean_pct"], r["accuracy_std_pct"], r["n"], 1.0)),
    Column("n", _n),
    Column("Δ dense", lambda r: _signed(r["delta_vs_dense"])),
    Column("epochs", lambda r: f"{r['epochs_trained']:g}"),
    Column("train FLOPs (× dense)", lambda r: _times(r["train_flops_x_dense"]), needs="train_flops_x_dense"),
    Column("inference FLOPs (× dense)", lambda r: _times(r["inference_flops_x_dense"]), needs="inference_flops_x_dense"),
    Column("reference", _reference, needs="reference_mean_pct"),
    Column("Δ ref", lambda r: _signed(r["delta_vs_reference"]), needs="reference_mean_pct"),
    Column("verdict", lambda r: r["verdict"], needs="reference_mean_pct"),
]


def _sparsity(r: dict[str, Any]) -> str:
    """The achieved sparsity; the target beside it only where they differ (target, achieved and weights
    remaining are one number three times when the masks are exact)."""
    achieved, target = f"{r['sparsity_pct']:.2f}", f"{r['target_sparsity_pct']:.2f}"
    return achieved if achieved == target else f"{achieved} (target {target})"


def _times(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}"


def leaderboard_markdown(sr: SuiteResults, columns: list[Column] = COLUMNS) -> str:
    rows = leaderboard_rows(sr)
    if not rows:
        return "_no complete runs_\n"
    from tabulate import tabulate

    shown = [c for c in columns if c.needs is None or any(r[c.needs] is not None for r in rows)]
    headers = [c.header.format(metric=sr.metric) for c in shown]
    body = [[c.cell(r) for c in shown] for r in rows]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1)) + "\n"
def _verdict_counts(sr: SuiteResults) -> str:
    """'3 reproduced, 1 deviates', in the order the verdicts first occur."""
    counts = Counter(v.verdict for v in sr.verdicts)
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items())


def references_markdown(sr: SuiteResults) -> str:
    """Verdict counts, the references that matched no run, the claims, and the sources."""
    lines = []
    if sr.verdicts:
        tol = sr.tolerance
        lines.append("References: " + _verdict_counts(sr)
                     + f" (reproduced: |Δ| <= {tol.k} combined SE + {tol.abs} points; "
                     f"≈ approximate references: within {tol.band} points).")
    if sr.claims:
        m = sr.claim_margin
        lines += ["", f"Claims are decided where the two sides differ by more than {m.k:g} standard errors of the difference of "
                      f"their seed means + {m.points:g} points (references.claim_margin); within that, inconclusive.",
                  "", "| claim | verdict | detail | source |", "|:--|:--|:--|:--|"]
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
    if sr.meta.get("overrides"):
        lines += ["_Run with " + " ".join(f"`--set {o}`" for o in sr.meta["overrides"]) + " (the suite as written, if run "
                  "here too, is reported under its own name)._", ""]
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
    if landscape := landscape_markdown(sr):
        lines += ["", landscape]
    return "\n".join(lines).rstrip() + "\n"


def _settings(analyses: dict[str, Any]) -> str:
    """A suite's analyses settings in words: 'lmc between levels and seeds, 11 points; Hessian: 1 batch, ...'."""
    parts = []
    if lmc := analyses.get("lmc"):
        parts.append(f"lmc between {' and '.join(lmc['between'])}, {lmc['points']} points")
    if h := analyses.get("hessian"):
        parts.append(f"Hessian: {h['batches']} training batch{'es' if h['batches'] != 1 else ''}, power iteration of at most "
                     f"{h['iterations']} products to a relative change of {h['tol']:g}, trace from {h['trace_samples']} probes")
    return "; ".join(parts) or "none"


def landscape_markdown(sr: SuiteResults) -> str:
    """The suite's analyses per method and level, means ± std over seeds: the error barriers of linear
    mode connectivity and the Hessian's top eigenvalue and trace ("" when the suite asks for none)."""
    from prunebench.report.aggregate import LANDSCAPE_FIELDS

    if not sr.has_landscape:
        return ""
    rows = sr.levels.dropna(subset=list(LANDSCAPE_FIELDS), how="all")
    grouped = rows.groupby(["label", "variant", "level"], sort=False)
    mean, std, n = grouped[list(LANDSCAPE_FIELDS)].mean(), grouped[list(LANDSCAPE_FIELDS)].std(), grouped["seed"].size()
    density = grouped["density"].mean()

    def cell(key: tuple, column: str, scale: float) -> str:
        m, s = mean.at[key, column], std.at[key, column]
        return "" if math.isnan(m) else f"{scale * m:.2f}" + ("" if math.isnan(s) else f" ± {scale * s:.2f}")

    body = [[_name(label, variant), level, f"{100 * density[(label, variant, level)]:.2f}",
             cell((label, variant, level), "lmc_levels_barrier", 100), cell((label, variant, level), "lmc_seeds_barrier", 100),
             cell((label, variant, level), "hessian_top_eigenvalue", 1), cell((label, variant, level), "hessian_trace", 1),
             n[(label, variant, level)]] for label, variant, level in mean.index]
    settings = sr.meta.get("analyses") or {}
    from tabulate import tabulate

    head = ["method", "level", "density %", "error barrier vs previous level (points)", "error barrier vs next seed (points)",
            "Hessian top eigenvalue", "Hessian trace", "runs"]
    return "\n".join([
        f"### {sr.name}: loss landscape (`analyses:`)", "",
        "_Means ± std over seeds. Error barrier: the highest test error on the straight line between two kept states "
        "(every state tensor interpolated, BN statistics included) above the mean of its ends' errors. Hessian of the "
        f"training loss on the unpruned coordinates. Settings: {_settings(settings)}._", "",
        tabulate(body, headers=head, tablefmt="pipe", disable_numparse=True, colalign=("left",) + ("right",) * (len(head) - 1))])


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


def terminal_summary(sr: SuiteResults, width: int = 120) -> str:
    """The suite for a terminal, within ``width`` columns: methods as rows, sparsities as columns, the
    metric's mean ± std over seeds (the last level at a sparsity, where a method visits one several
    times), then the verdict counts, the deviations, the claims and the runs not complete in a line each.
    The full markdown is what files and pipes get."""
    from tabulate import tabulate

    rows = leaderboard_rows(sr)
    overrides = " ".join(f"--set {o}" for o in sr.meta.get("overrides", []))
    lines = [f"{sr.name}{f' ({overrides})' if overrides else ''}: " + ", ".join(f"{v} {k}" for k, v in sr.counts.items()) + " runs"]
    if rows:
        sparsities = sorted({round(r["sparsity_pct"], 1) for r in rows})
        table: dict[str, dict[float, str]] = {}
        for r in rows:
            cell = _mean_std(r["accuracy_mean_pct"], r["accuracy_std_pct"], r["n"], 1.0).replace(" ± ", "±")
            cell += "" if r["n"] == r["n_expected"] else "*"
            table.setdefault(_name(r["method"], r["variant"]), {})[round(r["sparsity_pct"], 1)] = cell
        names = list(table)
        name_width = max(len("method"), *map(len, names))
        cell_width = max(len(c) for t in table.values() for c in t.values())
        per_table = max(1, (width - name_width - 2) // (cell_width + 2))
        lines.append(f"{sr.metric} % (mean±std over seeds) by sparsity %"
                     + ("; * fewer seeds than planned" if any(r["n"] != r["n_expected"] for r in rows) else ""))
        for start in range(0, len(sparsities), per_table):
            shown = sparsities[start:start + per_table]
            body = [[n] + [table[n].get(x, "") for x in shown] for n in names if any(x in table[n] for x in shown)]
            lines += ["", tabulate(body, headers=["method"] + [f"{x:g}" for x in shown], tablefmt="simple",
                                   disable_numparse=True, colalign=("left",) + ("right",) * len(shown))]
    else:
        lines.append("no complete runs")
    lines.append("")
    if sr.verdicts:
        lines.append("references: " + _verdict_counts(sr))
        for v in sr.verdicts:
            if v.verdict in ("deviates", "out of band"):
                ref = v.reference
                lines.append(f"  {v.verdict}: {_name(ref.method, ref.variant or '')} at {ref.sparsity:g}%: {v.ours_mean:.2f} vs "
                             f"{ref.mean:.2f}{' ≈' if ref.approx else ''} (Δ {v.delta:+.2f}, allowed ±{v.allowed:.2f})")
    for c in sr.claims:
        lines.append(f"claim {c.verdict}: {c.claim.claim}" + (f" ({c.detail})" if c.failed or c.verdict == "inconclusive" else ""))
    lines += [line.removeprefix("- ") for line in _incomplete_lines(sr, most=5)]
    return "\n".join(lines).rstrip() + "\n"


def suite_csv(sr: SuiteResults) -> str:
    """The tidy table: one row per run and level (the seed a column; every number of the level record,
    diagnostics included, in the record's units), for pandas, R or a spreadsheet."""
    frame = sr.levels.assign(suite=sr.name) if not sr.levels.empty else sr.levels
    if not frame.empty:
        frame = frame[["suite", *[c for c in frame.columns if c != "suite"]]]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue()


def compare_markdown(a: Path, b: Path) -> str:
    """Two result sets side by side: every (suite, method, level) present in either, with deltas."""
    from tabulate import tabulate

    def frame(results: Path) -> pd.DataFrame:
        parts = [sr.table.assign(suite=sr.name) if not sr.table.empty else sr.table for sr in suites_in(results)]
        return pd.concat(parts) if parts else pd.DataFrame()

    fa, fb = frame(a), frame(b)
    keys = ["suite", "label", "variant", "level"]
    merged = pd.merge(fa, fb, on=keys, how="outer", suffixes=("_a", "_b"))
    body = []
    for r in merged.itertuples():
        ma, mb = r.accuracy_mean_a, r.accuracy_mean_b
        delta = "" if pd.isna(ma) or pd.isna(mb) else f"{100 * (mb - ma):+.2f}"
        body.append([r.suite, _name(r.label, r.variant), r.level,
                     "" if pd.isna(ma) else _mean_std(ma, r.accuracy_std_a, r.n_a),
                     "" if pd.isna(mb) else _mean_std(mb, r.accuracy_std_b, r.n_b), delta])
    headers = ["suite", "method", "level", f"A: {a}", f"B: {b}", "B - A (points)"]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True) + "\n"
