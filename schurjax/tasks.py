"""Tasks as pure JAX trial generators: the registry and the four built-in tasks.

A task is a frozen (hashable) dataclass, so it can be a static argument of ``jit``. Calling it,
``task(key, batch_size) -> (inputs, targets, mask)``, returns

- ``inputs``  ``[B, T, Nx]`` float32,
- ``targets`` ``[B, T, Ny]`` float32,
- ``mask``    ``[B, T, Ny]`` bool, True where a target is scored.

The mask is always per output channel, since the flip-flop scores its channels separately; the
loss and every metric use only the entries where it is True. Calls draw all randomness from the
key and have static shapes, so they are jittable (``batch_size`` static) and vmappable over keys.

A task also carries what the analysis needs to know about it: the metric that figures and
summaries show (:attr:`Task.headline_metric`), an optional solved criterion that can stop training
(:meth:`Task.solved`), and the constant inputs whose fixed points are sought (:meth:`Task.rest_inputs`).
A new task is a :class:`Task` subclass registered with :func:`register_task` (docs/EXTENDING.md).

The paper counts steps from 1; here time indices count from 0, so its "steps 1..8" are ``t = 0..7``.
"""

import abc
import dataclasses
import inspect
import math
import numbers
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Bool, Float, PRNGKeyArray
from .metrics import sign_agreement

Batch = tuple[Float[Array, "B T Nx"], Float[Array, "B T Ny"], Bool[Array, "B T Ny"]]


class Task(abc.ABC):
    """A trial generator ``task(key, batch_size) -> (inputs, targets, mask)``; see the module doc.

    Subclasses are frozen dataclasses whose fields are the task's parameters; ``name`` is the
    registry name and ``n_in``, ``n_out``, ``seq_len`` give the sizes ``Nx``, ``Ny``, ``T``.
    """

    name: ClassVar[str]
    # The result column that figures and sweep summaries show for this task.
    headline_metric: ClassVar[str] = "delta_fvu"
    # Whether :meth:`solved` is defined, so that training can stop once it holds (train.until_solved).
    has_solved_criterion: ClassVar[bool] = False
    # The run settings this task takes apart from RunSpec's own defaults, by RunSpec field (``eval`` and
    # ``diagnostics``: their fields to change); conf/task/<name>.yaml states the same (a test checks).
    run_defaults: ClassVar[dict] = {}

    @property
    @abc.abstractmethod
    def n_in(self) -> int:
        """Input channels ``Nx``."""

    @property
    @abc.abstractmethod
    def n_out(self) -> int:
        """Output channels ``Ny``."""

    @property
    @abc.abstractmethod
    def seq_len(self) -> int:
        """Steps per trial ``T``."""

    @abc.abstractmethod
    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """A batch of ``batch_size`` fresh trials drawn from ``key``."""

    def solved(
        self, outputs: Float[Array, "B T Ny"], targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]
    ) -> Bool[Array, ""]:
        """Whether one network's ``outputs`` on a batch solve the task (traced; the stopping criterion)."""
        raise NotImplementedError(
            f"task {self.name!r} has no solved criterion; define solved() in {type(self).__name__} and set "
            "has_solved_criterion = True, or train without train.until_solved"
        )

    def rest_inputs(self, levels: int) -> tuple[list[str], Float[np.ndarray, "L Nx"]]:
        """The constant inputs x* whose fixed points are sought, with a label for each.

        By default the zero input, where a memory must persist on its own. ``levels`` is how many
        values a task with a graded cue (sine) spreads over its range; others ignore it.
        """
        return ["zero"], np.zeros((1, self.n_in))


def _invalid(field: str, value, requirement: str) -> ValueError:
    return ValueError(f"task parameter {field}={value!r} is invalid: {requirement}")


def _check_int(task: Task, field: str, minimum: int) -> None:
    value = getattr(task, field)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _invalid(field, value, f"it must be an integer >= {minimum}")


def _is_finite_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_real(task: Task, field: str, minimum: float = -math.inf) -> None:
    value = getattr(task, field)
    if not (_is_finite_real(value) and value >= minimum):
        bound = "" if minimum == -math.inf else f" >= {minimum:g}"
        raise _invalid(field, value, f"it must be a finite number{bound}")


def _scored_steps(scored: Bool[np.ndarray, " T"], batch_size: int, n_out: int) -> Bool[Array, "B T Ny"]:
    """A mask that scores the same steps in every trial and channel."""
    return jnp.broadcast_to(jnp.asarray(scored)[None, :, None], (batch_size, scored.size, n_out))


# Registered task name -> Task subclass, in registration order (the built-ins first).
TASKS: dict[str, type[Task]] = {}


def _task_class_problem(cls: type) -> str | None:
    """What keeps ``cls`` from being a registrable task class, phrased as the fix; None if nothing."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        return f"register_task takes a subclass of schurjax.tasks.Task; got {cls!r}"
    label = cls.__qualname__
    if "__dataclass_params__" not in vars(cls) or not cls.__dataclass_params__.frozen:
        return (
            f"task class {label} must be a frozen dataclass (hashable, so that jit takes it as a static "
            "argument): put @dataclasses.dataclass(frozen=True) under @register_task"
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or "name" in {f.name for f in dataclasses.fields(cls)}:
        return f'task class {label} needs a registry name: add  name: ClassVar[str] = "<name>"  to its body'
    if inspect.isabstract(cls):
        return f"task class {label} must define {', '.join(sorted(cls.__abstractmethods__))}"
    if cls.has_solved_criterion != (cls.solved is not Task.solved):
        return (
            f"task class {label}: has_solved_criterion = True goes with its own solved() method, and only "
            "with it; define both or neither"
        )
    return None


def register_task(cls: type) -> type[Task]:
    """Register a Task subclass under its ``name``, so that :func:`make_task` and ``task=<name>`` runs
    find it; usable as a class decorator (above ``@dataclasses.dataclass(frozen=True)``).

    Registering the same class again is a no-op; another class under a taken name is refused.
    """
    problem = _task_class_problem(cls)
    if problem is not None:
        raise TypeError(problem)
    taken = TASKS.get(cls.name)
    if taken is not None and taken is not cls:
        raise ValueError(
            f"task name {cls.name!r} is already registered by {taken.__module__}.{taken.__qualname__}; "
            f"give {cls.__qualname__} another name"
        )
    TASKS[cls.name] = cls
    return cls


@register_task
@dataclasses.dataclass(frozen=True)
class CopyTask(Task):
    """Fixed-length copy with autonomous periodic replay.

    Steps ``0..n_symbols-1`` present ``n_symbols`` random symbols in ``{-1, +1}^dim``; the input is
    zero afterwards. The target at replay lag ℓ = 1..``lags`` (step ``n_symbols + ℓ - 1``) is
    symbol ``(ℓ - 1) mod n_symbols``. Exactly the replay steps are scored, in every channel.
    """

    n_symbols: int = 8
    dim: int = 8
    lags: int = 32
    name: ClassVar[str] = "copy"
    headline_metric: ClassVar[str] = "replay_accuracy"
    has_solved_criterion: ClassVar[bool] = True
    run_defaults: ClassVar[dict] = dict(
        widths=(56, 64, 72),
        constructions=("dense_default", "dense_orthogonal", "dense_normal", "cayley"),
        eval_task_params={"lags": 128},  # the paper scores replay over 128 lags
        # 36 controllers: random controls and fixed points are opt-in
        eval={"random_controls": 0},
        diagnostics={"fixed_points": False},
    )

    def __post_init__(self):
        for field in ("n_symbols", "dim", "lags"):
            _check_int(self, field, minimum=1)

    @property
    def n_in(self) -> int:
        return self.dim

    @property
    def n_out(self) -> int:
        return self.dim

    @property
    def seq_len(self) -> int:
        return self.n_symbols + self.lags

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        symbols = jax.random.rademacher(key, (batch_size, self.n_symbols, self.dim), jnp.float32)
        replay = symbols[:, np.arange(self.lags) % self.n_symbols]
        inputs = jnp.concatenate([symbols, jnp.zeros_like(replay)], axis=1)
        targets = jnp.concatenate([jnp.zeros_like(symbols), replay], axis=1)
        scored = np.arange(self.seq_len) >= self.n_symbols
        return inputs, targets, _scored_steps(scored, batch_size, self.n_out)

    def solved(
        self, outputs: Float[Array, "B T Ny"], targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]
    ) -> Bool[Array, ""]:
        """Perfect replay: every scored entry has the target's sign."""
        return sign_agreement(outputs, targets, mask) == 1.0


@register_task
@dataclasses.dataclass(frozen=True)
class FlipFlopTask(Task):
    """The n-bit flip-flop (Sussillo & Barak 2013).

    Inputs are one-step ±1 pulses (fair random signs), on one channel at a time:

    - early phase: every channel is pulsed once, in a random order, at steps
      ``0, initial_interval, ..., (n_bits - 1) * initial_interval``;
    - afterwards each pulse comes on a uniformly random channel, the gap to the previous pulse
      uniform in ``{min_interval, ..., max_interval}``, until the end of the trial.

    The target of a channel at step ``t`` is the sign of its latest pulse at a step ``<= t``
    (0 before its first pulse). A channel is unscored before its first pulse and during the
    ``grace`` steps that start AT each of its pulses: after a pulse at ``p`` it is unscored at
    ``p, ..., p + grace - 1`` and scored again from ``p + grace`` on, the time given to flip.
    """

    seq_len: int = 25
    n_bits: int = 3
    initial_interval: int = 2
    min_interval: int = 3
    max_interval: int = 10
    grace: int = 2
    name: ClassVar[str] = "flipflop"

    def __post_init__(self):
        for field in ("seq_len", "n_bits", "initial_interval", "min_interval", "max_interval"):
            _check_int(self, field, minimum=1)
        _check_int(self, "grace", minimum=0)
        if self.min_interval > self.max_interval:
            raise _invalid(
                "min_interval", self.min_interval, f"it must not exceed max_interval={self.max_interval}"
            )
        if self._last_initial_pulse >= self.seq_len:
            raise _invalid(
                "initial_interval",
                self.initial_interval,
                f"the {self.n_bits} initial pulses, {self.initial_interval} steps apart, "
                f"must fit in seq_len={self.seq_len}",
            )

    @property
    def n_in(self) -> int:
        return self.n_bits

    @property
    def n_out(self) -> int:
        return self.n_bits

    @property
    def _last_initial_pulse(self) -> int:
        return (self.n_bits - 1) * self.initial_interval

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        order_key, gap_key, channel_key, sign_key = jax.random.split(key, 4)
        shape = (batch_size, self.seq_len, self.n_bits)
        # Static shapes: draw as many later pulses as could fit at the shortest gap; the scatter
        # below drops those that land past the end of the trial.
        n_later = (self.seq_len - 1 - self._last_initial_pulse) // self.min_interval
        every_channel = jnp.broadcast_to(jnp.arange(self.n_bits), (batch_size, self.n_bits))
        gaps = jax.random.randint(gap_key, (batch_size, n_later), self.min_interval, self.max_interval + 1)
        later_times = self._last_initial_pulse + jnp.cumsum(gaps, axis=1)
        times = jnp.concatenate([every_channel * self.initial_interval, later_times], axis=1)
        order = jax.random.permutation(order_key, every_channel, axis=1, independent=True)
        later_channels = jax.random.randint(channel_key, (batch_size, n_later), 0, self.n_bits)
        channels = jnp.concatenate([order, later_channels], axis=1)
        signs = jax.random.rademacher(sign_key, times.shape, jnp.float32)
        trial = jnp.arange(batch_size)[:, None]
        inputs = jnp.zeros(shape, jnp.float32).at[trial, times, channels].set(signs, mode="drop")

        # Step of each channel's latest pulse so far, -1 before its first. Until then the gather
        # reads the channel's input at step 0, which is silent, so the target is 0.
        steps = jnp.broadcast_to(jnp.arange(self.seq_len)[None, :, None], shape)
        latest = jax.lax.cummax(jnp.where(inputs != 0, steps, -1), axis=1)
        targets = jnp.take_along_axis(inputs, jnp.maximum(latest, 0), axis=1)
        mask = (latest >= 0) & (steps - latest >= self.grace)
        return inputs, targets, mask


@register_task
@dataclasses.dataclass(frozen=True)
class SineTask(Task):
    """Frequency-cued sine generation.

    Each trial draws x ~ U[0, 1], or x = j / J with j uniform in ``{1..J}`` when ``n_freqs`` = J
    is given (Sussillo & Barak's discrete variant). The single input holds ``x + cue_offset`` at
    every step; the single output must produce sin(2π f t) at steps t = 1..``seq_len`` (counted
    from 1 as in the paper), f = f_min + (f_max - f_min) x in cycles per step. Every step is scored.
    """

    seq_len: int = 50
    f_min: float = 0.04
    f_max: float = 0.2
    cue_offset: float = 0.25
    n_freqs: int | None = None
    name: ClassVar[str] = "sine"

    def __post_init__(self):
        _check_int(self, "seq_len", minimum=1)
        _check_real(self, "f_min", minimum=0.0)
        _check_real(self, "f_max")
        _check_real(self, "cue_offset")
        if self.f_min > self.f_max:
            raise _invalid("f_min", self.f_min, f"it must not exceed f_max={self.f_max}")
        if self.n_freqs is not None:
            _check_int(self, "n_freqs", minimum=1)

    @property
    def n_in(self) -> int:
        return 1

    @property
    def n_out(self) -> int:
        return 1

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        if self.n_freqs is None:
            x = jax.random.uniform(key, (batch_size,))
        else:
            j = jax.random.randint(key, (batch_size,), 1, self.n_freqs + 1)
            x = j.astype(jnp.float32) / self.n_freqs
        frequency = self.f_min + (self.f_max - self.f_min) * x
        t = jnp.arange(1, self.seq_len + 1, dtype=jnp.float32)
        targets = jnp.sin(2 * jnp.pi * frequency[:, None] * t[None, :])[:, :, None]
        inputs = jnp.broadcast_to((x + self.cue_offset)[:, None, None], targets.shape)
        return inputs, targets, jnp.ones(targets.shape, bool)

    def rest_inputs(self, levels: int) -> tuple[list[str], Float[np.ndarray, "L Nx"]]:
        """The static cue at ``levels`` evenly spaced x in [0, 1] (input x + cue_offset), where Sussillo
        & Barak find one input-dependent fixed point the oscillation turns around."""
        cues = np.linspace(0.0, 1.0, levels) if levels > 1 else np.array([0.5])
        return [f"cue={x:.3g}" for x in cues], (cues + self.cue_offset)[:, None]


@register_task
@dataclasses.dataclass(frozen=True)
class CdiTask(Task):
    """Context-dependent integration (Mante et al. 2013).

    A trial runs through ``fixation``, ``stimulus``, ``delay`` and ``decision`` periods. It draws
    two signed coherences c_0, c_1 independently and uniformly from ``±coherences`` and a context
    k* uniform in {0, 1}. Inputs ``[sensory_0, sensory_1, context_0, context_1]`` are zero except
    during the stimulus, when sensory channel k carries c_k + noise·ε (ε standard normal, fresh
    per step and channel) and the context channels hold the one-hot of k*. The target is 0 during
    fixation and stimulus and sign(c_k*) during the decision; only the delay is unscored.

    ``noise`` only scales ε: for a given key, trials at different noise levels share their
    coherences, contexts, targets and ε.
    """

    fixation: int = 3
    stimulus: int = 20
    delay: int = 5
    decision: int = 20
    noise: float = 0.1
    coherences: Sequence[float] = (1 / 8, 2 / 8, 4 / 8, 8 / 8)
    name: ClassVar[str] = "cdi"

    def __post_init__(self):
        for field, minimum in (("fixation", 0), ("stimulus", 1), ("delay", 0), ("decision", 1)):
            _check_int(self, field, minimum)
        _check_real(self, "noise", minimum=0.0)
        magnitudes = self.coherences
        if not (
            isinstance(magnitudes, Sequence)
            and len(magnitudes) > 0
            and all(_is_finite_real(c) and c > 0 for c in magnitudes)
        ):
            raise _invalid("coherences", magnitudes, "give one or more positive magnitudes (signs are drawn)")
        # Configs hand lists; a tuple keeps the task hashable for jit.
        object.__setattr__(self, "coherences", tuple(magnitudes))

    @property
    def n_in(self) -> int:
        return 4

    @property
    def n_out(self) -> int:
        return 1

    @property
    def seq_len(self) -> int:
        return self.fixation + self.stimulus + self.delay + self.decision

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        coherence_key, context_key, noise_key = jax.random.split(key, 3)
        signed = jnp.asarray([*self.coherences, *(-c for c in self.coherences)], jnp.float32)
        coherence = jax.random.choice(coherence_key, signed, (batch_size, 2))
        context = jax.random.randint(context_key, (batch_size,), 0, 2)

        noise = self.noise * jax.random.normal(noise_key, (batch_size, self.stimulus, 2))
        sensory = coherence[:, None, :] + noise
        cue = jnp.broadcast_to(jax.nn.one_hot(context, 2)[:, None, :], sensory.shape)
        before, after = self.fixation, self.delay + self.decision
        inputs = jnp.pad(jnp.concatenate([sensory, cue], axis=-1), ((0, 0), (before, after), (0, 0)))

        relevant = jnp.take_along_axis(coherence, context[:, None], axis=1)
        decision = jnp.broadcast_to(jnp.sign(relevant)[:, None, :], (batch_size, self.decision, 1))
        targets = jnp.pad(decision, ((0, 0), (self.seq_len - self.decision, 0), (0, 0)))
        t = np.arange(self.seq_len)
        in_delay = (t >= before + self.stimulus) & (t < self.seq_len - self.decision)
        return inputs, targets, _scored_steps(~in_delay, batch_size, self.n_out)

    def rest_inputs(self, levels: int) -> tuple[list[str], Float[np.ndarray, "L Nx"]]:
        """Zero (fixation, delay and decision: the integrator must hold its value) and each context cue
        with silent sensory channels, the linearisation points of Mante et al. 2013."""
        return ["zero", "context0", "context1"], np.array([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)


def make_task(name: str, /, **params) -> Task:
    """The task registered as ``name``, built with ``params`` (its dataclass fields).

    Unknown names and parameters raise a ValueError listing the valid ones; invalid values raise
    a ValueError naming the parameter and its value.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    valid = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for task {name!r}; valid: {', '.join(valid)}"
        )
    return cls(**params)


def headline_metric(name: str) -> str:
    """The result column a run of task ``name`` is judged by (figures, sweep summaries); ΔFVU for
    data that no registered task made (networks analysed on the user's own inputs)."""
    return TASKS[name].headline_metric if name in TASKS else Task.headline_metric
