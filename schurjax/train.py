"""Training: Adam on the masked MSE, many models in one compiled program.

``make_train(task, config)`` returns a pure ``train_chunk(state, data_key)`` for ONE model, in the
style of purejaxrl's ``make_train``; :func:`train_models` vmaps it over fixed-size groups of models
(seeds and constructions of one width and parametrisation) and drives it chunk by chunk from the
host, so that the hot loop never syncs with the host and the host can still report progress
between chunks.

Each model draws its own fresh batch every step from ``fold_in(data_key, step)``, so what a model
sees depends only on its own key and step, never on which other models share its batch.
"""

import dataclasses
import io
import logging
import math
import zipfile
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
from .atomic import atomic_write, sha256
from .devices import join_groups, on_cpu, split_groups
from .metrics import masked_mse
from .model import TanhRNN, stack_models, unstack_models
from .tasks import Task

log = logging.getLogger(__name__)

DECAYS = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every model of a run: the training protocol.

    The defaults are the paper's protocol (Adam 1e-3, 3840 steps of batch 64, no clipping, no
    schedule); :mod:`schurjax.protocols` holds the per-task protocols that the CLI uses.
    """

    steps: int = 3840
    batch_size: int = 64
    lr: float = 1e-3
    # Steps per compiled call; the host reports progress (and may checkpoint) between chunks.
    chunk_steps: int = 256
    # Stop each model once the task's "solved" criterion holds (checked between chunks);
    # ``steps`` is then the budget. Only tasks with such a criterion (copy) accept it.
    until_solved: bool = False
    # Rescale each step's gradient to at most this global L2 norm before Adam (None: no clipping).
    clip_norm: float | None = None
    # Linear learning-rate warmup from 0 over this many steps.
    warmup_steps: int = 0
    # After the warmup: a constant learning rate, or a cosine decay to 0 at ``steps``.
    decay: str = "constant"

    def __post_init__(self):
        for name in ("steps", "batch_size", "chunk_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"train.{name} must be a positive integer; got {value!r}")
        for name in ("lr", "clip_norm"):
            value = getattr(self, name)
            if name == "clip_norm" and value is None:
                continue
            if isinstance(value, bool) or not (isinstance(value, float | int) and math.isfinite(value) and value > 0):
                raise ValueError(f"train.{name} must be a positive finite number; got {value!r}")
        warmup = self.warmup_steps
        if isinstance(warmup, bool) or not isinstance(warmup, int | np.integer) or not 0 <= warmup < self.steps:
            raise ValueError(f"train.warmup_steps must be an integer in [0, train.steps={self.steps}); got {warmup!r}")
        if self.decay not in DECAYS:
            raise ValueError(f"train.decay={self.decay!r} is not one of {', '.join(DECAYS)}")

    @property
    def chunk_length(self) -> int:
        """Steps per chunk, spread evenly so the last chunk wastes at most a few steps."""
        n_chunks = math.ceil(self.steps / self.chunk_steps)
        return math.ceil(self.steps / n_chunks)

    def describe(self) -> str:
        """The protocol in one line, for logs and reports."""
        clip = "no clipping" if self.clip_norm is None else f"clip_by_global_norm({self.clip_norm:g})"
        schedule = self.decay if self.warmup_steps == 0 else f"{self.warmup_steps}-step warmup, then {self.decay}"
        budget = "budget " if self.until_solved else ""
        return f"Adam lr {self.lr:g} ({schedule}), {clip}, {budget}{self.steps} steps of batch {self.batch_size}"


def learning_rate(config: TrainConfig) -> float | optax.Schedule:
    """The protocol's learning rate: a plain number, or a warmup and/or decay schedule."""
    if config.warmup_steps == 0 and config.decay == "constant":
        return config.lr  # a plain float keeps the paper protocol's arithmetic as it always was
    if config.decay == "cosine":
        after = optax.cosine_decay_schedule(config.lr, config.steps - config.warmup_steps)
    else:
        after = optax.constant_schedule(config.lr)
    if config.warmup_steps == 0:
        return after
    warmup = optax.linear_schedule(0.0, config.lr, config.warmup_steps)
    return optax.join_schedules([warmup, after], [config.warmup_steps])


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam at the protocol's learning rate, after global-norm clipping when it asks for it."""
    adam = optax.adam(learning_rate(config))
    return adam if config.clip_norm is None else optax.chain(optax.clip_by_global_norm(config.clip_norm), adam)


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
    # The largest global gradient norm (before any clipping) of the current chunk's steps.
    grad_norm: Float[Array, ""]


def _all_finite(tree) -> Bool[Array, ""]:
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))]
    return jnp.stack(leaves).all()


def make_train(
    task: Task, config: TrainConfig
) -> tuple[Callable[[TanhRNN], TrainState], Callable[[TrainState, PRNGKeyArray], TrainState]]:
    """Pure ``init(model)`` and ``train_chunk(state, data_key)`` for one model."""
    optimizer = make_optimizer(config)

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
            grad_norm=jnp.zeros((), jnp.float32),
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
            grad_norm=jnp.where(running, jnp.maximum(state.grad_norm, optax.tree.norm(grads)), state.grad_norm),
        ), None

    def train_chunk(state: TrainState, data_key: PRNGKeyArray) -> TrainState:
        def body(state, _):
            return train_step(state, data_key)

        state = eqx.tree_at(lambda s: s.grad_norm, state, jnp.zeros_like(state.grad_norm))
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
    # Per model and chunk: the last training loss and the largest global gradient norm of the
    # chunk's steps, [models, chunks] (NaN for chunks not run here: resumed or stopped early).
    loss_history: np.ndarray
    grad_norm_history: np.ndarray


def default_models_per_group() -> int:
    """Models vmapped together in one group: 2 on CPU, 64 on GPU and TPU.

    A CPU core runs one model's small matmuls near its peak already; stacking more models only
    spills the per-model working set (~1 MB) out of cache, so each device trains its models two
    at a time in sequence (measured 1.3× faster than all 16 at once). Accelerators need the
    opposite: many models at once to fill the chip. The group size is fixed, never derived from
    the number of models, so that a model trains in a program of the same shape whatever else
    trains beside it.
    """
    return 2 if on_cpu() else 64


def _group_size(models_per_group: int | Literal["auto"]) -> int:
    if models_per_group == "auto":
        return default_models_per_group()
    if isinstance(models_per_group, bool) or not isinstance(models_per_group, int) or models_per_group < 1:
        raise ValueError(f"models_per_group must be a positive integer or 'auto'; got {models_per_group!r}")
    return models_per_group


# A checkpoint file starts with this, the SHA-256 (hex) of the serialised state and a newline.
CHECKPOINT_HEADER = b"schurjax checkpoint sha256 "


def save_checkpoint(path: Path, chunks_done: int, state: TrainState) -> None:
    """Write ``(chunks_done, state)`` as one file, atomically, behind the checksum of its content."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (jnp.asarray(chunks_done, jnp.int32), state))
    payload = buffer.getvalue()
    with atomic_write(path) as handle:
        handle.write(CHECKPOINT_HEADER + sha256(payload).encode() + b"\n" + payload)


def load_checkpoint(path: Path, template: TrainState) -> tuple[int, TrainState]:
    """``(chunks_done, state)`` as :func:`save_checkpoint` wrote them; a damaged file is named in a
    warning and training starts over: ``(0, template)``. Files written before checksums existed
    (no header) are accepted if they load."""
    try:
        data = path.read_bytes()
        header, _, payload = data.partition(b"\n")
        if not header.startswith(CHECKPOINT_HEADER):
            payload = data
        elif header.removeprefix(CHECKPOINT_HEADER).decode() != sha256(payload):
            raise ValueError("its content does not match its SHA-256")
        chunks_done, state = eqx.tree_deserialise_leaves(io.BytesIO(payload), (jnp.zeros((), jnp.int32), template))
    # equinox reports a leaf it cannot read as a RuntimeError naming the leaf
    except (OSError, EOFError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile) as error:
        log.warning("training checkpoint %s is damaged (%s); its models are trained from the start", path, error)
        return 0, template
    return int(chunks_done), state


def _program_groups(models: Sequence[TanhRNN]) -> list[list[int]]:
    """Indices of the models that share one program: one parametrisation (tree structure) and width.

    Each width trains in a program of its own rather than zero-padded to the largest: padding
    leaves the arithmetic exact but changes how XLA blocks and vectorises every sum, and that
    round-off, grown over thousands of steps, changed trained sine networks as much as a new seed
    (measured: max |ΔW_hh| 0.08–0.27 between a width-56 network trained alone and inside a
    56/64/72 program, held-out FVU 0.014 vs 0.040, ΔFVU(T_CC) 25 vs 3.9).
    """
    groups: dict = {}
    for index, model in enumerate(models):
        groups.setdefault((jax.tree.structure(model), model.w_xh.shape), []).append(index)
    return list(groups.values())


@dataclasses.dataclass
class _GroupRun:
    """What the host needs to drive one parametrisation's models through the chunks."""

    config: TrainConfig
    run_chunk: Callable
    group_size: int
    stop_when: Callable[[TanhRNN], np.ndarray] | None
    bar: tqdm


def _run_waves(run_chunk: Callable, states: list, keys: list, wave: int | None) -> list:
    """One chunk of every group, ``wave`` groups at a time (None: all at once): a wave's groups
    are dispatched together, and the next wave starts when it is done."""
    done = []
    wave = wave or len(states)
    for start in range(0, len(states), wave):
        wave_states, wave_keys = states[start : start + wave], keys[start : start + wave]
        done += jax.block_until_ready([run_chunk(s, k) for s, k in zip(wave_states, wave_keys)])
    return done


def _wave_size(run_chunk: Callable, state: TrainState, keys) -> int | None:
    """Groups dispatched at once: all of them (None), each device running its own groups back to
    back (waiting for both devices after every pair of groups left the first one idle: measured
    1-2 s of a 21 s training), except on CPU for programs that call host libraries (the Cayley
    construction's LAPACK solve), which deadlocked when two CPU devices ran them concurrently;
    those run one group at a time."""
    if on_cpu() and "custom_call" in run_chunk.lower(state, keys).as_text():
        return 1
    return None


def _train_group(run: _GroupRun, state: TrainState, keys, path: Path | None) -> tuple[TrainState, np.ndarray]:
    """Train one stack of ``count`` real models chunk by chunk; returns the (host) state and the
    [2, count, chunks] loss and gradient-norm history."""
    config, count = run.config, state.step.shape[0]
    n_chunks = math.ceil(config.steps / config.chunk_length)
    history = np.full((2, count, n_chunks), np.nan)
    start = 0
    if path is not None and path.exists():
        start, state = load_checkpoint(path, state)
        run.bar.update(count * min(start * config.chunk_length, config.steps))
    # Fixed-size groups, one single-device program each, dispatched to the devices in turn (they
    # run concurrently). Checkpoints hold the real models only, so that a run can resume on a
    # machine with another device count.
    split = lambda tree: split_groups(tree, count, run.group_size)  # noqa: E731
    states, keys = split(state), split(keys)
    wave = _wave_size(run.run_chunk, states[0], keys[0])
    for chunk in range(start, n_chunks):
        states = _run_waves(run.run_chunk, states, keys, wave)
        state = join_groups(states, count)
        history[:, :, chunk] = state.loss, state.grad_norm
        stopped = state.stopped
        if config.until_solved:
            stopped = stopped | (np.asarray(run.stop_when(jax.tree.map(jnp.asarray, state.model))) & ~state.diverged)
            flags = split(jnp.asarray(stopped))
            states = [eqx.tree_at(lambda s: s.stopped, s, flag) for s, flag in zip(states, flags)]
            state = eqx.tree_at(lambda s: s.stopped, state, stopped)
        done = min((chunk + 1) * config.chunk_length, config.steps)
        run.bar.update(count * (done - min(chunk * config.chunk_length, config.steps)))
        run.bar.set_postfix(
            loss=f"{np.nanmedian(state.loss):.3g}", diverged=int(state.diverged.sum()), stopped=int(stopped.sum())
        )
        finished = bool((stopped | state.diverged).all())
        if path is not None:
            save_checkpoint(path, n_chunks if finished else chunk + 1, state)
        if finished:
            run.bar.update(count * (config.steps - done))
            break
    return jax.tree.map(jnp.asarray, join_groups(states, count)), history


def train_models(
    task: Task,
    config: TrainConfig,
    models: Sequence[TanhRNN],
    data_keys: Sequence[PRNGKeyArray],
    *,
    progress: bool = True,
    stop_when: Callable[[TanhRNN], np.ndarray] | None = None,
    checkpoint_path: Callable[[list[int]], Path | None] | None = None,
    models_per_group: int | Literal["auto"] = "auto",
) -> TrainResult:
    """Train every model, each on its own data stream, in one compiled program per parametrisation
    and width.

    All ``dense_*`` constructions of one width share one program, ``cayley`` another. The models
    of a program train ``models_per_group`` at a time (``"auto"``:
    :func:`default_models_per_group`), each group the same single-device program, short groups
    filled with inert copies, and the groups are dispatched to the devices in turn: a model's
    training is bitwise the same whichever other models train beside it, in whatever order, and
    on however many devices.

    ``stop_when`` (used with ``config.until_solved``) maps a stack of models of one program to a
    boolean per model; it runs between chunks, a model that satisfies it is frozen,
    and a group whose models are all frozen or diverged stops early.

    ``checkpoint_path`` maps the model indices of a group to a file: the group's whole training
    state is written there (atomically) after every chunk, and a group whose file exists resumes
    from it, so an interrupted run continues where it stopped and ends bitwise where an
    uninterrupted one would.
    """
    _check_arguments(config, models, data_keys, stop_when)
    init, train_chunk = make_train(task, config)
    # The state is updated in place across chunks; the data keys are reused, so not donated.
    run_chunk = jax.jit(jax.vmap(train_chunk), donate_argnums=0)
    trained = []
    with tqdm(total=config.steps * len(models), unit="model·step", disable=not progress, smoothing=0) as bar:
        run = _GroupRun(config, run_chunk, _group_size(models_per_group), stop_when, bar)
        for indices in _program_groups(models):
            state = jax.vmap(init)(stack_models([models[i] for i in indices]))
            keys = jnp.stack([data_keys[i] for i in indices])
            path = None if checkpoint_path is None else checkpoint_path(indices)
            trained.append((indices, *_train_group(run, state, keys, path)))
    return _collected(trained, len(models), math.ceil(config.steps / config.chunk_length))


def _check_arguments(config: TrainConfig, models: Sequence[TanhRNN], data_keys: Sequence, stop_when) -> None:
    if config.until_solved and stop_when is None:
        raise ValueError("train.until_solved=true needs a stopping criterion for this task")
    if len(models) != len(data_keys):
        raise ValueError(f"got {len(models)} models but {len(data_keys)} data keys")


def _collected(programs: list[tuple[list[int], TrainState, np.ndarray]], count: int, n_chunks: int) -> TrainResult:
    """The models, flags and histories of every program's final state, in the order the models were given."""
    trained: list = [None] * count
    final_loss, history = np.full(count, np.nan), np.full((2, count, n_chunks), np.nan)
    steps, diverged, stopped = np.zeros(count, int), np.zeros(count, bool), np.zeros(count, bool)
    for indices, state, program_history in programs:
        for index, model in zip(indices, unstack_models(state.model)):
            trained[index] = model
        final_loss[indices], history[:, indices] = np.asarray(state.loss), program_history
        flags = (state.step, state.diverged, state.stopped)
        steps[indices], diverged[indices], stopped[indices] = (np.asarray(flag) for flag in flags)
    return TrainResult(
        trained, final_loss, steps, diverged, stopped, loss_history=history[0], grad_norm_history=history[1]
    )
