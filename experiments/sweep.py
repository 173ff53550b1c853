"""A multirun that summarises itself:  python -m experiments.run -m task=flipflop alpha=0.85,0.9,0.95

When a multirun ends, its sweep directory (hydra.sweep.dir) holds, besides one directory per job:
sweep_results.csv and sweep_summary.csv, every job's results.csv / summary.csv rows with a ``job``
column and a column per swept override that the table lacks (``train.lr``; ``alpha`` and ``width``
are columns already); and figures/sweep_<metric>.{png,pdf}, each task's headline metric per subset
against the swept value. ``SummariseSweep`` does this as a Hydra callback (registered in
conf/config.yaml); ``python -m experiments.collect <sweep dir>`` does it again later.
"""

import atexit
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from omegaconf import DictConfig

from schurjax import tables, tasks
from schurjax.interventions import SUBSETS, subset_name
from schurjax.plots import SUBSET_LABELS, save
from schurjax.results import write_csv
from schurjax.tasks import TASKS

log = logging.getLogger(__name__)

SWEEP_RESULTS = "sweep_results.csv"
SWEEP_SUMMARY = "sweep_summary.csv"
METRIC_LABELS = {"replay_accuracy": "replay accuracy", "delta_fvu": "ΔFVU"}
# The figure's panels: one per combination of these that the sweep did not vary.
PANEL_COLUMNS = ("task", "construction", "width")


def summarise_sweep(sweep_dir: str | Path) -> list[tables.SweepJob]:
    """Write the sweep directory's tables and figures from its jobs' results; returns (and logs
    as a warning) the jobs without results. A ValueError names the directory if no job has any."""
    sweep_dir = Path(sweep_dir)
    jobs = tables.sweep_jobs(sweep_dir)
    results = tables.join_jobs(jobs, "results.csv")
    if not results.rows:
        raise ValueError(_no_results(sweep_dir, jobs))
    if results.missing:
        log.warning(
            "%d of %d jobs in %s have no results.csv (failed, interrupted or still running): %s",
            len(results.missing), len(jobs), sweep_dir, ", ".join(job.name for job in results.missing),
        )
    write_csv(sweep_dir / SWEEP_RESULTS, results.rows, results.columns)
    summary = tables.join_jobs(jobs, "summary.csv")
    write_csv(sweep_dir / SWEEP_SUMMARY, summary.rows, summary.columns)
    # seeds are what the figure averages over, never an axis (seeds=[0],[1] splits a run into jobs)
    swept = [column for key in tables.swept_keys(jobs) if (column := tables.column_of(key)) != "seed"]
    figures = sweep_figures(tables.load_results(sweep_dir / SWEEP_RESULTS), swept, sweep_dir / "figures")
    log.info(
        "sweep of %d jobs summarised in %s: %s, %s, %s", len(jobs), sweep_dir, SWEEP_RESULTS, SWEEP_SUMMARY,
        ", ".join(str(path.relative_to(sweep_dir)) for path in figures),
    )
    return results.missing


def _no_results(sweep_dir: Path, jobs: Sequence[tables.SweepJob]) -> str:
    if jobs:
        return f"{sweep_dir}: none of its {len(jobs)} jobs has a results.csv (failed, interrupted or still running)"
    found = "holds no Hydra jobs (*/.hydra/hydra.yaml)" if sweep_dir.is_dir() else "does not exist"
    return f"{sweep_dir} {found}; pass the directory of a multirun (its hydra.sweep.dir)"


def headline_metric(task: str, rows: pd.DataFrame) -> str:
    """The metric a task's results are judged by: the registered task's own; for a task this process
    does not know (registered only inside the jobs), replay accuracy where its rows have it."""
    if task in TASKS:
        return tasks.headline_metric(task)
    return "replay_accuracy" if rows["replay_accuracy"].notna().any() else "delta_fvu"


def sweep_figures(frame: pd.DataFrame, swept: Sequence[str], out_dir: Path) -> list[Path]:
    """``out_dir/sweep_<metric>.{png,pdf}`` for each headline metric among the sweep's tasks."""
    metrics = pd.Series({task: headline_metric(task, rows) for task, rows in frame.groupby("task", sort=False)})
    by_metric = frame.groupby(frame["task"].map(metrics), sort=False)
    return [
        path for metric, rows in by_metric for path in sweep_figure(rows, swept, metric, out_dir / f"sweep_{metric}")
    ]


def sweep_figure(frame: pd.DataFrame, swept: Sequence[str], metric: str, stem: Path) -> list[Path]:
    """``metric`` of every subset against the swept value, mean ± SEM over the seeds that did not
    diverge, one line per subset; one panel per (task, construction, width) the sweep did not vary.

    One numeric swept key is a numeric axis; categorical sweeps (constructions, task) and several
    swept keys are categories, in job order; with none (jobs that differ in seeds only), all is pooled.
    """
    swept = list(swept)
    x, categories = _x_values(frame, swept)
    panel_columns = [c for c in PANEL_COLUMNS if c not in swept]
    panels = list(frame.groupby(panel_columns, sort=False)) if panel_columns else [((), frame)]
    columns = min(len(panels), 4)
    figure = Figure(figsize=(3.4 * columns + 1.2, 2.8 * math.ceil(len(panels) / columns) + 0.4), layout="constrained")
    axes = figure.subplots(math.ceil(len(panels) / columns), columns, squeeze=False, sharey=True).ravel()
    for ax, (panel, rows) in zip(axes, panels):
        _draw_panel(ax, rows[~rows["diverged"]], x, metric)
        ax.set_title(", ".join(f"{c}={v}" for c, v in zip(panel_columns, panel)), fontsize=8)
        ax.set_xlabel(", ".join(swept))
        if categories is not None:
            ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 3 else 0, fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[len(panels) - 1].legend(fontsize=6, loc="best")
    figure.suptitle(f"{METRIC_LABELS.get(metric, metric)} across the sweep (mean ± SEM over seeds)", fontsize=9)
    return save(figure, stem)


def _x_values(frame: pd.DataFrame, swept: list[str]) -> tuple[pd.Series, list[str] | None]:
    """Each row's x: the swept value on a numeric axis, else the index of its category and the labels."""
    if not swept:
        return pd.Series(0.0, index=frame.index), ["all jobs"]
    first = frame[swept[0]]
    if len(swept) == 1 and pd.api.types.is_numeric_dtype(first) and not pd.api.types.is_bool_dtype(first):
        return first.astype("float64"), None
    text = frame[swept].astype(str)
    labels = text.iloc[:, 0] if len(swept) == 1 else text.apply(
        lambda row: ", ".join(f"{key}={value}" for key, value in row.items()), axis=1
    )
    categories = list(dict.fromkeys(labels))
    return labels.map({label: i for i, label in enumerate(categories)}).astype("float64"), categories


def _draw_panel(ax, rows: pd.DataFrame, x: pd.Series, metric: str) -> None:
    for name in (subset_name(s) for s in SUBSETS):
        members = rows[rows["subset"] == name]
        stats = members[metric].groupby(x[members.index]).agg(["mean", "sem"]).dropna(subset=["mean"])
        ax.errorbar(stats.index, stats["mean"], yerr=stats["sem"].fillna(0.0), marker="o", ms=3, capsize=2,
                    lw=1, label=SUBSET_LABELS[name])
    if metric == "delta_fvu":
        # ablations range from harmless to catastrophic, as in the run's own subset figure
        ax.set_yscale("symlog", linthresh=1e-3)
    ax.grid(alpha=0.3)


class SummariseSweep(Callback):
    """Hydra callback: summarise the sweep directory when a multirun ends (``summarise_sweep``).

    Runs in the launching process under every launcher (basic, submitit_local, SLURM), after
    all jobs have returned.
    """

    def __init__(self) -> None:
        self._sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_dir = Path(config.hydra.sweep.dir).absolute()
        # Hydra's sweepers raise at the first failed job and never reach on_multirun_end; at exit,
        # the finished jobs are summarised all the same, and the others listed.
        atexit.register(self._summarise)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarise()

    def _summarise(self) -> None:
        if self._sweep_dir is None:  # summarised already
            return
        sweep_dir, self._sweep_dir = self._sweep_dir, None
        atexit.unregister(self._summarise)
        try:
            summarise_sweep(sweep_dir)
        except ValueError as error:
            log.warning("no sweep summary: %s", error)
