"""Tidy result rows, aggregates (mean ± SEM), and CSV / npz I/O — host only.

The column names are the output contract of a run directory: users and later tools read them.
Every table's columns are declared with their cell types (schurjax.columns), so that
:func:`read_table` gives back the values a run held in memory. Every file is written to a
temporary name and renamed, so an interrupted run never leaves a half-written file behind.
"""

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.stats

from .atomic import atomic_write
from .columns import Columns, declare, join_columns, typed_row
from .controls import CONTROLS
from .weights import RNNWeights

# The key of a result row: one model (construction, width, seed) of a task, one subset at one α.
IDENTITY_COLUMNS = declare(task=str, construction=str, width=int, seed=int, alpha=float, subset=str)
# Summaries pool the seeds of a group.
GROUP_COLUMNS = tuple(name for name in IDENTITY_COLUMNS if name != "seed")
SUMMARY_COLUMNS = join_columns(
    declare(**{name: IDENTITY_COLUMNS[name] for name in GROUP_COLUMNS}),
    declare(metric=str, mean=float, sem=float, n=int, n_diverged=int),
)
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
    (S_ΔT where undefined, replay accuracy outside the copy task) are left out of ``n``. ``rows``
    hold typed values: from memory or :func:`read_table`.
    """
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in GROUP_COLUMNS), []).append(row)
    summary = []
    for group, members in groups.items():
        kept = [r for r in members if not is_diverged(r)]
        for metric in SUMMARY_METRICS:
            values = [float(r[metric]) for r in kept if r.get(metric) is not None]
            if not values:
                continue
            mean, sem = mean_sem(values)
            summary.append(
                dict(zip(GROUP_COLUMNS, group))
                | dict(metric=metric, mean=mean, sem=sem, n=len(values), n_diverged=len(members) - len(kept))
            )
    return summary


def is_diverged(row: Mapping) -> bool:
    """Whether a typed result row (from memory or :func:`read_table`) belongs to a diverged model."""
    diverged = row["diverged"]
    if isinstance(diverged, str):
        raise TypeError(
            "this result row holds the text of a CSV cell; read results.csv with schurjax.pipeline.read_results"
        )
    return bool(diverged)


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping], columns: Iterable[str]) -> None:
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
    """The cells of a CSV file as text; :func:`read_table` reads them back as their types."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_table(path: str | os.PathLike, columns: Columns) -> list[dict]:
    """Rows of a CSV file written with ``columns``, each cell as its declared type (empty: None).

    A file may lack declared columns (tables written before a column existed); a column the
    declaration does not know is refused, since its type is unknown.
    """
    typed = []
    for line, cells in enumerate(read_csv(path), start=2):
        try:
            typed.append(typed_row(cells, columns))
        except ValueError as error:
            raise ValueError(f"{path}, line {line}: {error}; it is not a table of these columns") from None
    return typed


def read_summary(path: str | os.PathLike) -> list[dict]:
    """A summary.csv, typed."""
    return read_table(path, SUMMARY_COLUMNS)


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
