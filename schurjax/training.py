"""The training stage of a run: every (construction, width, seed) model trained, or reused from
the model cache, and exported as host weights; and the training columns of the result rows.

The optimisation itself is :mod:`schurjax.train`; this module decides which models train, on
which keys, until when, and what is remembered of them.
"""

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ._typing import Array, Bool
from .cache import CachedModel, ModelCache, training_key
from .columns import declare
from .constructions import DenseRecurrent
from .model import TanhRNN, init_model
from .spec import RunSpec
from .train import TrainResult, train_models
from .weights import RNNWeights, export_weights

log = logging.getLogger(__name__)

# Trials of the check set that decides when a model is solved (the copy task: perfect replay).
SOLVED_CHECK_TRIALS = 256

TRAINING_COLUMNS = declare(train_loss=float, train_steps=int, solved=bool, diverged=bool, source=str)


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


def training_columns(model: TrainedModel) -> dict:
    """The :data:`TRAINING_COLUMNS` of each of the model's result rows."""
    return dict(
        train_loss=model.train_loss,
        train_steps=model.train_steps,
        solved=model.solved,
        diverged=model.diverged,
        source=model.source,
    )


def solved_check(spec: RunSpec) -> Callable[[TanhRNN], np.ndarray]:
    """The stopping criterion of ``train.until_solved``: the task's own :meth:`Task.solved` per model.

    Checked on its own trials (a key folded from the evaluation seed), so the held-out set that
    the reported metrics come from never decides when training stops.
    """
    task = spec.eval_task()
    inputs, targets, mask = task(jax.random.fold_in(jax.random.key(spec.eval.seed), 1), SOLVED_CHECK_TRIALS)

    @eqx.filter_jit
    def solved(models: TanhRNN) -> Bool[Array, " M"]:
        # Matrices formed on one device and the check rolled out as plain dense networks: a
        # parametrisation whose matrix needs a linear solve (Cayley) deadlocked inside a program
        # partitioned across 2 CPU devices (both partitions' LAPACK calls on one small thread pool).
        matrices = jax.vmap(lambda r: r.matrix())(models.recurrent)
        dense = eqx.tree_at(lambda m: m.recurrent, models, DenseRecurrent(matrices))
        return jax.vmap(lambda model: task.solved(model(inputs), targets, mask))(dense)

    return lambda models: np.asarray(solved(models))


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
    keys = spec.model_keys()
    training_keys = [model_training_key(spec, *k) for k in keys]
    cached = [cache.get(k) for k in training_keys]
    missing = [i for i, hit in enumerate(cached) if hit is None]
    if len(missing) < len(keys):
        log.info("reusing %d trained model(s) from %s", len(keys) - len(missing), cache.directory)
    if missing:
        fresh = _train(spec, [keys[i] for i in missing], [training_keys[i] for i in missing], progress, cache)
        for i, model in zip(missing, fresh):
            cached[i] = model
    return [
        TrainedModel(
            c, w, s, hit.weights, hit.train_loss, hit.train_steps, hit.diverged,
            solved=hit.solved, loss_history=hit.loss_history, grad_norm_history=hit.grad_norm_history,
            train_seconds=hit.train_seconds,
        )
        for (c, w, s), hit in zip(keys, cached)
    ]


def _train(
    spec: RunSpec,
    keys: Sequence[tuple[str, int, int]],
    training_keys: Sequence[dict],
    progress: bool,
    cache: ModelCache,
) -> list[CachedModel]:
    """Train the models of ``keys`` together and add them to ``cache``."""
    task = spec.train_task()
    checkpoints: list[Path] = []

    def checkpoint_path(group: list[int]) -> Path | None:
        path = cache.checkpoint_path([training_keys[i] for i in group])
        checkpoints.extend([] if path is None else [path])
        return path

    started = time.perf_counter()
    seed_keys = {seed: jax.random.split(jax.random.key(seed)) for seed in spec.seeds}
    result = train_models(
        task,
        spec.train,
        [init_model(c, w, task.n_in, task.n_out, seed_keys[s][0]) for c, w, s in keys],
        [seed_keys[s][1] for _, _, s in keys],
        progress=progress,
        stop_when=solved_check(spec) if spec.train.until_solved else None,
        checkpoint_path=checkpoint_path,
    )
    seconds = (time.perf_counter() - started) / len(keys)
    fresh = [_cached(result, position, spec.train.until_solved, seconds) for position in range(len(keys))]
    for key, model in zip(training_keys, fresh):
        cache.put(key, model)
    # Every model is in the cache now; the training states are no longer needed.
    for path in checkpoints:
        path.unlink(missing_ok=True)
    return fresh


def _cached(result: TrainResult, position: int, until_solved: bool, seconds: float) -> CachedModel:
    """What the cache keeps of the ``position``-th model of a training call."""
    return CachedModel(
        export_weights(result.models[position]),
        float(result.final_loss[position]),
        int(result.steps[position]),
        bool(result.diverged[position]),
        solved=bool(result.stopped[position]) if until_solved else None,
        loss_history=tuple(result.loss_history[position].tolist()),
        grad_norm_history=tuple(result.grad_norm_history[position].tolist()),
        train_seconds=seconds,
    )


def warn_diverged(trained: Sequence[TrainedModel]) -> None:
    """Say which models diverged, and what becomes of them."""
    for model in trained:
        if model.diverged:
            log.warning(
                "%s width %d seed %d diverged (non-finite loss or weights); it is kept frozen at its "
                "last finite weights, marked diverged, and excluded from every mean",
                model.construction,
                model.width,
                model.seed,
            )
