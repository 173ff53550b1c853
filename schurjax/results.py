"""Tidy result rows, aggregates (mean ± SEM), and CSV / npz I/O — host only.

The column names are the output contract of a run directory: users and later tools read them.
Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file behind.
"""

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.stats

from .atomic import atomic_write
from .controls import CONTROLS
from .weights import RNNWeights

RESULT_COLUMNS = (
    "task",
    "construction",
    "width",
    "seed",
    "alpha",
    "subset",
    "n_R",
    "n_blocks",
    "rho",
    "mass_RR",
    "mass_CR",
    "mass_CC",
    "nonnormal_fraction",
    "removed_mass",
    "fvu",
    "delta_fvu",
    "s_delta_t",
    "s_delta_t_note",
    "replay_accuracy",
    "rollout_distance",
    # subspace diagnostics of D = W - W~(S), schurjax.subspace
    "act_perturbation",
    "pc_overlap",
    "pc_overlap_col",
    "pc_overlap_row",
    "readout_overlap",
    "pc_k",
    "train_loss",
    "train_steps",
    "solved",
    "diverged",
    "source",
    *(f"ctrl_{family}_{stat}" for family in CONTROLS for stat in ("median", "p05", "p95", "rank")),
)
GROUP_COLUMNS = ("task", "construction", "width", "alpha", "subset")
SUMMARY_COLUMNS = (*GROUP_COLUMNS, "metric", "mean", "sem", "n", "n_diverged")
SUMMARY_METRICS = (
    "fvu",
    "delta_fvu",
    "s_delta_t",
    "replay_accuracy",
    "rollout_distance",
    "act_perturbation",
    "pc_overlap",
    "pc_overlap_col",
    "pc_overlap_row",
    "readout_overlap",
    "removed_mass",
    "nonnormal_fraction",
    "mass_RR",
    "mass_CR",
    "mass_CC",
    "n_R",
    "rho",
    "train_steps",
    *(f"ctrl_{family}_{stat}" for family in CONTROLS for stat in ("median", "rank")),
)
# RNNWeights field -> key in models/*.npz
NPZ_KEYS = {"w_xh": "W_xh", "w_hh": "W_hh", "w_hy": "W_hy", "b_h": "b_h", "b_y": "b_y"}


def sensitivity(delta_fvu: float, removed_mass: float, min_removed_mass: float) -> tuple[float | None, str]:
    """S_ΔT = ΔFVU / removed mass, or (None, reason) where the removed mass is numerically zero."""
    if removed_mass <= min_removed_mass:
        return None, f"removed Schur mass {removed_mass:.3g} <= {min_removed_mass:g} (numerically zero)"
    return delta_fvu / removed_mass, ""


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / √n); the SEM of one value is undefined (NaN)."""
    array = np.asarray(values, np.float64)
    if array.size == 0:
        return math.nan, math.nan
    sem = array.std(ddof=1) / math.sqrt(array.size) if array.size > 1 else math.nan
    return float(array.mean()), float(sem)


def t_half_width(sem: float, n: int, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval (``level``) of a mean of ``n`` values with
    standard error ``sem``: the interval is mean ± this. Undefined (NaN) for fewer than 2 values."""
    if n < 2:
        return math.nan
    return float(scipy.stats.t.ppf(0.5 + level / 2, n - 1) * sem)


def summarise(rows: Iterable[Mapping]) -> list[dict]:
    """Long-format aggregate over seeds: one row per group × metric.

    Diverged seeds are excluded from every mean and counted in ``n_diverged``; missing values
    (S_ΔT where undefined, replay accuracy outside the copy task) are left out of ``n``.
    """
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in GROUP_COLUMNS), []).append(row)
    summary = []
    for group, members in groups.items():
        kept = [r for r in members if not is_diverged(r)]
        for metric in SUMMARY_METRICS:
            values = [float(r[metric]) for r in kept if r.get(metric) not in (None, "")]
            if not values:
                continue
            mean, sem = mean_sem(values)
            summary.append(
                dict(zip(GROUP_COLUMNS, group))
                | dict(metric=metric, mean=mean, sem=sem, n=len(values), n_diverged=len(members) - len(kept))
            )
    return summary


def is_diverged(row: Mapping) -> bool:
    """Whether a result row (from memory or read back from CSV) belongs to a diverged model."""
    return row["diverged"] is True or str(row["diverged"]).lower() in ("true", "1")


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str]) -> None:
    """Write rows (missing values as empty cells) atomically."""
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _format(row.get(c)) for c in columns})


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def model_filename(task: str, construction: str, width: int, seed: int) -> str:
    return f"{task}_{construction}_w{width}_s{seed}.npz"


def weights_npz(weights: RNNWeights) -> bytes:
    """The .npz file of W_xh [Nh,Nx], W_hh [Nh,Nh], W_hy [Ny,Nh] (+ biases) in PyTorch orientation."""
    buffer = io.BytesIO()
    np.savez(buffer, **{NPZ_KEYS[field]: value for field, value in weights.arrays().items()})
    return buffer.getvalue()


def save_weights(path: str | os.PathLike, weights: RNNWeights) -> None:
    """Save :func:`weights_npz` of ``weights`` to ``path``."""
    with atomic_write(path) as handle:
        handle.write(weights_npz(weights))


def load_weights(path: str | os.PathLike | io.BytesIO) -> RNNWeights:
    """Read a file (or the bytes) written by :func:`save_weights`."""
    with np.load(path) as archive:
        return RNNWeights(
            **{field: archive[key] for field, key in NPZ_KEYS.items() if key in archive.files}
        )
