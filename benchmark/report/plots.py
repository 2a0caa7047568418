"""The suite's figures (matplotlib, one PNG each): accuracy against weights remaining, training FLOPs and
epochs, sign flips per level, mask overlap between methods, and the single neuron's success rate against d."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunebench.report.aggregate import SuiteResults
from prunebench.report.tables import _name


def plot_suite(sr: SuiteResults, path: Path) -> Path | None:
    """Write the suite's figure as PNG; None when there are no results to plot."""
    return save_figure(suite_figure(sr), path)


def suite_figure(sr: SuiteResults):
    """Accuracy vs weights remaining (log axis): a line per method with a ±std band over seeds (at a
    sparsity several levels share, the last one), the dense baseline dashed, references as points
    with error bars (x markers when approximate); None without results."""
    if sr.table.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colors: dict[str, Any] = {}
    last_only = {s.label for s in sr.specs if _result_levels(s.method) == "last"}
    for label, rows in sr.table[sr.table["method"] != "dense"].groupby("label", sort=False):
        if label in last_only:  # a run's last level is its result (cycles before SCULPT's prune are not)
            rows = rows[rows["level"] == rows.groupby("variant")["level"].transform("max")]
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


SWEPT_DIMENSION_METHODS = ("single_neuron",)  # methods swept over the input dimension ``d``: the success-vs-d figure


def _result_levels(method: str) -> str:
    """The method's ``result_levels`` ("every" for a method this installation does not have)."""
    from prunebench.api import UnknownName, get_method

    try:
        return get_method(method).result_levels
    except UnknownName:
        return "every"


def sweeps_d(sr: SuiteResults) -> bool:
    """Whether the suite gets the success-vs-d figure: every run is of a method swept over ``d``."""
    return bool(sr.specs) and all(s.method in SWEPT_DIMENSION_METHODS and "d" in s.params for s in sr.specs)


def success_vs_d_figure(sr: SuiteResults):
    """Success rate (%) against the input dimension d (log axis): one line per method label at its last
    level (the pruned neuron), seed std as error bars; dashed, the dense neuron (level 0), one line per
    distinct dense curve in grey (labels whose level 0 is the same runs' share it). None without results."""
    if sr.table.empty or not sweeps_d(sr):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d_of = {(s.label, s.variant): float(s.params["d"]) for s in sr.specs}
    table = sr.table.assign(d=[d_of.get((lb, v), float("nan")) for lb, v in zip(sr.table["label"], sr.table["variant"])])
    table = table.dropna(subset=["d"])
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    dense: dict[tuple, list[str]] = {}  # the dense curve's points -> the labels sharing it
    for label, rows in table.groupby("label", sort=False):
        last = rows.sort_values("level", kind="stable").drop_duplicates("d", keep="last").sort_values("d")
        std = 100 * last["accuracy_std"].fillna(0).to_numpy()
        ax.errorbar(last["d"], 100 * last["accuracy_mean"], yerr=std, marker="o", markersize=4, capsize=3, linewidth=1,
                    label=label)
        first = rows[rows["level"] == 0].sort_values("d")
        if not first.empty and int(rows["level"].max()) > 0:
            key = tuple(zip(first["d"], first["accuracy_mean"].round(12), first["accuracy_std"].fillna(0).round(12)))
            dense.setdefault(key, []).append(str(label))
    for i, (key, labels) in enumerate(dense.items()):
        d, mean, std = (list(c) for c in zip(*key))
        ax.errorbar(d, [100 * m for m in mean], yerr=[100 * s for s in std], color=("black", "dimgray", "darkgray")[i % 3],
                    linestyle="--", linewidth=0.8, marker="sD^v"[i % 4], markersize=3, capsize=2,
                    label=f"dense (level 0 of {', '.join(labels)})")
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.xaxis.set_major_locator(FixedLocator(sorted(set(table["d"]))))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("input dimension d (pruned to 1 input: sparsity 1 - 1/d)")
    ax.set_ylabel(f"{sr.metric} (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{sr.name}{' (reduced)' if sr.meta.get('reduced') else ''}: {sr.metric} against d", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the axes: no point hidden
    fig.tight_layout()
    return fig


def flops_figure(sr: SuiteResults):
    """Test accuracy against total training FLOPs (log axis): one marker per method and level, seed std
    as error bars, each method's points joined in order of sparsity; None without recorded FLOPs."""
    table = sr.table
    if table.empty or "train_flops" not in table or table["train_flops"].isna().all():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    markers = "osD^vP*Xh<>"
    for i, (label, rows) in enumerate(table.dropna(subset=["train_flops"]).groupby("label", sort=False)):
        rows = rows.sort_values("target_sparsity")
        ax.errorbar(rows["train_flops"], 100 * rows["accuracy_mean"], yerr=100 * rows["accuracy_std"].fillna(0),
                    marker=markers[i % len(markers)], markersize=4, capsize=2, linewidth=0.8, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("total training FLOPs (at each step's density)")
    ax.set_ylabel("test accuracy (%)" if sr.metric == "test acc" else f"{sr.metric} (%)")
    ax.set_title(f"{sr.name}: accuracy against training FLOPs", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_flops(sr: SuiteResults, path: Path) -> Path | None:
    """Write the accuracy-vs-training-FLOPs figure; None when no run recorded training FLOPs."""
    return save_figure(flops_figure(sr), path)


def save_figure(fig, path: Path) -> Path | None:
    """Write ``fig`` as PNG and close it; None for no figure."""
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _per_level(rows, column: str, scale: float = 100.0):
    """(levels, mean, std over seeds) of ``column`` per level of one label, times ``scale`` (fractions -> percent)."""
    grouped = rows.groupby("level")[column]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0)
    return mean.index.to_numpy(), scale * mean.to_numpy(), scale * std.to_numpy()


def sign_flips_figure(sr: SuiteResults):
    """Sign flips per level, one line per method with a seed std band: the share of unpruned weights
    whose sign differs from initialisation (left) and from the end of the previous level (right); below,
    where the records have them, the same per layer at each method's last level (mean over seeds).
    None when no method records more than one level."""
    levels = sr.levels
    columns = ["sign_flips_vs_init", "sign_flips_vs_previous"]
    if levels.empty or not set(columns) <= set(levels) or levels[columns].isna().all().all() or levels["level"].max() < 1:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = _layer_sign_flips(sr)
    fig, axes = plt.subplots(2 if layers else 1, 2, figsize=(10, 8 if layers else 4), dpi=120, squeeze=False)
    for label, rows in levels.groupby("label", sort=False):
        if rows["level"].max() < 1:
            continue
        for ax, column in zip(axes[0], columns):
            x, mean, std = _per_level(rows.dropna(subset=[column]), column)
            if len(x):
                (line,) = ax.plot(x, mean, marker="o", markersize=3, label=label)
                ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    for ax, what in zip(axes[0], ("against initialisation", "against the previous level")):
        ax.set_xlabel("level")
        ax.set_ylabel("sign flips (% of unpruned weights)")
        ax.set_title(f"{sr.name}: sign flips {what}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0][0].legend(fontsize=7)
    if layers:
        for ax, column, what in zip(axes[1], columns, ("against initialisation", "against the previous level")):
            if column not in layers:
                ax.set_axis_off()
                continue
            for label, (level, by_layer) in layers[column].items():
                ax.plot(range(len(by_layer)), [100 * v for v in by_layer.values()], marker="o", markersize=3,
                        label=f"{label} (level {level})")
            ax.set_xticks(range(len(by_layer)), list(by_layer), rotation=60, ha="right", fontsize=6)
            ax.set_ylabel("sign flips (% of the layer's unpruned weights)")
            ax.set_title(f"per layer, {what}, at each method's last level", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _layer_sign_flips(sr: SuiteResults) -> dict[str, dict[str, tuple[int, dict[str, float]]]]:
    """column -> label -> (its last level, layer -> sign flips there, mean over seeds), from the records
    that hold per-layer flips (older ones do not), for methods with more than one level."""
    labels = {s.run_id: _name(s.label, s.variant) for s in sr.specs}
    found: dict[str, dict[str, dict[int, list[dict[str, float]]]]] = {}
    for run_id, result in sr.run_results.items():
        last = result.levels[-1]
        if last.level < 1:
            continue
        for column in ("sign_flips_vs_init", "sign_flips_vs_previous"):
            if by_layer := getattr(last, f"layer_{column}"):
                found.setdefault(column, {}).setdefault(labels[run_id], {}).setdefault(last.level, []).append(by_layer)
    out: dict[str, dict[str, tuple[int, dict[str, float]]]] = {}
    for column, per_label in found.items():
        for label, per_level in per_label.items():
            level = max(per_level)
            runs = per_level[level]
            out.setdefault(column, {})[label] = (level, {name: sum(r[name] for r in runs) / len(runs) for name in runs[0]})
    return out


def epochs_figure(sr: SuiteResults):
    """Test accuracy against the cumulative training epochs of each level (a run's budget so far), one
    line per method with seed std as error bars; None without results."""
    levels = sr.levels
    if levels.empty or "epochs_trained" not in levels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    _distinct_colors(ax, levels["label"].nunique())
    for label, rows in levels.groupby("label", sort=False):
        _, acc, std = _per_level(rows, "test_accuracy")
        epochs = rows.groupby("level")["epochs_trained"].mean().to_numpy()
        ax.errorbar(epochs, acc, yerr=std, marker="o", markersize=3, capsize=2,
                    linewidth=0.8, label=label)
    ax.set_xlabel("cumulative training epochs")
    ax.set_ylabel("test accuracy (%)" if sr.metric == "test acc" else f"{sr.metric} (%)")
    ax.set_title(f"{sr.name}: accuracy against training epochs", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def train_loss_figure(sr: SuiteResults):
    """The training loss of every epoch row against the cumulative epochs trained, one line per method
    (mean over seeds, seed std band): a level's or a cycle's curve after the other, so each restart of
    the schedule shows; None without epoch rows."""
    if sr.results is None or not sr.run_results:
        return None
    from prunebench.store import RunDir

    curves: dict[str, list[dict[tuple[int, int], tuple[float, float]]]] = {}
    for spec in sr.specs:
        if spec.run_id in sr.run_results:
            if epochs := _epochs(RunDir(sr.results, spec).epochs()):
                curves.setdefault(_name(spec.label, spec.variant), []).append(epochs)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    _distinct_colors(ax, len(curves))
    for label, runs in curves.items():
        keys = sorted(set.intersection(*(set(r) for r in runs)))  # the seeds of one entry train the same epochs
        data = np.array([[r[k] for k in keys] for r in runs])
        x, loss = data[..., 0].mean(0), data[..., 1]
        (line,) = ax.plot(x, loss.mean(0), linewidth=1, marker="o", markersize=2, label=label)
        if len(runs) > 1:
            std = loss.std(0, ddof=1)
            ax.fill_between(x, loss.mean(0) - std, loss.mean(0) + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("cumulative training epochs")
    ax.set_ylabel("training loss (mean over the epoch's steps)")
    ax.set_yscale("log")
    ax.set_title(f"{sr.name}: training loss per level or cycle", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _distinct_colors(ax: Any, lines: int) -> None:
    """Past matplotlib's 10 default colours, 20 (tab20), so no two methods share one up to 20 lines."""
    if lines > 10:
        import matplotlib.pyplot as plt

        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)


def _epochs(rows: Sequence[Any]) -> dict[tuple[int, int], tuple[float, float]]:
    """(level, epoch) -> (cumulative epochs at its end, its training loss): the rows of one epoch (a
    segment boundary inside it, or a stop and resume) merged, their losses weighted by their steps."""
    merged: dict[tuple[int, int], list[float]] = {}
    for r in rows:
        end, loss_steps, steps = merged.get((r.level, r.epoch), (0.0, 0.0, 0))
        merged[(r.level, r.epoch)] = [r.epochs_trained, loss_steps + r.train_loss * r.steps, steps + r.steps]
    return {k: (end, loss_steps / steps if steps else math.nan) for k, (end, loss_steps, steps) in merged.items()}


def overlap_figure(name: str, overlaps: Sequence[Any]):
    """The mask overlap (IoU, mean over seeds) between every two methods at one level, as a heatmap:
    the level (and sweep point) most methods share, the deepest of those; ``overlaps`` are the report's
    mask-overlap entries (a, b, variant, level, iou). None with fewer than two methods at any level."""
    groups: dict[tuple[str, int], dict[tuple[str, str], float]] = {}
    for o in overlaps:
        groups.setdefault((o.variant, o.level), {})[(o.a, o.b)] = o.iou
    if not groups:
        return None
    (variant, level), pairs = max(groups.items(), key=lambda g: (len(_methods(g[1])), g[0][1]))
    names = _methods(pairs)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    iou = np.eye(len(names))
    for (a, b), value in pairs.items():
        iou[names.index(a), names.index(b)] = iou[names.index(b), names.index(a)] = value
    size = 2.5 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=120)
    image = ax.imshow(iou, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{iou[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white" if iou[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="mask IoU (mean over seeds)")
    ax.set_title(f"{name}: mask overlap at level {level}" + (f" ({variant})" if variant else ""), fontsize=10)
    fig.tight_layout()
    return fig


def _methods(pairs: Any) -> list[str]:
    """The methods of (a, b) pairs, in order of appearance."""
    return list(dict.fromkeys(m for pair in pairs for m in pair))


def landscape_figure(sr: SuiteResults):
    """What the suite's analyses measured: the test error along the line from the previous level's end
    state to the last level's (mean over seeds, per method), the error barrier per level (against the
    previous level: solid; against the next seed: dashed) and the Hessian's top eigenvalue per level,
    with seed std bands; None when the suite asks for no analyses."""
    if not sr.has_landscape:
        return None
    levels = sr.levels
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (path_ax, barrier_ax, hessian_ax) = plt.subplots(1, 3, figsize=(15, 4), dpi=120)
    labels = {s.run_id: _name(s.label, s.variant) for s in sr.specs}
    curves: dict[str, tuple[int, list[list[float]], list[float]]] = {}
    for run_id, record in sr.analyses.items():
        last = next((row for row in reversed(record.levels) if row.lmc_levels is not None), None)
        if last is None:
            continue
        level, errors, alphas = curves.get(labels[run_id], (last.level, [], last.lmc_levels.alphas))
        if last.level == level:
            errors.append(last.lmc_levels.errors)
            curves[labels[run_id]] = (level, errors, alphas)
    for label, (level, errors, alphas) in curves.items():
        e = 100 * np.array(errors)
        (line,) = path_ax.plot(alphas, e.mean(0), marker="o", markersize=3, label=f"{label} (level {level - 1} → {level})")
        if len(e) > 1:
            path_ax.fill_between(alphas, e.mean(0) - e.std(0, ddof=1), e.mean(0) + e.std(0, ddof=1), color=line.get_color(),
                                 alpha=0.2, linewidth=0)
    for label, rows in levels.groupby("label", sort=False):
        color = None
        for column, style in (("lmc_levels_barrier", "-"), ("lmc_seeds_barrier", "--")):
            x, mean, std = _per_level(rows.dropna(subset=[column]), column)
            if len(x):
                (line,) = barrier_ax.plot(x, mean, style, marker="o", markersize=3, color=color,
                                          label=f"{label}, {'previous level' if column == 'lmc_levels_barrier' else 'next seed'}")
                color = line.get_color()
                barrier_ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        x, mean, std = _per_level(rows.dropna(subset=["hessian_top_eigenvalue"]), "hessian_top_eigenvalue", scale=1.0)
        if len(x):
            (line,) = hessian_ax.plot(x, mean, marker="o", markersize=3, label=label, color=color)
            hessian_ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    for ax, xlabel, ylabel, title in (
            (path_ax, "alpha (0: previous level's end, 1: the level's end)", "test error (%)", "error along the line"),
            (barrier_ax, "level", "error barrier (points)", "linear mode connectivity"),
            (hessian_ax, "level", "top eigenvalue of the training-loss Hessian", "curvature")):
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(f"{sr.name}: {title}", fontsize=9)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=6)
    for ax in (barrier_ax, hessian_ax):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
