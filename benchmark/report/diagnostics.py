"""Per-level diagnostics tables (Gadhikar & Burkholz 2024): sign flips, mask overlap, layer
densities and training FLOPs, averaged over seeds, and the overlap of different methods' masks."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prunebench.messages import LOGGER
from prunebench.records import RunResult
from prunebench.report.aggregate import SuiteResults
from prunebench.report.tables import _name
from prunebench.spec import RunSpec
from prunebench.store import CorruptRecord, RunDir, RunRecords

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


_BITS_SET = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # popcount of each byte


def _bits_set(bits: np.ndarray) -> int:
    counts = np.bitwise_count(bits) if hasattr(np, "bitwise_count") else _BITS_SET[bits]  # numpy >= 2.0 has it
    return int(counts.sum(dtype=np.int64))


@dataclass(frozen=True)
class PackedMask:
    """A level's masks as recorded (prunebench.masks.pack: a bit per weight, each tensor zero-padded to a
    whole byte), kept packed: every tensor's bits in one array, so an IoU is two bit counts over it."""

    layout: tuple[tuple[str, tuple[int, ...]], ...]  # (name, shape) of each tensor, in order
    bits: np.ndarray  # uint8: the tensors' packed bits one after another
    parts: dict[str, np.ndarray]  # name -> its tensor's bytes (views of ``bits``)

    @classmethod
    def of(cls, packed: Mapping[str, Mapping[str, Any]]) -> PackedMask:
        layout, chunks = [], []
        for name, entry in packed.items():
            shape = tuple(entry["shape"].tolist())
            size = -(-math.prod(shape) // 8)
            chunk = entry["bits"].numpy()[:size]
            layout.append((name, shape))
            chunks.append(chunk if len(chunk) == size else np.pad(chunk, (0, size - len(chunk))))
        bits = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)  # a copy: the padding is cleared in it
        ends = np.cumsum([len(c) for c in chunks], dtype=np.int64)
        for (_, shape), end in zip(layout, ends):
            if math.prod(shape) % 8:  # exactly the bits unpack() reads: the tensor's n, none of the padding
                bits[end - 1] &= 0xFF << (8 - math.prod(shape) % 8) & 0xFF
        parts = {name: bits[end - len(c):end] for (name, _), c, end in zip(layout, chunks, ends)}
        return cls(tuple(layout), bits, parts)

    def iou(self, other: PackedMask) -> float:
        """prunebench.diagnostics.mask_iou of the unpacked masks, exactly (the same two integer counts):
        |a and b| / |a or b| over this mask's tensors (1.0 for two empty masks)."""
        if self.layout == other.layout:
            pairs = [(self.bits, other.bits)]
        else:  # tensors in another order, or another set of them: tensor by tensor, as mask_iou goes
            shapes = dict(other.layout)
            for name, shape in self.layout:
                if shapes[name] != shape:
                    raise ValueError(f"mask {name}: shape {shape} against {shapes[name]}")
            pairs = [(self.parts[name], other.parts[name]) for name, _ in self.layout]
        union = sum(_bits_set(a | b) for a, b in pairs)
        return sum(_bits_set(a & b) for a, b in pairs) / union if union else 1.0


def method_overlap(results: Path, specs: Sequence[RunSpec], read: Mapping[str, RunResult] | None = None) -> pd.DataFrame:
    """Mask intersection over union between every two methods (same sweep point and seed) at each level
    both recorded, averaged over seeds: how far IMP's and LRR's masks part ways, level by level.
    Each run's record and each level's mask is read once (``read``: the complete runs' results by run
    id, where the caller has them: SuiteResults.run_results), and the IoUs are counted on the packed bits."""
    by_key: dict[tuple[str, int], list[tuple[RunSpec, set[int]]]] = {}
    records: dict[str, RunRecords] = {}
    for spec in specs:
        run = RunDir(results, spec)
        result = run.result() if read is None else read.get(run.run_id)
        if result is not None:
            by_key.setdefault((spec.variant, spec.seed), []).append((spec, {r.level for r in result.levels}))
            records[run.run_id] = RunRecords(run.path, result.files)  # what run.records() gives, without a second read
    cache: dict[tuple[str, int], Any] = {}

    def masks(spec: RunSpec, level: int) -> PackedMask | None:
        key = (spec.run_id, level)
        if key not in cache:
            try:
                cache[key] = PackedMask.of(records[spec.run_id].packed("masks", level))
            except FileNotFoundError:  # a method without model masks (standalone)
                cache[key] = None
            except CorruptRecord as e:
                log.warning("%s; left out of the mask overlap (`bench run` redoes the run)", e)
                cache[key] = None
        return cache[key]

    rows = []
    for (variant, seed), group in by_key.items():
        for (a, levels_a), (b, levels_b) in itertools.combinations(group, 2):
            for level in sorted(levels_a & levels_b):
                ma, mb = masks(a, level), masks(b, level)
                if ma is not None and mb is not None:
                    rows.append({"a": a.label, "b": b.label, "variant": variant, "level": level, "seed": seed,
                                 "iou": ma.iou(mb)})
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
    overlap = method_overlap(results, sr.specs, sr.run_results) if overlap is None else overlap
    if not overlap.empty:
        lines += ["", f"### {sr.name}: mask overlap between methods (IoU %, same seed and level)", "",
                  tabulate([[_name(r.a, r.variant), r.b, r.level, _fmt(r.mean), r.size] for r in overlap.itertuples()],
                           headers=["method", "versus", "level", "IoU %", "seeds"], tablefmt="pipe", disable_numparse=True,
                           colalign=("left", "left", "right", "right", "right"))]
    return "\n".join(lines) + "\n"


