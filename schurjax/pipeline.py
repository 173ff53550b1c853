"""The whole experiment as a sequence of named stages:

    train → Schur (once) → per α: ablate → evaluate → controls → diagnostics → rows → write

Usable from a notebook: build a :class:`RunSpec` and call :func:`run`. The Hydra entry point in
``experiments/run.py`` only turns a config into a :class:`RunSpec`. Each stage computes its own
result columns and declares them (name and type) beside that code; :data:`RESULT_COLUMNS` is
their declarations in table order, and :func:`read_results` reads a results.csv back typed.
"""

import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from . import plots
from ._typing import Array, Float
from .cache import ModelCache
from .columns import Columns, join_columns
from .controls import CONTROL_COLUMNS, CONTROLS, control_rows
from .evaluate import EvalConfig, held_out_set
from .fixed_points import (
    FIXED_POINT_COLUMNS,
    FIXED_POINT_SUMMARY_COLUMNS,
    FixedPoints,
    find_fixed_points,
    save_fixed_points,
)
from .interventions import (
    ABLATION_COLUMNS,
    SUBSETS,
    AblationSet,
    ablate_all,
    ablation_columns,
    subset_name,
)
from .learning import UNTRAINED_FVU, learning_failure, report_unlearned, unlearned
from .protocols import describe_protocol
from .results import (
    IDENTITY_COLUMNS,
    SUMMARY_COLUMNS,
    model_filename,
    read_table,
    save_weights,
    summarise,
    write_csv,
)
from .schur import SchurCoords, ordered_schur
from .scoring import EVALUATION_COLUMNS, Scores, evaluation_columns, score_ablations
from .spec import RunSpec
from .subspace import (
    DIAGNOSTIC_COLUMNS,
    DiagnosticsConfig,
    HeldOutRollouts,
    StateGeometry,
    held_out_rollouts,
    subspace_rows,
)
from .timing import Stopwatch
from .training import (
    TRAINING_COLUMNS,
    TrainedModel,
    model_training_key,
    solved_check,
    train_all,
    training_columns,
    warn_diverged,
)

__all__ = [
    # the stages and the table they fill
    "CONTROL_COLUMNS", "RESULT_COLUMNS", "ablate", "analyse", "check_run_directory", "diagnose",
    "identity_columns", "random_controls", "read_results", "result_rows", "run", "schur_coordinates", "train",
    "full_model_rollouts", "run_fixed_points", "write_fixed_points",
    "write_results", "write_run",
    # what other modules import from here, defined in the stage modules
    "UNTRAINED_FVU", "RunSpec", "TrainedModel", "learning_failure", "model_training_key", "solved_check",
    "report_unlearned", "train_all", "unlearned",
]

log = logging.getLogger(__name__)


# One row per model × subset: the stages' columns in this order (the output contract of results.csv).
RESULT_COLUMNS = join_columns(
    IDENTITY_COLUMNS, ABLATION_COLUMNS, EVALUATION_COLUMNS, DIAGNOSTIC_COLUMNS, TRAINING_COLUMNS, CONTROL_COLUMNS
)


def read_results(path: str | os.PathLike) -> list[dict]:
    """A results.csv, each cell as its column's type (int, float, bool, str; an empty cell: None)."""
    return read_table(path, RESULT_COLUMNS)


def train(spec: RunSpec, *, progress: bool, cache_dir: str | Path | None) -> list[TrainedModel]:
    """The training stage, as run.log reports it: the protocol, the time, the models that diverged."""
    started = time.perf_counter()
    log.info("training protocol: %s", describe_protocol(spec.task, spec.protocol, spec.train))
    trained = train_all(spec, progress=progress, cache=ModelCache(cache_dir))
    log.info("trained %d models in %.1f s", len(trained), time.perf_counter() - started)
    warn_diverged(trained)
    return trained


def schur_coordinates(trained: Sequence[TrainedModel]) -> list[SchurCoords]:
    """Ordered Schur coordinates of every W_hh: once per model, whatever the number of α."""
    return [ordered_schur(m.weights.w_hh) for m in trained]


def ablate(trained: Sequence[TrainedModel], coords: Sequence[SchurCoords], alpha: float) -> list[AblationSet]:
    """The 8 ablations of every W_hh at ``alpha``."""
    return [ablate_all(m.weights.w_hh, c, alpha) for m, c in zip(trained, coords)]


def random_controls(
    trained: Sequence[TrainedModel],
    coords: Sequence[SchurCoords],
    ablations: Sequence[AblationSet],
    data,
    config: EvalConfig,
    scores: Scores,
    *,
    has_targets: bool,
) -> list[dict]:
    """The :data:`CONTROL_COLUMNS` of every row; empty where the ablation removed nothing, and
    everywhere without controls (``eval.random_controls=0``) or targets to score them on."""
    if not _with_controls(config, has_targets):
        return [{} for _ in scores.delta_fvu]
    return control_rows([m.weights for m in trained], coords, ablations, data, config, scores.delta_fvu)


def _with_controls(config: EvalConfig, has_targets: bool) -> bool:
    return config.random_controls > 0 and has_targets


def diagnose(
    trained: Sequence[TrainedModel],
    ablations: Sequence[AblationSet],
    data,
    config: EvalConfig,
    diagnostics: DiagnosticsConfig,
    geometries: Sequence[StateGeometry],
) -> list[dict]:
    """The subspace diagnostics (:data:`DIAGNOSTIC_COLUMNS`) of every row, from the models'
    ``geometries`` on the held-out inputs."""
    return subspace_rows(
        [m.weights for m in trained],
        [ablation.w_tilde for ablation in ablations],
        data[0],
        pc_variance=diagnostics.pc_variance,
        min_removed_mass=config.min_removed_mass,
        geometries=geometries,
    )


def full_model_rollouts(
    trained: Sequence[TrainedModel], data, config: EvalConfig, diagnostics: DiagnosticsConfig | None = None
) -> HeldOutRollouts:
    """Each full model rolled out once on the held-out inputs: its outputs, the evaluation's
    references at every α; its state geometry, the subspace diagnostics' and the fixed points';
    and, where ``diagnostics`` find fixed points, its states on their ``start_trials``, the fixed
    points' starts."""
    kept = diagnostics.start_trials if diagnostics is not None and diagnostics.fixed_points else 0
    return held_out_rollouts([m.weights for m in trained], data[0], config.models_per_call, kept)


def identity_columns(trained: Sequence[TrainedModel], *, task: str, alpha: float) -> list[dict]:
    """The key of every row (:data:`IDENTITY_COLUMNS`): model by model, the 8 subsets in SUBSETS order."""
    return [
        dict(task=task, construction=m.construction, width=m.width, seed=m.seed, alpha=alpha, subset=subset_name(s))
        for m in trained
        for s in SUBSETS
    ]


def result_rows(stages: Sequence[tuple[Columns, Sequence[Mapping]]]) -> list[dict]:
    """One row per model × subset from each stage's (declared columns, per-row columns).

    A column a stage computes but does not declare would never reach results.csv: refused here.
    """
    if list(join_columns(*(declared for declared, _ in stages))) != list(RESULT_COLUMNS):
        raise ValueError("the stages' column declarations are not RESULT_COLUMNS; list a new stage's there too")
    for declared, rows in stages:
        undeclared = sorted({name for row in rows for name in row} - set(declared))
        if undeclared:
            raise ValueError(f"columns {undeclared} are computed but not declared; declare them with their stage")
    per_row = zip(*(rows for _, rows in stages), strict=True)
    return [{name: value for part in parts for name, value in part.items()} for parts in per_row]


def analyse(
    trained: Sequence[TrainedModel],
    data,
    *,
    task: str,
    alpha: float | Sequence[float],
    config: EvalConfig,
    has_targets: bool = True,
    diagnostics: DiagnosticsConfig = DiagnosticsConfig(),
    stopwatch: Stopwatch | None = None,
    rollouts: HeldOutRollouts | None = None,
) -> list[dict]:
    """Ordered Schur, all 8 ablations at each ``alpha``, and batched evaluations: result rows.

    ``alpha`` is one threshold or several; the Schur decomposition is computed once and each α
    adds its own rows (α by α, models in order, the 8 subsets of each). ``data`` is ``(inputs,
    targets, mask)``; without real targets (``has_targets=False``, user inputs) FVU-based columns
    stay empty and ``rollout_distance`` carries the comparison. ``stopwatch`` records the time of
    each stage; the full models' ``rollouts`` (:func:`full_model_rollouts`) are computed here
    unless given.
    """
    stopwatch = Stopwatch() if stopwatch is None else stopwatch
    with stopwatch("Schur + ablations"):
        coords = schur_coordinates(trained)
    if rollouts is None:
        with stopwatch("evaluation"):
            rollouts = full_model_rollouts(trained, data, config)
    alphas = tuple(alpha) if isinstance(alpha, Sequence) else (alpha,)
    analysis = functools.partial(
        _analyse_at, trained, coords, data, rollouts, task=task, config=config, has_targets=has_targets,
        diagnostics=diagnostics, stopwatch=stopwatch,
    )
    return [row for each in alphas for row in analysis(each)]


def _analyse_at(
    trained: Sequence[TrainedModel],
    coords: Sequence[SchurCoords],
    data,
    rollouts: HeldOutRollouts,
    alpha: float,
    *,
    task: str,
    config: EvalConfig,
    has_targets: bool,
    diagnostics: DiagnosticsConfig,
    stopwatch: Stopwatch,
) -> list[dict]:
    """The result rows at one α, from the models' Schur coordinates."""
    with stopwatch("Schur + ablations") as decomposing:
        ablations = ablate(trained, coords, alpha)
    with stopwatch("evaluation") as evaluating:
        scores = score_ablations([m.weights for m in trained], ablations, data, config, rollouts.outputs)
    with stopwatch("random controls") as controlling:
        controls = random_controls(trained, coords, ablations, data, config, scores, has_targets=has_targets)
    with stopwatch("subspace diagnostics") as diagnosing:
        subspace = diagnose(trained, ablations, data, config, diagnostics, rollouts.geometries)
    log.info(
        "analysis at alpha %g: ablations of %d models in %.2f s, evaluation of %d networks%s in %.2f s",
        alpha,
        len(trained),
        decomposing.seconds,
        len(scores.delta_fvu),
        f" and {config.random_controls} x {len(CONTROLS)} random controls per ablation"
        if _with_controls(config, has_targets)
        else "",
        evaluating.seconds + controlling.seconds + diagnosing.seconds,
    )
    return result_rows([
        (IDENTITY_COLUMNS, identity_columns(trained, task=task, alpha=alpha)),
        (ABLATION_COLUMNS, [row for ablation in ablations for row in ablation_columns(ablation)]),
        (EVALUATION_COLUMNS, evaluation_columns(
            scores, ablations, task=task, has_targets=has_targets, min_removed_mass=config.min_removed_mass
        )),
        (DIAGNOSTIC_COLUMNS, subspace),
        (TRAINING_COLUMNS, [training_columns(m) for m in trained for _ in SUBSETS]),
        (CONTROL_COLUMNS, controls),
    ])


def write_results(rows: Sequence[Mapping], out_dir: Path) -> None:
    """results.csv, summary.csv and the figures of one analysis (figures per α where it has several)."""
    write_csv(out_dir / "results.csv", rows, RESULT_COLUMNS)
    write_csv(out_dir / "summary.csv", summarise(rows), SUMMARY_COLUMNS)
    task = rows[0]["task"]
    figures = out_dir / "figures"
    for suffix, at_alpha in _per_alpha(rows):
        plots.subset_figure(at_alpha, figures / f"{task}_subsets{suffix}")
        if any(row.get("ctrl_raw_median") is not None for row in at_alpha):
            plots.control_figure(at_alpha, figures / f"{task}_random_controls{suffix}")
    if any(row.get("pc_overlap") is not None and row.get("delta_fvu") is not None for row in rows):
        plots.diagnostic_figure(rows, figures / f"{task}_diagnostics")


def _per_alpha(rows: Sequence[Mapping]) -> list[tuple[str, list[Mapping]]]:
    """(file-name suffix, rows) per α: no suffix for a run of one α, ``_alpha<α>`` for several."""
    alphas = list(dict.fromkeys(row["alpha"] for row in rows))
    if len(alphas) == 1:
        return [("", list(rows))]
    return [(f"_alpha{alpha:g}", [row for row in rows if row["alpha"] == alpha]) for alpha in alphas]


def run_fixed_points(
    spec: RunSpec,
    trained: Sequence[TrainedModel],
    inputs: Float[Array, "B T Nx"] | None = None,
    rollouts: HeldOutRollouts | None = None,
) -> list[FixedPoints]:
    """The fixed points of a run at each of its α, from starts on the held-out ``inputs`` (drawn
    here unless given) and the models' ``rollouts`` on them (:func:`full_model_rollouts`;
    computed unless given)."""
    started = time.perf_counter()
    # the same starts' trials for every α
    inputs = held_out_set(spec.eval_task(), spec.eval)[0] if inputs is None else inputs
    found = [fixed_points_at(spec, trained, inputs, alpha, rollouts) for alpha in spec.alphas]
    networks = len(trained) * len(spec.diagnostics.fixed_point_subsets) * len(spec.alphas)
    log.info("fixed points of %d networks in %.1f s", networks, time.perf_counter() - started)
    return found


def write_fixed_points(spec: RunSpec, found: Sequence[FixedPoints], rows: Sequence[Mapping], out_dir: Path) -> None:
    """fixed_points.csv and .npz, fixed_point_summary.csv (beside ΔFVU) and the fixed-point figure of a run."""
    points = [point for each in found for point in each.points]
    delta_fvu = {(r["construction"], r["width"], r["seed"], r["alpha"], r["subset"]): r["delta_fvu"] for r in rows}
    summary = [
        s | dict(delta_fvu=delta_fvu[s["construction"], s["width"], s["seed"], s["alpha"], s["subset"]])
        for each in found
        for s in each.summary
    ]
    write_csv(out_dir / "fixed_points.csv", points, FIXED_POINT_COLUMNS)
    save_fixed_points(out_dir / "fixed_points.npz", points, np.concatenate([each.states for each in found]))
    write_csv(out_dir / "fixed_point_summary.csv", summary, FIXED_POINT_SUMMARY_COLUMNS)
    for suffix, at_alpha in _per_alpha(points):
        plots.fixed_point_figure(at_alpha, out_dir / "figures" / f"{spec.task}_fixed_points{suffix}")


def fixed_points_at(
    spec: RunSpec,
    trained: Sequence[TrainedModel],
    inputs: Float[Array, "B T Nx"],
    alpha: float,
    rollouts: HeldOutRollouts | None = None,
) -> FixedPoints:
    """Fixed points of the full and ablated networks at one α, at the task's rest inputs, from
    starts sampled on their rollouts of the held-out ``inputs``."""
    task = spec.eval_task()
    identities = [
        dict(task=spec.task, construction=m.construction, width=m.width, seed=m.seed, alpha=alpha) for m in trained
    ]
    return find_fixed_points(
        [m.weights for m in trained],
        identities,
        task,
        inputs,
        # the held-out key folded once more: fold 1 is the solved-check set
        jax.random.fold_in(jax.random.key(spec.eval.seed), 2),
        alpha=alpha,
        config=spec.diagnostics,
        models_per_call=spec.eval.models_per_call,
        rollouts=rollouts,
    )


def write_run(
    spec: RunSpec,
    trained: Sequence[TrainedModel],
    rows: Sequence[Mapping],
    out_dir: Path,
    *,
    stopwatch: Stopwatch | None = None,
    inputs: Float[Array, "B T Nx"] | None = None,
    rollouts: HeldOutRollouts | None = None,
) -> None:
    """Write the output contract: results.csv, summary.csv, models/*.npz, figures/ (and fixed points,
    found from the held-out ``inputs`` and the models' ``rollouts`` on them: see
    :func:`run_fixed_points`)."""
    stopwatch = Stopwatch() if stopwatch is None else stopwatch
    with stopwatch("writing"):
        for model in trained:
            name = model_filename(spec.task, model.construction, model.width, model.seed)
            save_weights(out_dir / "models" / name, model.weights)
        write_results(rows, out_dir)
    if spec.diagnostics.fixed_points:
        with stopwatch("fixed points"):
            found = run_fixed_points(spec, trained, inputs, rollouts)
        with stopwatch("writing"):
            write_fixed_points(spec, found, rows, out_dir)
    with stopwatch("writing"):
        (out_dir / "spec.json").write_text(_spec_json(spec))


def _spec_json(spec: RunSpec) -> str:
    return json.dumps(dataclasses.asdict(spec), indent=2, default=str)


def check_run_directory(spec: RunSpec, out_dir: Path) -> None:
    """Refuse a directory that holds results of another configuration (before any compute)."""
    written = out_dir / "spec.json"
    if written.exists() and written.read_text() != _spec_json(spec):
        raise ValueError(
            f"run directory {out_dir} holds results of a different configuration (see its spec.json); "
            "choose another hydra.run.dir or remove that directory"
        )


# the stages of run.log's timing table, in the order a run's work flows through them
RUN_STAGES = (
    "training", "held-out set", "Schur + ablations", "evaluation", "random controls", "subspace diagnostics",
    "writing", "fixed points",
)


def run(
    spec: RunSpec,
    out_dir: str | Path,
    *,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    startup_seconds: float | None = None,
) -> list[dict]:
    """Train (or reuse from ``cache_dir``), analyse and write one run; returns the result rows.

    run.log ends with the time of each stage; ``startup_seconds``, the time the process spent
    before this call (the command line passes it), heads that table when given.
    """
    out_dir = Path(out_dir)
    check_run_directory(spec, out_dir)
    stopwatch = Stopwatch(order=RUN_STAGES)
    with stopwatch("training"):
        trained = train(spec, progress=progress, cache_dir=cache_dir)
    with stopwatch("held-out set"):
        # drawn asynchronously otherwise, and timed as part of the evaluation that first waits for it
        data = jax.block_until_ready(held_out_set(spec.eval_task(), spec.eval))
    with stopwatch("evaluation"):
        rollouts = full_model_rollouts(trained, data, spec.eval, spec.diagnostics)
    rows = analyse(
        trained, data, task=spec.task, alpha=spec.alpha, config=spec.eval, diagnostics=spec.diagnostics,
        stopwatch=stopwatch, rollouts=rollouts,
    )
    report_unlearned(rows)
    write_run(spec, trained, rows, out_dir, stopwatch=stopwatch, inputs=data[0], rollouts=rollouts)
    log.info("wrote %s in %.1f s total", out_dir, stopwatch.elapsed)
    note = "training includes its compilation"
    if startup_seconds is not None:
        note += "; start-up: the process before this run, i.e. interpreter, imports, config"
    log.info("time per stage (%s):\n%s", note, stopwatch.table(startup_seconds))
    return rows
