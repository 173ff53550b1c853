"""Figures drawn from result rows (never from live models) — host only.

Uses matplotlib's object API (``Figure``) rather than pyplot, so plotting never touches global
backend state and works headless.
"""

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .interventions import SUBSETS, subset_name
from .results import is_diverged, mean_sem

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
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def _value(row: Mapping, metric: str) -> float | None:
    value = row.get(metric)
    return None if value in (None, "") else float(value)


def subset_figure(rows: Sequence[Mapping], stem: Path) -> list[Path]:
    """Per (construction, width) panel: the run's headline metric for every subset, seeds as dots.

    The copy task shows replay accuracy; the others ΔFVU (symmetric-log axis, since ablations
    range from harmless to catastrophic). Diverged seeds are drawn hollow and left out of means.
    """
    metric = "replay_accuracy" if any(_value(r, "replay_accuracy") is not None for r in rows) else "delta_fvu"
    constructions = list(dict.fromkeys(r["construction"] for r in rows))
    widths = list(dict.fromkeys(int(r["width"]) for r in rows))
    names = [subset_name(s) for s in SUBSETS]
    figure = Figure(figsize=(3.2 * len(widths) + 0.8, 2.6 * len(constructions) + 0.6), layout="constrained")
    axes = figure.subplots(len(constructions), len(widths), squeeze=False, sharey=True)
    for (i, construction), (j, width) in itertools.product(enumerate(constructions), enumerate(widths)):
        ax = axes[i, j]
        panel = [r for r in rows if r["construction"] == construction and int(r["width"]) == width]
        for x, name in enumerate(names):
            members = [r for r in panel if r["subset"] == name]
            kept = [v for r in members if not is_diverged(r) and (v := _value(r, metric)) is not None]
            dropped = [v for r in members if is_diverged(r) and (v := _value(r, metric)) is not None]
            jitter = np.linspace(-0.15, 0.15, max(len(kept), 1))[: len(kept)]
            ax.scatter(x + jitter, kept, s=10, color="0.55", zorder=2)
            ax.scatter([x] * len(dropped), dropped, s=14, facecolor="none", edgecolor="tab:red", zorder=2)
            if kept:
                mean, sem = mean_sem(kept)
                ax.errorbar(x, mean, yerr=0 if np.isnan(sem) else sem, fmt="o", color="tab:blue", ms=5, capsize=3, zorder=3)
        ax.set_xticks(range(len(names)), [SUBSET_LABELS[n] for n in names], rotation=60, fontsize=7)
        ax.set_title(f"{construction}, $N_h$={width}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if metric == "delta_fvu":
            ax.set_yscale("symlog", linthresh=1e-3)
        if j == 0:
            ax.set_ylabel("replay accuracy" if metric == "replay_accuracy" else "ΔFVU")
    figure.suptitle(f"{rows[0]['task']}: Schur-coupling ablations (α = {rows[0]['alpha']})", fontsize=10)
    return save(figure, stem)
