"""The whole experiment as plain function calls: train → export → Schur → ablate → evaluate → write.

Usable from a notebook: build a :class:`RunSpec` and call :func:`run`. The Hydra entry point in
``experiments/run.py`` only turns a config into a :class:`RunSpec`.
"""

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from . import plots
from .cache import CachedModel, ModelCache, training_key
from .constructions import DenseRecurrent, check_construction
from .controls import CONTROLS, control_rows
from .evaluate import EvalConfig, Evaluation, evaluate_models, evaluate_weights, held_out_set
from .fixed_points import FIXED_POINT_COLUMNS, FIXED_POINT_SUMMARY_COLUMNS, find_fixed_points
from .interventions import SUBSETS, ablate_all, check_alpha, subset_name
from .model import init_model
from .results import (
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    is_diverged,
    model_filename,
    save_weights,
    sensitivity,
    summarise,
    write_csv,
)
from .schur import ordered_schur
from .protocols import describe_protocol, training_protocol
from .subspace import DiagnosticsConfig, subspace_rows
from .tasks import Task, make_task
from .train import TrainConfig, train_models
from .weights import RNNWeights, export_weights

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. Validated on construction, before any compute."""

    task: str
    seeds: tuple[int, ...] = (0, 1, 2)
    widths: tuple[int, ...] = (64,)
    constructions: tuple[str, ...] = ("dense_orthogonal",)
    alpha: float = 0.9
    task_params: Mapping = dataclasses.field(default_factory=dict)
    # Overrides of task_params for the held-out set (the copy task scores 128 replay lags).
    eval_task_params: Mapping = dataclasses.field(default_factory=dict)
    # The named training protocol (schurjax.protocols) that ``train`` starts from; ``train=None``
    # takes it as it is, so that a notebook trains as the command line does.
    protocol: str = "default"
    train: TrainConfig | None = None
    eval: EvalConfig = EvalConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()

    def __post_init__(self):
        protocol = training_protocol(self.task, self.protocol)  # also refuses an unknown name
        if self.train is None:
            object.__setattr__(self, "train", protocol)
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed (e.g. seeds=3)")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative integers; got {list(self.seeds)}")
        if not self.widths:
            raise ValueError("widths is empty; give at least one width (e.g. widths=[64])")
        if not self.constructions:
            raise ValueError("constructions is empty; give at least one (e.g. constructions=[dense_orthogonal])")
        for construction, width in itertools.product(self.constructions, self.widths):
            check_construction(construction, width)
        check_alpha(self.alpha)
        self.train_task(), self.eval_task()
        if self.train.until_solved and self.task != "copy":
            raise ValueError(
                f"train.until_solved=true needs a solved criterion, which only the copy task has; "
                f"drop it for task={self.task}"
            )

    def train_task(self) -> Task:
        return make_task(self.task, **self.task_params)

    def eval_task(self) -> Task:
        return make_task(self.task, **{**self.task_params, **self.eval_task_params})

    def model_keys(self) -> list[tuple[str, int, int]]:
        """(construction, width, seed) of every model, in table order."""
        return list(itertools.product(self.constructions, self.widths, self.seeds))


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    construction: str
    width: int
    seed: int
    weights: RNNWeights
    # None for networks trained elsewhere.
    train_loss: float | None
    train_steps: int | None
    diverged: bool
    # Where the weights came from, for networks trained elsewhere (empty when trained here).
    source: str = ""
    # Whether the task's solved criterion held when training ended (None: trained without one).
    solved: bool | None = None
    # Per chunk of training: the last loss and the largest global gradient norm of its steps.
    loss_history: tuple[float, ...] = ()
    grad_norm_history: tuple[float, ...] = ()
    train_seconds: float | None = None


# A full model above this held-out FVU is reported as not having learned its task.
UNTRAINED_FVU = 0.1
# Trials of the check set that decides when a copy controller is solved.
SOLVED_CHECK_TRIALS = 256


def replay_solved(spec: RunSpec):
    """Stopping criterion for the copy task: perfect replay over the evaluation lags.

    Checked on its own trials (a key folded from the evaluation seed), so the held-out set that
    the reported accuracy comes from never decides when training stops.
    """
    check_set = spec.eval_task()(jax.random.fold_in(jax.random.key(spec.eval.seed), 1), SOLVED_CHECK_TRIALS)

    def solved(models) -> np.ndarray:
        # The evaluator is one program partitioned across the devices; a parametrisation whose
        # matrix needs a linear solve (Cayley) deadlocked there on 2 CPU devices (both
        # partitions' LAPACK calls waiting on one small thread pool), so the matrices are formed
        # once, on one device, and the evaluator sees plain dense networks.
        dense = eqx.tree_at(lambda m: m.recurrent, models, DenseRecurrent(jax.vmap(lambda r: r.matrix())(models.recurrent)))
        return evaluate_models(dense, check_set, spec.eval.models_per_call).sign_agreement == 1.0

    return solved


def model_training_key(spec: RunSpec, construction: str, width: int, seed: int) -> dict:
    """Everything that determines how one model of ``spec`` trains."""
    return training_key(
        task=spec.task,
        task_params=spec.train_task(),
        train=spec.train,
        construction=construction,
        width=width,
        seed=seed,
        # copy controllers stop on a check set drawn from the evaluation task and seed
        solved_check=(spec.eval_task(), spec.eval.seed) if spec.train.until_solved else None,
    )


def train_all(spec: RunSpec, *, progress: bool = True, cache: ModelCache = ModelCache(None)) -> list[TrainedModel]:
    """Train every (construction, width, seed) model of the run in one program per parametrisation.

    A seed's key is split once into an init key and a data key; models that share a seed share
    their data stream and input/readout initialisation, so constructions and widths are compared
    on paired data. Models found in ``cache`` are reused; the others train together and are
    added to it.
    """
    task = spec.train_task()
    keys = spec.model_keys()
    training_keys = [model_training_key(spec, *k) for k in keys]
    cached = [cache.get(k) for k in training_keys]
    missing = [i for i, hit in enumerate(cached) if hit is None]
    if len(missing) < len(keys):
        log.info("reusing %d trained model(s) from %s", len(keys) - len(missing), cache.directory)
    if missing:
        checkpoints: list[Path] = []

        def checkpoint_path(group: list[int]) -> Path | None:
            path = cache.checkpoint_path([training_keys[missing[i]] for i in group])
            checkpoints.extend([] if path is None else [path])
            return path

        started = time.perf_counter()
        seed_keys = {seed: jax.random.split(jax.random.key(seed)) for seed in spec.seeds}
        models = [init_model(c, w, task.n_in, task.n_out, seed_keys[s][0]) for c, w, s in (keys[i] for i in missing)]
        result = train_models(
            task,
            spec.train,
            models,
            [seed_keys[keys[i][2]][1] for i in missing],
            progress=progress,
            stop_when=replay_solved(spec) if spec.train.until_solved else None,
            checkpoint_path=checkpoint_path,
        )
        seconds = (time.perf_counter() - started) / len(missing)
        for position, i in enumerate(missing):
            cached[i] = CachedModel(
                export_weights(result.models[position]),
                float(result.final_loss[position]),
                int(result.steps[position]),
                bool(result.diverged[position]),
                solved=bool(result.stopped[position]) if spec.train.until_solved else None,
                loss_history=tuple(result.loss_history[position].tolist()),
                grad_norm_history=tuple(result.grad_norm_history[position].tolist()),
                train_seconds=seconds,
            )
            cache.put(training_keys[i], cached[i])
        # Every model is in the cache now; the training states are no longer needed.
        for path in checkpoints:
            path.unlink(missing_ok=True)
    return [
        TrainedModel(
            c, w, s, hit.weights, hit.train_loss, hit.train_steps, hit.diverged,
            solved=hit.solved, loss_history=hit.loss_history, grad_norm_history=hit.grad_norm_history,
            train_seconds=hit.train_seconds,
        )
        for (c, w, s), hit in zip(keys, cached)
    ]


def _per_subset(evaluation: Evaluation) -> Evaluation:
    """Interleave the references' metrics (subset ∅) with those of their 7 ablations, model by model."""
    def merge(full, ablated):
        return np.concatenate([full[:, None], ablated.reshape(len(full), -1)], axis=1).ravel()

    full = evaluation.references
    return Evaluation(*(merge(getattr(full, f), getattr(evaluation, f)) for f in ("fvu", "sign_agreement", "rollout_distance")))


def analyse(
    trained: Sequence[TrainedModel],
    data,
    *,
    task: str,
    alpha: float,
    config: EvalConfig,
    has_targets: bool = True,
    diagnostics: DiagnosticsConfig = DiagnosticsConfig(),
) -> list[dict]:
    """Ordered Schur, all 8 ablations at ``alpha``, and one batched evaluation: result rows.

    ``data`` is ``(inputs, targets, mask)``; without real targets (``has_targets=False``, user
    inputs) FVU-based columns stay empty and ``rollout_distance`` carries the comparison.
    """
    started = time.perf_counter()
    coords = [ordered_schur(m.weights.w_hh) for m in trained]
    ablations = [ablate_all(m.weights.w_hh, c, alpha) for m, c in zip(trained, coords)]
    schur_seconds = time.perf_counter() - started
    # W̃(∅) is W itself: the full models are the references, rolled out once; only the 7
    # nonempty ablations of each model are evaluated against them.
    ablated = [
        model.weights.with_recurrent(w_tilde)
        for model, ablation in zip(trained, ablations)
        for w_tilde in ablation.w_tilde[1:]
    ]
    evaluation = _per_subset(
        evaluate_weights(
            ablated,
            data,
            config,
            references=[m.weights for m in trained],
            reference_index=np.repeat(np.arange(len(trained)), len(SUBSETS) - 1),
        )
    )
    full_fvu = evaluation.fvu[:: len(SUBSETS)]
    delta_fvu = evaluation.fvu - np.repeat(full_fvu, len(SUBSETS))
    with_controls = config.random_controls > 0 and has_targets
    controls = (
        control_rows([m.weights for m in trained], coords, ablations, data, config, delta_fvu)
        if with_controls
        else [{} for _ in evaluation.fvu]
    )
    subspace = subspace_rows(
        [m.weights for m in trained],
        [ablation.w_tilde for ablation in ablations],
        data[0],
        pc_variance=diagnostics.pc_variance,
        min_removed_mass=config.min_removed_mass,
        models_per_call=config.models_per_call,
    )
    log.info(
        "analysis: Schur + ablations of %d models in %.2f s, evaluation of %d networks%s in %.2f s",
        len(trained),
        schur_seconds,
        len(evaluation.fvu),
        f" and {config.random_controls} x {len(CONTROLS)} random controls per ablation" if with_controls else "",
        time.perf_counter() - started - schur_seconds,
    )
    rows = []
    for index, (model, ablation) in enumerate(zip(trained, ablations)):
        for position, subset in enumerate(SUBSETS):
            flat = index * len(SUBSETS) + position
            removed = float(ablation.removed_mass[position])
            if not subset:
                s_delta_t, note = None, "full model"
            elif not has_targets:
                s_delta_t, note = None, "no targets given"
            else:
                s_delta_t, note = sensitivity(float(delta_fvu[flat]), removed, config.min_removed_mass)
            rows.append(
                dict(
                    task=task,
                    construction=model.construction,
                    width=model.width,
                    seed=model.seed,
                    alpha=alpha,
                    subset=subset_name(subset),
                    n_R=ablation.partition.n_r,
                    n_blocks=ablation.partition.n_blocks,
                    rho=ablation.partition.rho,
                    mass_RR=ablation.mass_rr,
                    mass_CR=ablation.mass_cr,
                    mass_CC=ablation.mass_cc,
                    nonnormal_fraction=ablation.nonnormal_fraction,
                    removed_mass=removed,
                    fvu=float(evaluation.fvu[flat]) if has_targets else None,
                    delta_fvu=float(delta_fvu[flat]) if has_targets else None,
                    s_delta_t=s_delta_t,
                    s_delta_t_note=note,
                    replay_accuracy=float(evaluation.sign_agreement[flat]) if task == "copy" else None,
                    rollout_distance=float(evaluation.rollout_distance[flat]),
                    train_loss=model.train_loss,
                    train_steps=model.train_steps,
                    solved=model.solved,
                    diverged=model.diverged,
                    source=model.source,
                )
                | subspace[flat]
                | controls[flat]
            )
    return rows


def learning_failure(full_row: Mapping) -> str | None:
    """Why the model of a full-model result row did not learn its task: it diverged, its solved
    criterion did not hold within the budget, or its held-out FVU exceeds 0.1; None if it learned."""
    if is_diverged(full_row):
        return "diverged (non-finite loss or weights; frozen at its last finite weights)"
    if full_row.get("solved") in (False, "False"):
        return f"was not solved within the {full_row['train_steps']}-step budget"
    fvu = full_row["fvu"]
    if fvu not in (None, "") and float(fvu) > UNTRAINED_FVU:
        return f"has held-out FVU {float(fvu):.3g} > {UNTRAINED_FVU}"
    return None


def unlearned(rows: Sequence[Mapping]) -> list[str]:
    """Every model of ``rows`` that did not learn its task, named, with the reason."""
    return [
        f"{r['construction']} width {r['width']} seed {r['seed']} {reason}"
        for r in rows
        if r["subset"] == "none" and (reason := learning_failure(r)) is not None
    ]


def report_unlearned(rows: Sequence[Mapping]) -> None:
    """Say loudly which models did not learn: they stay in every table, and their ablation
    results say little."""
    reasons = unlearned(rows)
    n_models = sum(r["subset"] == "none" for r in rows)
    if not reasons:
        log.info("all %d models learned their task", n_models)
        return
    log.warning(
        "%d of %d models did not learn their task; they are kept and reported, not dropped or replaced "
        "(diverged ones are excluded from means). Their ablation results say little; see docs/PROTOCOLS.md "
        "for protocols that train every seed:\n  %s",
        len(reasons),
        n_models,
        "\n  ".join(reasons),
    )


def write_results(rows: Sequence[Mapping], out_dir: Path) -> None:
    """results.csv, summary.csv and the figures of one analysis."""
    write_csv(out_dir / "results.csv", rows, RESULT_COLUMNS)
    write_csv(out_dir / "summary.csv", summarise(rows), SUMMARY_COLUMNS)
    task = rows[0]["task"]
    plots.subset_figure(rows, out_dir / "figures" / f"{task}_subsets")
    if any(row.get("ctrl_raw_median") is not None for row in rows):
        plots.control_figure(rows, out_dir / "figures" / f"{task}_random_controls")
    if any(row.get("pc_overlap") is not None and row.get("delta_fvu") is not None for row in rows):
        plots.diagnostic_figure(rows, out_dir / "figures" / f"{task}_diagnostics")


def write_fixed_points(spec: RunSpec, trained: Sequence[TrainedModel], rows: Sequence[Mapping], out_dir: Path) -> None:
    """fixed_points.csv, fixed_point_summary.csv (beside ΔFVU) and the fixed-point figure of a run."""
    started = time.perf_counter()
    task = spec.eval_task()
    identities = [
        dict(task=spec.task, construction=m.construction, width=m.width, seed=m.seed, alpha=spec.alpha) for m in trained
    ]
    points, summary = find_fixed_points(
        [m.weights for m in trained],
        identities,
        task,
        held_out_set(task, spec.eval)[0],
        # the held-out key folded once more: fold 1 is the copy task's solved-check set
        jax.random.fold_in(jax.random.key(spec.eval.seed), 2),
        alpha=spec.alpha,
        config=spec.diagnostics,
        models_per_call=spec.eval.models_per_call,
    )
    delta_fvu = {(r["construction"], r["width"], r["seed"], r["subset"]): r["delta_fvu"] for r in rows}
    summary = [s | dict(delta_fvu=delta_fvu[s["construction"], s["width"], s["seed"], s["subset"]]) for s in summary]
    write_csv(out_dir / "fixed_points.csv", points, FIXED_POINT_COLUMNS)
    write_csv(out_dir / "fixed_point_summary.csv", summary, FIXED_POINT_SUMMARY_COLUMNS)
    plots.fixed_point_figure(points, out_dir / "figures" / f"{spec.task}_fixed_points")
    log.info(
        "fixed points of %d networks in %.1f s", len(trained) * len(spec.diagnostics.fixed_point_subsets), time.perf_counter() - started
    )


def write_run(spec: RunSpec, trained: Sequence[TrainedModel], rows: Sequence[Mapping], out_dir: Path) -> None:
    """Write the output contract: results.csv, summary.csv, models/*.npz, figures/ (and fixed points)."""
    for model in trained:
        save_weights(out_dir / "models" / model_filename(spec.task, model.construction, model.width, model.seed), model.weights)
    write_results(rows, out_dir)
    if spec.diagnostics.fixed_points:
        write_fixed_points(spec, trained, rows, out_dir)
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


def run(
    spec: RunSpec, out_dir: str | Path, *, progress: bool = True, cache_dir: str | Path | None = None
) -> list[dict]:
    """Train (or reuse from ``cache_dir``), analyse and write one run; returns the result rows."""
    out_dir = Path(out_dir)
    check_run_directory(spec, out_dir)
    started = time.perf_counter()
    log.info("training protocol: %s", describe_protocol(spec.task, spec.protocol, spec.train))
    trained = train_all(spec, progress=progress, cache=ModelCache(cache_dir))
    log.info("trained %d models in %.1f s", len(trained), time.perf_counter() - started)
    for model in trained:
        if model.diverged:
            log.warning(
                "%s width %d seed %d diverged (non-finite loss or weights); it is kept frozen at its "
                "last finite weights, marked diverged, and excluded from every mean",
                model.construction,
                model.width,
                model.seed,
            )
    task = spec.eval_task()
    rows = analyse(
        trained, held_out_set(task, spec.eval), task=spec.task, alpha=spec.alpha, config=spec.eval, diagnostics=spec.diagnostics
    )
    report_unlearned(rows)
    write_run(spec, trained, rows, out_dir)
    log.info("wrote %s in %.1f s total", out_dir, time.perf_counter() - started)
    return rows
