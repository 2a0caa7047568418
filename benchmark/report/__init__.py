"""Reports derived from run records alone: aggregation and verdicts (aggregate), markdown and CSV
(tables), the figure (plots), per-level diagnostics (diagnostics) and the files of ``bench report -o``."""

from prunebench.report.aggregate import SuiteResults, aggregate, collect, level_rows, suites_in
from prunebench.report.diagnostics import diagnostics_markdown, diagnostics_table, method_overlap
from prunebench.report.files import write_outputs
from prunebench.report.plots import flops_figure, plot_flops, plot_suite, suite_figure
from prunebench.report.tables import (
    COLUMNS,
    Column,
    compare_markdown,
    leaderboard_markdown,
    leaderboard_rows,
    suite_csv,
    suite_markdown,
    terminal_summary,
)

__all__ = [
    "COLUMNS", "Column", "SuiteResults", "aggregate", "collect", "compare_markdown", "diagnostics_markdown",
    "diagnostics_table", "flops_figure", "leaderboard_markdown", "leaderboard_rows", "level_rows", "method_overlap",
    "plot_flops", "plot_suite", "suite_csv", "suite_figure", "suite_markdown", "suites_in", "terminal_summary", "write_outputs",
]
