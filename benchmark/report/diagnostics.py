"""Per-level diagnostics tables (Gadhikar & Burkholz 2024): sign flips, mask overlap, layer
densities and training FLOPs, averaged over seeds, and the overlap of different methods' masks."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench.diagnostics import mask_iou
from prunebench.messages import LOGGER
from prunebench.report.aggregate import SuiteResults
from prunebench.report.tables import _name
from prunebench.spec import RunSpec
from prunebench.store import CorruptRecord, RunDir

log = logging.getLogger(LOGGER)

DIAGNOSTICS = ("sign_flips_vs_init", "sign_flips_vs_previous", "mask_iou_previous", "effective_density", "train_flops")


def diagnostics_table(levels: pd.DataFrame) -> pd.DataFrame:
    """Per (label, variant, level), the mean over seeds of the per-level diagnostics the runs recorded
    and the range of the per-layer densities (a layer far below the rest is one close to collapse),
    from the tidy rows the report read already (``SuiteResults.levels``)."""
    if levels.empty:
        return pd.DataFrame()
    columns = ["density", "epochs_trained", *DIAGNOSTICS, "layer_density_min", "layer_density_max"]
    return levels.groupby(["label", "variant", "level"], sort=False)[columns].mean().reset_index()


def method_overlap(results: Path, specs: Sequence[RunSpec]) -> pd.DataFrame:
    """Mask intersection over union between every two methods (same sweep point and seed) at each level
    both recorded, averaged over seeds: how far IMP's and LRR's masks part ways, level by level.
    Each run's record and each level's mask is read once."""
    by_key: dict[tuple[str, int], list[tuple[RunSpec, set[int]]]] = {}
    for spec in specs:
        result = RunDir(results, spec).result()
        if result is not None:
            by_key.setdefault((spec.variant, spec.seed), []).append((spec, {r.level for r in result.levels}))
    cache: dict[tuple[str, int], Any] = {}

    def masks(spec: RunSpec, level: int):
        if (spec.run_id, level) not in cache:
            try:
                cache[(spec.run_id, level)] = RunDir(results, spec).records().masks(level)
            except FileNotFoundError:  # a method without model masks (standalone)
                cache[(spec.run_id, level)] = None
            except CorruptRecord as e:
                log.warning("%s; left out of the mask overlap (`bench run` redoes the run)", e)
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


def diagnostics_markdown(sr: SuiteResults, results: Path, overlap: pd.DataFrame | None = None) -> str:
    """The per-level diagnostics of Gadhikar & Burkholz 2024 (sign flips, mask overlap) beside the
    training budget, and the overlap of different methods' masks at the same level (``overlap``:
    method_overlap() when the caller has it already)."""
    from tabulate import tabulate

    table = diagnostics_table(sr.levels)
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
    overlap = method_overlap(results, sr.specs) if overlap is None else overlap
    if not overlap.empty:
        lines += ["", f"### {sr.name}: mask overlap between methods (IoU %, same seed and level)", "",
                  tabulate([[_name(r.a, r.variant), r.b, r.level, _fmt(r.mean), r.size] for r in overlap.itertuples()],
                           headers=["method", "versus", "level", "IoU %", "seeds"], tablefmt="pipe", disable_numparse=True,
                           colalign=("left", "left", "right", "right", "right"))]
    return "\n".join(lines) + "\n"


