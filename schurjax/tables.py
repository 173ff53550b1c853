"""Result tables as pandas DataFrames, and the jobs of a sweep directory — host only.

``load_results`` and ``load_summary`` read a run directory, a sweep directory, a CSV file, or a
list of them, with typed columns: booleans as bool (``solved``, which may be empty, as pandas'
nullable ``boolean``), integers as int, empty cells as missing values.

A sweep directory is what a Hydra multirun writes: one subdirectory per job, each with the job's
number and command-line overrides in ``.hydra/``. ``join_jobs`` joins the jobs' tables into one,
with a ``job`` column (the job number) and a column per swept override that the table lacks;
``experiments.sweep`` writes it out as sweep_results.csv and sweep_summary.csv, and the loaders
fall back on it for a sweep directory without them.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from .pipeline import RESULT_COLUMNS
from .results import SUMMARY_COLUMNS, read_csv

# (a run's file, a sweep's file)
RESULTS_FILES = ("results.csv", "sweep_results.csv")
SUMMARY_FILES = ("summary.csv", "sweep_summary.csv")
# Config keys that set a table column of another name; every other key (alpha, task) is its column's name.
KEY_COLUMNS = {"widths": "width", "constructions": "construction", "seeds": "seed"}
# The cell type of every column a run writes, as its stage declares it (override columns are sniffed).
DECLARED_TYPES = {**RESULT_COLUMNS, **SUMMARY_COLUMNS}

Source = str | os.PathLike


@dataclass(frozen=True)
class SweepJob:
    number: int  # hydra.job.num
    directory: Path
    overrides: dict[str, str]  # key -> value, as given on the command line

    @property
    def name(self) -> str:
        return self.directory.name


@dataclass(frozen=True)
class JoinedTable:
    rows: list[dict[str, str]]
    columns: list[str]
    missing: list[SweepJob]  # jobs without the table (failed, interrupted, or still running)


def column_of(key: str) -> str:
    """The table column an override key sets (``widths`` -> ``width``)."""
    return KEY_COLUMNS.get(key, key)


def sweep_jobs(sweep_dir: Source) -> list[SweepJob]:
    """The jobs of a sweep directory (each saved its Hydra config in .hydra/), by job number."""
    jobs = [_job(path.parent) for path in Path(sweep_dir).glob("*/.hydra/hydra.yaml")]
    return sorted(jobs, key=lambda job: (job.number, job.name))


def _job(hydra_dir: Path) -> SweepJob:
    with open(hydra_dir / "hydra.yaml") as handle:
        number = yaml.safe_load(handle)["hydra"]["job"]["num"]
    with open(hydra_dir / "overrides.yaml") as handle:
        given = yaml.safe_load(handle) or []
    # "+key=value" and "++key=value" add or force a key; a deletion "~key" sets no value.
    overrides = dict(o.lstrip("+").split("=", 1) for o in given if "=" in o and not o.startswith("~"))
    return SweepJob(int(number), hydra_dir.parent, overrides)


def swept_keys(jobs: Sequence[SweepJob]) -> list[str]:
    """Override keys whose value differs between jobs, in command-line order."""
    keys = dict.fromkeys(key for job in jobs for key in job.overrides)
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def join_jobs(jobs: Sequence[SweepJob], filename: str) -> JoinedTable:
    """Every job's ``filename`` rows (cells as text) with a ``job`` column (its number) and a column
    per swept override whose column the table lacks (``train.lr``; not ``alpha``, ``widths``)."""
    tables = {job.directory: read_csv(job.directory / filename) for job in jobs if (job.directory / filename).is_file()}
    header = list(dict.fromkeys(column for rows in tables.values() for row in rows[:1] for column in row))
    added = [key for key in swept_keys(jobs) if column_of(key) not in header]
    rows = [
        {"job": str(job.number)} | {key: job.overrides.get(key, "") for key in added} | row
        for job in jobs
        for row in tables.get(job.directory, [])
    ]
    return JoinedTable(rows, ["job", *added, *header], [job for job in jobs if job.directory not in tables])


def load_results(path: Source | Sequence[Source]) -> pd.DataFrame:
    """results.csv rows as a DataFrame, from a run directory, a sweep directory (its
    sweep_results.csv, else its jobs' results.csv), a CSV file, or a list of these (concatenated;
    columns that only some have are missing elsewhere)."""
    return _load(path, RESULTS_FILES)


def load_summary(path: Source | Sequence[Source]) -> pd.DataFrame:
    """summary.csv rows (mean ± SEM per group and metric) as a DataFrame, read like ``load_results``."""
    return _load(path, SUMMARY_FILES)


def _load(path: Source | Sequence[Source], filenames: tuple[str, str]) -> pd.DataFrame:
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths:
        raise ValueError("no path given: pass a run or sweep directory, a CSV file, or a list of them")
    text = pd.concat([_text(Path(p), filenames) for p in paths], ignore_index=True)
    return _parse(text.fillna(""))


def _text(path: Path, filenames: tuple[str, str]) -> pd.DataFrame:
    """The cells of one source, as text."""
    candidates = [path] if path.is_file() else [path / name for name in filenames]
    for candidate in candidates:
        if candidate.is_file():
            return pd.read_csv(candidate, dtype=str, keep_default_na=False)
    joined = join_jobs(sweep_jobs(path) if path.is_dir() else [], filenames[0])
    if not joined.rows:
        raise FileNotFoundError(
            f"{path}: no {' or '.join(filenames)} there, nor sweep jobs with a {filenames[0]}; "
            "pass a run directory, a sweep directory or a CSV file"
        )
    return pd.DataFrame(joined.rows, columns=joined.columns, dtype=str)


def _parse(text: pd.DataFrame) -> pd.DataFrame:
    """The one place where CSV cells become values: each column, all of it at once."""
    return pd.DataFrame({column: _parse_column(column, cells) for column, cells in text.items()})


def _parse_column(name: str, cells: pd.Series) -> pd.Series:
    """A column as its declared type (schurjax.columns); an override column as the type its cells show."""
    empty = cells == ""
    kind = DECLARED_TYPES.get(name) or _sniffed_type(cells[~empty])
    if kind is bool:
        values = cells.str.lower().map({"true": True, "false": False})
        return values.astype("boolean" if empty.any() else bool)
    if kind is str:
        return cells.mask(empty)
    # float() itself, unlike pd.to_numeric, reads what repr(float) writes: nan and inf too
    values = cells.mask(empty).astype("float64")
    if kind is int:
        return values.astype("Int64" if empty.any() else "int64")
    return values


def _sniffed_type(present: pd.Series) -> type:
    if len(present) and present.str.lower().isin(["true", "false"]).all():
        return bool
    try:
        present.astype("float64")
    except ValueError:
        return str
    return int if len(present) and present.str.fullmatch(r"[+-]?\d+").all() else float
