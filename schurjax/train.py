"""Training (SPEC §4): Adam on the masked MSE, many models in one compiled program.

``make_train(task, config)`` returns a pure ``train_chunk(state, data_key)`` for ONE model, in the
style of purejaxrl's ``make_train``; :func:`train_models` vmaps it over a stack of models (seeds,
constructions and zero-padded widths) and drives it chunk by chunk from the host, so that the hot
loop never syncs with the host and the host can still report progress between chunks.

Each model draws its own fresh batch every step from ``fold_in(data_key, step)``, so what a model
sees depends only on its own key and step, never on which other models share its batch.
"""

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._typing import Array, Bool, Float, Int, PRNGKeyArray
from .devices import map_models, on_cpu, pad_models, shard_models
from .metrics import masked_mse
from .model import TanhRNN, pad_model, stack_models, unpad_model, unstack_models
from .tasks import Task


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every model of a run."""

    steps: int = 3840
    batch_size: int = 64
    lr: float = 1e-3
    # Steps per compiled call; the host reports progress (and may checkpoint) between chunks.
    chunk_steps: int = 256
    # Stop each model once the task's "solved" criterion holds (checked between chunks);
    # ``steps`` is then the budget. Only tasks with such a criterion (copy) accept it.
    until_solved: bool = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "chunk_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"train.{name} must be a positive integer; got {value!r}")
        if not (isinstance(self.lr, float | int) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"train.lr must be a positive finite number; got {self.lr!r}")

    @property
    def chunk_length(self) -> int:
        """Steps per chunk, spread evenly so the last chunk wastes at most a few steps."""
        n_chunks = math.ceil(self.steps / self.chunk_steps)
        return math.ceil(self.steps / n_chunks)


class TrainState(eqx.Module):
    """One model's training state; vmapped, every leaf gains a leading model axis."""

    model: TanhRNN
    opt_state: optax.OptState
    step: Int[Array, ""]
    loss: Float[Array, ""]
    # Set when a step produced a non-finite loss or weights; the model then stays frozen at its
    # last finite weights instead of poisoning the batch.
    diverged: Bool[Array, ""]
    # Set from the host once the model met its stopping criterion; it is frozen from then on.
    stopped: Bool[Array, ""]


def _all_finite(tree) -> Bool[Array, ""]:
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))]
    return jnp.stack(leaves).all()


def make_train(
    task: Task, config: TrainConfig
) -> tuple[Callable[[TanhRNN], TrainState], Callable[[TrainState, PRNGKeyArray], TrainState]]:
    """Pure ``init(model)`` and ``train_chunk(state, data_key)`` for one model."""
    optimizer = optax.adam(config.lr)

    def loss_fn(model: TanhRNN, inputs, targets, mask) -> Float[Array, ""]:
        return masked_mse(model(inputs), targets, mask)

    def init(model: TanhRNN) -> TrainState:
        return TrainState(
            model=model,
            opt_state=optimizer.init(eqx.filter(model, eqx.is_inexact_array)),
            step=jnp.zeros((), jnp.int32),
            loss=jnp.full((), jnp.nan, jnp.float32),
            diverged=jnp.zeros((), bool),
            stopped=jnp.zeros((), bool),
        )

    def train_step(state: TrainState, data_key: PRNGKeyArray) -> tuple[TrainState, None]:
        inputs, targets, mask = task(jax.random.fold_in(data_key, state.step), config.batch_size)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(state.model, inputs, targets, mask)
        params = eqx.filter(state.model, eqx.is_inexact_array)
        # optax mixes Python floats with its int32 step count; keep that arithmetic working for
        # users (and tests) who run with jax_numpy_dtype_promotion="strict".
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, state.opt_state, params)
        model = eqx.apply_updates(state.model, updates)
        finite = jnp.isfinite(loss) & _all_finite(model)
        # Steps past the budget (the padding of the last chunk) and frozen models change nothing.
        running = (state.step < config.steps) & ~state.diverged & ~state.stopped
        accept = running & finite
        model, opt_state = jax.tree.map(
            lambda new, old: jnp.where(accept, new, old),
            (model, opt_state),
            (state.model, state.opt_state),
        )
        return TrainState(
            model=model,
            opt_state=opt_state,
            step=state.step + accept.astype(jnp.int32),
            loss=jnp.where(running, loss, state.loss),
            diverged=state.diverged | (running & ~finite),
            stopped=state.stopped,
        ), None

    def train_chunk(state: TrainState, data_key: PRNGKeyArray) -> TrainState:
        def body(state, _):
            return train_step(state, data_key)

        state, _ = jax.lax.scan(body, state, None, length=config.chunk_length)
        return state

    return init, train_chunk


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Trained models (at their own widths), last training losses, steps taken, and flags."""

    models: list[TanhRNN]
    final_loss: np.ndarray
    steps: np.ndarray
    diverged: np.ndarray
    # Whether the stopping criterion held when training ended (all False without one).
    stopped: np.ndarray


def default_models_per_group() -> int | None:
    """Models vmapped together on one device: 2 on CPU, all (``None``) on GPU and TPU.

    A CPU core runs one model's small matmuls near its peak already; stacking more models only
    spills the per-model working set (~1 MB) out of cache, so each device trains its models two
    at a time in sequence (measured 1.3× faster than all 16 at once). Accelerators need the
    opposite: every model at once to fill the chip.
    """
    return 2 if on_cpu() else None


def save_checkpoint(path: Path, chunks_done: int, state: TrainState) -> None:
    """Write ``(chunks_done, state)`` as one file, under a temporary name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    eqx.tree_serialise_leaves(temporary, (jnp.asarray(chunks_done, jnp.int32), state))
    os.replace(temporary, path)


def load_checkpoint(path: Path, template: TrainState) -> tuple[int, TrainState]:
    chunks_done, state = eqx.tree_deserialise_leaves(path, (jnp.zeros((), jnp.int32), template))
    return int(chunks_done), state


def train_models(
    task: Task,
    config: TrainConfig,
    models: Sequence[TanhRNN],
    data_keys: Sequence[PRNGKeyArray],
    *,
    progress: bool = True,
    stop_when: Callable[[TanhRNN], np.ndarray] | None = None,
    checkpoint_path: Callable[[list[int]], Path | None] | None = None,
    models_per_group: int | None | Literal["auto"] = "auto",
) -> TrainResult:
    """Train every model, each on its own data stream, in one compiled program per parametrisation.

    Models are zero-padded to the largest width and grouped by parametrisation (all ``dense_*``
    constructions share one program, ``cayley`` another); within a group every model trains in
    one vmapped, jitted call per chunk of steps.

    ``stop_when`` (used with ``config.until_solved``) maps the stacked, padded model batch of a
    group to a boolean per model; it runs between chunks, a model that satisfies it is frozen,
    and a group whose models are all frozen or diverged stops early.

    ``checkpoint_path`` maps the model indices of a group to a file: the group's whole training
    state is written there (atomically) after every chunk, and a group whose file exists resumes
    from it, so an interrupted run continues where it stopped and ends bitwise where an
    uninterrupted one would.

    The model stack is split across all devices, and each device trains its share
    ``models_per_group`` at a time (``None``: all at once; ``"auto"``:
    :func:`default_models_per_group`).
    These choices change only the speed and the float round-off, never which models train how.
    """
    if config.until_solved and stop_when is None:
        raise ValueError("train.until_solved=true needs a stopping criterion for this task")
    if len(models) != len(data_keys):
        raise ValueError(f"got {len(models)} models but {len(data_keys)} data keys")
    max_width = max(m.w_xh.shape[0] for m in models)
    padded = [pad_model(m, max_width) for m in models]
    groups: dict = {}
    for index, model in enumerate(padded):
        groups.setdefault(jax.tree.structure(model), []).append(index)

    if models_per_group == "auto":
        models_per_group = default_models_per_group()
    elif models_per_group is not None and (
        isinstance(models_per_group, bool) or not isinstance(models_per_group, int) or models_per_group < 1
    ):
        raise ValueError(f"models_per_group must be a positive integer, None or 'auto'; got {models_per_group!r}")
    init, train_chunk = make_train(task, config)
    # The state is updated in place across chunks; the data keys are reused, so not donated.
    run_chunk = jax.jit(map_models(train_chunk, models_per_group), donate_argnums=0)
    n_chunks = math.ceil(config.steps / config.chunk_length)
    trained: list = [None] * len(models)
    final_loss = np.full(len(models), np.nan)
    steps = np.zeros(len(models), int)
    diverged = np.zeros(len(models), bool)
    stopped = np.zeros(len(models), bool)
    with tqdm(
        total=config.steps * len(models), unit="model·step", disable=not progress, smoothing=0
    ) as bar:
        for indices in groups.values():
            count = len(indices)
            state = jax.vmap(init)(stack_models([padded[i] for i in indices]))
            path = None if checkpoint_path is None else checkpoint_path(indices)
            start = 0
            if path is not None and path.exists():
                start, state = load_checkpoint(path, state)
                bar.update(count * min(start * config.chunk_length, config.steps))
            # Copies of the group's last model fill the split across devices; they train along
            # and are dropped, and checkpoints hold the real models only, so that a run can
            # resume on a machine with another device count.
            keys = jnp.stack([data_keys[i] for i in indices])
            state, keys = shard_models(pad_models((state, keys), count))
            # Between chunks, everything about the state is read on the host: a jitted op on the
            # sharded arrays (a sum, a slice) would compile to a cross-device collective, and on
            # CPU devices that share a small thread pool with the training program's own
            # parallel loops such a collective can wait forever.
            real = lambda state: jax.tree.map(lambda leaf: np.asarray(leaf)[:count], state)  # noqa: E731
            for chunk in range(start, n_chunks):
                state = run_chunk(state, keys)
                flags = real((state.loss, state.diverged, state.stopped))
                loss, diverged_now, stopped_now = flags
                if config.until_solved:
                    stopped_now = stopped_now | (np.asarray(stop_when(state.model))[:count] & ~diverged_now)
                    frozen = shard_models(pad_models(jnp.asarray(stopped_now), count))
                    state = eqx.tree_at(lambda s: s.stopped, state, frozen)
                done = min((chunk + 1) * config.chunk_length, config.steps)
                bar.update(count * (done - min(chunk * config.chunk_length, config.steps)))
                bar.set_postfix(
                    loss=f"{np.nanmedian(loss):.3g}", diverged=int(diverged_now.sum()), stopped=int(stopped_now.sum())
                )
                finished = bool((stopped_now | diverged_now).all())
                if path is not None:
                    save_checkpoint(path, n_chunks if finished else chunk + 1, real(state))
                if finished:
                    bar.update(count * (config.steps - done))
                    break
            state = jax.tree.map(jnp.asarray, real(state))
            for index, model in zip(indices, unstack_models(state.model)):
                trained[index] = unpad_model(model)
            final_loss[indices] = np.asarray(state.loss)
            steps[indices] = np.asarray(state.step)
            diverged[indices] = np.asarray(state.diverged)
            stopped[indices] = np.asarray(state.stopped)
    return TrainResult(models=trained, final_loss=final_loss, steps=steps, diverged=diverged, stopped=stopped)
