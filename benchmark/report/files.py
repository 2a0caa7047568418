"""A suite's report as files: <name>.md (leaderboard, references, diagnostics), .csv (one row per run
and level), .json (the report as data, prunebench.report.document), .png (accuracy against weights
remaining), -flops.png (accuracy against training FLOPs), -epochs.png (against cumulative epochs),
-sign-flips.png (per level and per layer), -train-loss.png (training loss per epoch row, levels and cycles
one after the other), -landscape.png (linear mode connectivity and curvature, for suites with
``analyses:``), -mask-overlap.png (between methods, with --diagnostics) and, for suites swept
over the input dimension (the single hidden neuron), -success-vs-d.png (success rate against d)."""

from __future__ import annotations

from pathlib import Path

from prunebench.report.aggregate import SuiteResults
from prunebench.report.document import SuiteReport, report_json, suite_report
from prunebench.report.plots import (
    epochs_figure,
    flops_figure,
    landscape_figure,
    overlap_figure,
    save_figure,
    sign_flips_figure,
    success_vs_d_figure,
    suite_figure,
    train_loss_figure,
)
from prunebench.report.tables import suite_csv, suite_markdown


def write_outputs(sr: SuiteResults, out_dir: Path, extra_markdown: str = "", document: SuiteReport | None = None) -> list[Path]:
    """<name>.md (with ``extra_markdown`` appended), .csv, .json (``document``, or one without mask
    overlaps) and .png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if Path(sr.name).name != sr.name or sr.name in (".", ".."):  # records are input too: never write outside out_dir
        raise ValueError(f"suite name {sr.name!r} is not a plain file name")
    written = []
    markdown = suite_markdown(sr) + (f"\n{extra_markdown}" if extra_markdown else "")
    as_json = report_json([document or suite_report(sr)])
    for suffix, text in ((".md", markdown), (".csv", suite_csv(sr)), (".json", as_json)):
        path = out_dir / f"{sr.name}{suffix}"
        path.write_text(text)
        written.append(path)
    figures = {"": suite_figure, "-flops": flops_figure, "-success-vs-d": success_vs_d_figure,
               "-sign-flips": sign_flips_figure, "-epochs": epochs_figure, "-landscape": landscape_figure,
               "-train-loss": train_loss_figure}
    for suffix, figure in figures.items():
        if (png := save_figure(figure(sr), out_dir / f"{sr.name}{suffix}.png")) is not None:
            written.append(png)
    if document is not None and (png := save_figure(overlap_figure(sr.name, document.mask_overlap),
                                                    out_dir / f"{sr.name}-mask-overlap.png")) is not None:
        written.append(png)
    return written
