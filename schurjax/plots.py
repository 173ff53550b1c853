"""Figures drawn from typed result rows (never from live models) — host only.

Uses matplotlib's object API (``Figure``) rather than pyplot, so plotting never touches global
backend state and works headless.
"""

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .interventions import SUBSETS, subset_name
from .results import is_diverged, mean_sem, t_half_width
from .subspace import PREDICTORS, predictive_power
from .tasks import headline_metric

SUBSET_LABELS = {
    "none": "full",
    "T_RR": "−RR",
    "T_CR": "−C→R",
    "T_CC": "−CC",
    "T_RR+T_CR": "−RR−C→R",
    "T_RR+T_CC": "−RR−CC",
    "T_CR+T_CC": "−C→R−CC",
    "T_RR+T_CR+T_CC": "−all",
}


def save(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    # appended, not with_suffix: a stem may hold a dot of its own (``..._alpha0.85``)
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    # the figures lay themselves out (layout="constrained"): no second, "tight" layout pass; and
    # once laid out for the PNG, the PDF keeps that layout rather than solving it again
    figure.savefig(paths[0], dpi=150)
    figure.set_layout_engine("none")
    figure.savefig(paths[1], dpi=150)
    return paths


def _symlog(ax) -> None:
    """Symmetric-log y axis with head room above the largest value (autoscale clips it)."""
    low, high = ax.get_ylim()
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(min(low, -1e-3), max(high, 1e-3) * 3)


def _value(row: Mapping, metric: str) -> float | None:
    value = row.get(metric)
    return None if value is None else float(value)


def subset_figure(rows: Sequence[Mapping], stem: Path) -> list[Path]:
    """Per (construction, width) panel: the run's headline metric for every subset, seeds as dots.

    The task's headline metric: replay accuracy for copy; ΔFVU for the others (symmetric-log
    axis, since ablations range from harmless to catastrophic). Diverged seeds are drawn hollow and left out of means.
    """
    metric = headline_metric(rows[0]["task"])
    constructions = list(dict.fromkeys(r["construction"] for r in rows))
    widths = list(dict.fromkeys(r["width"] for r in rows))
    names = [subset_name(s) for s in SUBSETS]
    figure = Figure(figsize=(3.2 * len(widths) + 0.8, 2.6 * len(constructions) + 0.6), layout="constrained")
    axes = figure.subplots(len(constructions), len(widths), squeeze=False, sharey=True)
    for (i, construction), (j, width) in itertools.product(enumerate(constructions), enumerate(widths)):
        ax = axes[i, j]
        panel = [r for r in rows if r["construction"] == construction and r["width"] == width]
        for x, name in enumerate(names):
            members = [r for r in panel if r["subset"] == name]
            kept = [v for r in members if not is_diverged(r) and (v := _value(r, metric)) is not None]
            dropped = [v for r in members if is_diverged(r) and (v := _value(r, metric)) is not None]
            jitter = np.linspace(-0.15, 0.15, len(kept)) if len(kept) > 1 else np.zeros(len(kept))
            ax.scatter(x + jitter, kept, s=10, color="0.55", zorder=2)
            ax.scatter([x] * len(dropped), dropped, s=14, facecolor="none", edgecolor="tab:red", zorder=2)
            if kept:
                mean, sem = mean_sem(kept)
                error = 0 if np.isnan(sem) else sem
                ax.errorbar(x, mean, yerr=error, fmt="o", color="tab:blue", ms=5, capsize=3, zorder=3)
        ax.set_xticks(range(len(names)), [SUBSET_LABELS[n] for n in names], rotation=60, fontsize=7)
        ax.set_title(f"{construction}, $N_h$={width}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if metric == "delta_fvu":
            _symlog(ax)
        if j == 0:
            ax.set_ylabel("replay accuracy" if metric == "replay_accuracy" else "ΔFVU")
    figure.suptitle(f"{rows[0]['task']}: Schur-coupling ablations (α = {rows[0]['alpha']})", fontsize=10)
    return save(figure, stem)


def control_figure(rows: Sequence[Mapping], stem: Path) -> list[Path]:
    """Structured ablation vs matched-norm random perturbations, per nonempty subset.

    Dots: the structured ΔFVU of each model; bars: the median and 5–95% range of each random
    control family, averaged over models (symmetric-log axis).
    """
    names = [subset_name(s) for s in SUBSETS[1:]]
    families = [("raw", "tab:orange"), ("schur", "tab:green"), ("rotated", "tab:purple")]
    figure = Figure(figsize=(7.5, 3.4), layout="constrained")
    ax = figure.subplots()
    kept = [r for r in rows if not is_diverged(r)]
    for x, name in enumerate(names):
        members = [r for r in kept if r["subset"] == name]
        structured = [v for r in members if (v := _value(r, "delta_fvu")) is not None]
        ax.scatter(x - 0.3 + np.linspace(-0.05, 0.05, len(structured)), structured, s=12, color="tab:blue", zorder=3)
        for offset, (family, color) in zip((-0.1, 0.1, 0.3), families):
            stats = [
                [v for r in members if (v := _value(r, f"ctrl_{family}_{stat}")) is not None]
                for stat in ("median", "p05", "p95")
            ]
            if all(stats):
                median, low, high = (float(np.mean(s)) for s in stats)
                error = [[median - low], [high - median]]
                ax.errorbar(x + offset, median, yerr=error, fmt="s", ms=4, color=color, capsize=2)
    handles = [Line2D([], [], color="tab:blue", marker="o", ls="", label="structured ablation")] + [
        Line2D([], [], color=color, marker="s", ls="", label=f"random, {family}") for family, color in families
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_xticks(range(len(names)), [SUBSET_LABELS[n] for n in names], rotation=45, fontsize=8)
    _symlog(ax)
    ax.set_ylabel("ΔFVU")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{rows[0]['task']}: structured vs matched-norm random changes (5–95%)", fontsize=9)
    return save(figure, stem)


def _mean_and_error(values: Sequence[float], interval: str) -> tuple[float, float]:
    """Mean and error bar half-width: the SEM, or the half-width of a 95% Student-t interval."""
    mean, sem = mean_sem(values)
    if np.isnan(sem):
        return mean, 0.0
    return mean, sem if interval == "sem" else t_half_width(sem, len(values))


def lattice_figure(rows: Sequence[Mapping], stem: Path) -> list[Path]:
    """Figure 1: replay accuracy of every subset, one panel per construction.

    A gray segment joins each S without T_CC to S ∪ {T_CC}: a flat segment means removing T_CC
    costs nothing given the blocks already removed. With several seeds the dots are means ± SEM
    and the seeds are drawn as small points.
    """
    names = [subset_name(s) for s in SUBSETS]
    constructions = list(dict.fromkeys(r["construction"] for r in rows))
    figure = Figure(figsize=(3.6 * len(constructions), 3.0), layout="constrained")
    axes = figure.subplots(1, len(constructions), squeeze=False, sharey=True)[0]
    for ax, construction in zip(axes, constructions):
        panel = [r for r in rows if r["construction"] == construction and not is_diverged(r)]
        per_subset = {n: [r["replay_accuracy"] for r in panel if r["subset"] == n] for n in names}
        means = {n: mean_sem(v)[0] for n, v in per_subset.items()}
        for subset in SUBSETS:
            if "T_CC" not in subset:
                a, b = subset_name(subset), subset_name((*subset, "T_CC"))
                ax.plot([names.index(a), names.index(b)], [means[a], means[b]], color="0.7", lw=1.2, zorder=1)
        for x, name in enumerate(names):
            values = per_subset[name]
            if len(values) > 1:
                ax.scatter(x + np.linspace(-0.12, 0.12, len(values)), values, s=6, color="0.45", zorder=2)
            mean, error = _mean_and_error(values, "sem")
            ax.errorbar(x, mean, yerr=error, fmt="o", color="tab:blue", ms=5, capsize=3, zorder=3)
        seeds = sorted({r["seed"] for r in panel})
        width = panel[0]["width"] if panel else ""
        label = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds, mean ± SEM"
        ax.set_title(f"{construction}, $N_h$={width} ({label})", fontsize=9)
        ax.set_xticks(range(len(names)), [SUBSET_LABELS[n] for n in names], rotation=60, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("replay accuracy (128 lags)")
    title = f"copy: Schur-coupling ablations (α = {rows[0]['alpha']}); gray: S → S ∪ {{T_CC}}"
    figure.suptitle(title, fontsize=10)
    return save(figure, stem)


def block_figure(rows: Sequence[Mapping], stem: Path, interval: str = "sem") -> list[Path]:
    """Figure 2: per task, ΔFVU (top) and S_ΔT (bottom) of each single-block ablation.

    Bars are means with ± SEM (``interval="sem"``) or a 95% confidence interval
    (``interval="ci95"``); the seeds are drawn as points. Symmetric-log axes: blocks range from
    harmless to catastrophic.
    """
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    blocks = [subset_name((b,)) for b in ("T_RR", "T_CR", "T_CC")]
    figure = Figure(figsize=(3.0 * len(tasks), 4.8), layout="constrained")
    axes = figure.subplots(2, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        kept = [r for r in rows if r["task"] == task and not is_diverged(r)]
        for i, metric in enumerate(("delta_fvu", "s_delta_t")):
            ax = axes[i, j]
            for x, block in enumerate(blocks):
                values = [v for r in kept if r["subset"] == block and (v := _value(r, metric)) is not None]
                if not values:
                    continue
                mean, error = _mean_and_error(values, interval)
                ax.bar(x, mean, yerr=error, color="tab:blue", alpha=0.6, capsize=3)
                ax.scatter(x + np.linspace(-0.15, 0.15, len(values)), values, s=8, color="0.2", zorder=3)
            ax.set_xticks(range(len(blocks)), [SUBSET_LABELS[b] for b in blocks], fontsize=8)
            ax.set_xlim(-0.6, len(blocks) - 0.4)
            ax.grid(axis="y", alpha=0.3)
            _symlog(ax)
            if i == 0:
                n_seeds = len({r["seed"] for r in kept})
                ax.set_title(f"{task} ({n_seeds} seed{'s' if n_seeds != 1 else ''})", fontsize=9)
            if j == 0:
                ax.set_ylabel("ΔFVU" if metric == "delta_fvu" else "$S_{ΔT}$")
    bars = "mean ± SEM" if interval == "sem" else "mean, 95% CI"
    figure.suptitle(f"neuro suite: single-block ablations ({bars}; points: seeds)", fontsize=10)
    return save(figure, stem)


DIAGNOSTIC_LABELS = {
    "removed_mass": "removed Schur mass ‖ΔT‖/‖T‖",
    "act_perturbation": "E‖Dh‖² / E‖Wh‖²",
    "pc_overlap": "‖P_k D P_k‖² / ‖D‖²",
    "pc_overlap_col": "‖P_k D‖² / ‖D‖²",
    "pc_overlap_row": "‖D P_k‖² / ‖D‖²",
    "readout_overlap": "‖P_out D‖² / ‖D‖²",
}


def diagnostic_figure(rows: Sequence[Mapping], stem: Path) -> list[Path]:
    """ΔFVU against each subspace diagnostic (and the removed mass), one dot per model × subset.

    Tasks are colours; each panel's title gives the Spearman ρ over all its dots.
    """
    power = {p["predictor"]: p for p in predictive_power(rows) if p["scope"] == "all"}
    kept = [r for r in rows if r["subset"] != "none" and not is_diverged(r) and _value(r, "pc_overlap") is not None]
    tasks = list(dict.fromkeys(r["task"] for r in kept))
    figure = Figure(figsize=(10, 5.6), layout="constrained")
    axes = figure.subplots(2, 3, sharey=True).ravel()
    for ax, predictor in zip(axes, PREDICTORS):
        for task, color in zip(tasks, itertools.cycle(["tab:blue", "tab:orange", "tab:green", "tab:purple"])):
            members = [r for r in kept if r["task"] == task]
            x, y = [_value(r, predictor) for r in members], [_value(r, "delta_fvu") for r in members]
            ax.scatter(x, y, s=12, color=color, label=task)
        if predictor in ("removed_mass", "act_perturbation"):
            ax.set_xscale("log")
        ax.set_xlabel(DIAGNOSTIC_LABELS[predictor], fontsize=8)
        ax.set_title(f"Spearman ρ = {power[predictor]['spearman_rho']:.2f} (n = {power[predictor]['n']})", fontsize=9)
        ax.grid(alpha=0.3)
        _symlog(ax)
    axes[0].set_ylabel("ΔFVU")
    axes[3].set_ylabel("ΔFVU")
    axes[0].legend(fontsize=7)
    figure.suptitle("Does the perturbation's overlap with the activity predict the damage?", fontsize=10)
    return save(figure, stem)


def _is_stable(point: Mapping) -> bool:
    return str(point["stable"]).lower() in ("true", "1")


def _fixed_point_panel(ax, mine: Sequence[Mapping], subset: str) -> None:
    """One model's full-network fixed points (grey) and one ablation's (red), each joined to its match."""
    full = {(p["input_level"], int(p["fp_index"])): p for p in mine if p["subset"] == "none"}
    ablated = [p for p in mine if p["subset"] == subset and subset != "none"]
    for group, color in ((list(full.values()), "0.6"), (ablated, "tab:red")):
        for marker, kind in (("o", True), ("x", False)):
            chosen = [p for p in group if _is_stable(p) == kind]
            xs, ys = [float(p["pc1"]) for p in chosen], [float(p["pc2"]) for p in chosen]
            ax.scatter(xs, ys, s=18, marker=marker, color=color, zorder=3)
    for p in ablated:
        if p["matched_full_index"] not in (None, ""):
            target = full[p["input_level"], int(p["matched_full_index"])]
            xs, ys = [float(p["pc1"]), float(target["pc1"])], [float(p["pc2"]), float(target["pc2"])]
            ax.plot(xs, ys, color="tab:red", lw=0.6, alpha=0.6)


# rows of the fixed-point figure: panels of more models are too small to read (and take
# matplotlib's layout tens of seconds); fixed_points.csv holds every model's points
FIXED_POINT_FIGURE_MODELS = 4


def fixed_point_figure(points: Sequence[Mapping], stem: Path) -> list[Path]:
    """Fixed points of the first few full networks (grey) and their ablations (red) in each full
    network's top-PC plane.

    One row per model (the first :data:`FIXED_POINT_FIGURE_MODELS` of the run), one column per
    ablation; circles are stable, crosses unstable; a thin line joins an ablated fixed point to the
    full one it is matched to.
    """
    def model_of(p: Mapping) -> tuple[str, int, int]:
        return p["construction"], int(p["width"]), int(p["seed"])

    every_model = list(dict.fromkeys(map(model_of, points)))
    models = every_model[:FIXED_POINT_FIGURE_MODELS]
    subsets = list(dict.fromkeys(p["subset"] for p in points if p["subset"] != "none")) or ["none"]
    figure = Figure(figsize=(2.6 * len(subsets) + 0.6, 2.4 * max(len(models), 1) + 0.6), layout="constrained")
    axes = figure.subplots(max(len(models), 1), len(subsets), squeeze=False)
    for (i, model), (j, subset) in itertools.product(enumerate(models), enumerate(subsets)):
        ax = axes[i, j]
        _fixed_point_panel(ax, [p for p in points if model_of(p) == model], subset)
        ax.set_title(f"seed {model[2]}: {SUBSET_LABELS[subset]}", fontsize=9)
        ax.grid(alpha=0.3)
        if i == len(models) - 1:
            ax.set_xlabel("PC1")
        if j == 0:
            ax.set_ylabel("PC2")
    handles = [
        Line2D([], [], color="0.6", marker="o", ls="", label="full, stable"),
        Line2D([], [], color="0.6", marker="x", ls="", label="full, unstable"),
        Line2D([], [], color="tab:red", marker="o", ls="", label="ablated, stable"),
        Line2D([], [], color="tab:red", marker="x", ls="", label="ablated, unstable"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7)
    task = points[0]["task"] if points else ""
    shown = "" if len(models) == len(every_model) else f" ({len(models)} of {len(every_model)} models)"
    figure.suptitle(f"{task}: fixed points, full vs ablated (top-PC plane of the full network){shown}", fontsize=10)
    return save(figure, stem)
