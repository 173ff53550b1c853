"""The protocol study: under which training protocol does every seed learn, and what does the
protocol do to the ablation profile? Entry point: ``python -m experiments.protocols``.

Every (task, protocol) cell trains its seeds through the ordinary pipeline (and its model cache,
so the paper reproduction reuses the models), evaluates the full model and its single-block
ablations on the held-out set, and reads each model's per-chunk loss and gradient-norm history.
"""

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from schurjax.cache import ModelCache
from schurjax.evaluate import held_out_set
from schurjax.pipeline import (
    RESULT_COLUMNS,
    RunSpec,
    TrainedModel,
    analyse,
    learning_failure,
    model_training_key,
    train_all,
)
from schurjax.results import is_diverged, write_csv

log = logging.getLogger(__name__)

BLOCKS = ("T_RR", "T_CR", "T_CC")
BLOCK_LABELS = {"T_RR": "T_RR", "T_CR": "T_C→R", "T_CC": "T_CC"}
# A chunk's training loss this low means the model had found a solution at that point.
FOUND_LOSS = 0.02


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One cell of the study: a task trained under one named protocol."""

    protocol: str
    spec: RunSpec

    @property
    def task(self) -> str:
        return self.spec.task


@dataclasses.dataclass(frozen=True)
class Cell:
    candidate: Candidate
    trained: list[TrainedModel]
    rows: list[dict]
    # Training (each model's share of the call that trained it, also when reused from the cache)
    # plus this run's analysis.
    seconds: float
    reused: int


def learned(full_row: Mapping) -> bool:
    """Held-out FVU <= 0.1 and, for tasks with a solved criterion (copy), solved; never if diverged."""
    return learning_failure(full_row) is None


def full_rows(cell: Cell) -> list[Mapping]:
    """The full-model result row of every trained model of ``cell``, in training order."""
    by_model = {(r["construction"], r["seed"]): r for r in cell.rows if r["subset"] == "none"}
    return [by_model[m.construction, m.seed] for m in cell.trained]


def run_cell(candidate: Candidate, cache: ModelCache, progress: bool) -> Cell:
    """Train (or reuse) and analyse one cell; subspace diagnostics come along, controls do not."""
    spec = candidate.spec
    keys = [model_training_key(spec, *k) for k in spec.model_keys()]
    reused = sum(cache.get(k) is not None for k in keys)
    started = time.perf_counter()
    trained = train_all(spec, progress=progress, cache=cache)
    analysis_started = time.perf_counter()
    data = held_out_set(spec.eval_task(), spec.eval)
    rows = analyse(trained, data, task=spec.task, alpha=spec.alpha, config=spec.eval, diagnostics=spec.diagnostics)
    training = [m.train_seconds for m in trained]
    if None in training:  # models cached before training times were recorded
        seconds = time.perf_counter() - started
    else:
        seconds = sum(training) + time.perf_counter() - analysis_started
    log.info("%s / %s: %.1f s (%d of %d models reused)", spec.task, candidate.protocol, seconds, reused, len(keys))
    return Cell(candidate, trained, rows, seconds, reused)


def _quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    if not len(values):
        return (np.nan,) * 3
    q25, median, q75 = np.percentile(np.asarray(values, np.float64), [25, 50, 75])
    return float(median), float(q25), float(q75)


def _profile(full: Sequence[Mapping], rows: Sequence[Mapping]) -> dict:
    """Single-block ΔFVU over the learned seeds: median, IQR and the share each block dominates."""
    by_model = {(r["construction"], r["seed"], r["subset"]): r for r in rows}
    deltas = np.array([[by_model[f["construction"], f["seed"], b]["delta_fvu"] for b in BLOCKS] for f in full])
    summary = {}
    for position, block in enumerate(BLOCKS):
        median, q25, q75 = _quantiles(deltas[:, position] if len(full) else [])
        dominant = float(np.mean(deltas.argmax(axis=1) == position)) if len(full) else np.nan
        summary |= {f"{block}_median": median, f"{block}_q25": q25, f"{block}_q75": q75, f"{block}_dominant": dominant}
    summary["CC_over_CR"] = float(np.mean(deltas[:, 2] > deltas[:, 1])) if len(full) else np.nan
    return summary


def summarise_cell(cell: Cell) -> dict:
    """One row of the study table."""
    spec, full = cell.candidate.spec, full_rows(cell)
    flags = [learned(row) for row in full]
    median, q25, q75 = _quantiles([row["fvu"] for row in full])
    learned_full = [row for row, ok in zip(full, flags) if ok]
    peak = [np.nanmax(m.grad_norm_history) for m in cell.trained if m.grad_norm_history]
    by_construction = {c: [ok for m, ok in zip(cell.trained, flags) if m.construction == c] for c in spec.constructions}
    return dict(
        task=spec.task,
        protocol=cell.candidate.protocol,
        settings=spec.train.describe(),
        models=len(flags),
        learned=sum(flags),
        learned_by_construction=", ".join(f"{c} {sum(oks)}/{len(oks)}" for c, oks in by_construction.items()),
        diverged=sum(m.diverged for m in cell.trained),
        fvu_median=median,
        fvu_q25=q25,
        fvu_q75=q75,
        peak_grad_norm_median=float(np.median(peak)) if peak else np.nan,
        seconds=cell.seconds,
        reused=cell.reused,
    ) | _profile(learned_full, cell.rows)


def history_rows(cell: Cell) -> list[dict]:
    """Per model and chunk of training: the loss and the largest gradient norm."""
    spec = cell.candidate.spec
    chunk = spec.train.chunk_length
    return [
        dict(task=spec.task, protocol=cell.candidate.protocol, construction=m.construction, seed=m.seed,
             step=min((i + 1) * chunk, spec.train.steps), loss=loss, grad_norm=norm)
        for m in cell.trained
        for i, (loss, norm) in enumerate(zip(m.loss_history, m.grad_norm_history))
    ]


def lost_after_found(cell: Cell) -> tuple[int, int]:
    """(models that reached a training loss <= FOUND_LOSS and still ended unlearned, unlearned models)."""
    unlearned = [m for m, row in zip(cell.trained, full_rows(cell)) if not learned(row)]
    found = [m for m in unlearned if m.loss_history and np.nanmin(m.loss_history) <= FOUND_LOSS]
    return len(found), len(unlearned)


def write_cell(cell: Cell, out_dir: Path) -> None:
    directory = out_dir / cell.candidate.task / cell.candidate.protocol
    write_csv(directory / "results.csv", cell.rows, RESULT_COLUMNS)


def unlearned_models(cell: Cell) -> list[str]:
    """'construction seed' of every model that did not learn (reported, never dropped)."""
    return [
        f"{row['construction']} seed {row['seed']}" + (" (diverged)" if is_diverged(row) else "")
        for row in full_rows(cell)
        if not learned(row)
    ]
