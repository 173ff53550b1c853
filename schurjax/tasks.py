"""The four tasks of SPEC §3 as pure JAX functions ``task(key, batch_size) -> (x, y, mask)``.

Every task is a frozen (hashable) dataclass, so it can be a static argument of ``jit``; calling it
returns ``inputs [B, T, Nx]``, ``targets [B, T, Ny]`` (float32) and ``mask [B, T, Ny]`` (bool).
The mask is always per output channel (the flip-flop scores channels separately); the loss and
every metric use only entries where it is True. Calls are jittable, vmappable over keys and
draw all randomness from the key.
"""

import abc
import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ._typing import Array, Bool, Float, PRNGKeyArray

Batch = tuple[Float[Array, "B T Nx"], Float[Array, "B T Ny"], Bool[Array, "B T Ny"]]


def _require(condition: bool, field: str, value, requirement: str) -> None:
    if not condition:
        raise ValueError(f"task parameter {field}={value!r} is invalid: {requirement}")


def _positive_int(field: str, value) -> None:
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    _require(valid, field, value, "it must be a positive integer")


def _random_signs(key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, "..."]:
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0)


class Task(abc.ABC):
    """A trial generator: ``task(key, batch_size) -> (inputs, targets, mask)``."""

    name: str

    @property
    @abc.abstractmethod
    def n_in(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_out(self) -> int: ...

    @property
    @abc.abstractmethod
    def seq_len(self) -> int: ...

    @abc.abstractmethod
    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch: ...


@dataclasses.dataclass(frozen=True)
class CopyTask(Task):
    """Fixed-length copy with autonomous periodic replay.

    Steps ``0..n_symbols-1`` present random ±1 symbols of dimension ``dim``; the input is zero
    afterwards and the target at replay lag ℓ = 1..``lags`` (step ``n_symbols + ℓ - 1``) is symbol
    ``(ℓ - 1) mod n_symbols``. Only replay steps are scored.
    """

    n_symbols: int = 8
    dim: int = 8
    lags: int = 32
    name = "copy"

    def __post_init__(self):
        for field in ("n_symbols", "dim", "lags"):
            _positive_int(field, getattr(self, field))

    n_in = property(lambda self: self.dim)
    n_out = property(lambda self: self.dim)
    seq_len = property(lambda self: self.n_symbols + self.lags)

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        symbols = _random_signs(key, (batch_size, self.n_symbols, self.dim))
        silence = jnp.zeros((batch_size, self.lags, self.dim))
        replay = symbols[:, jnp.arange(self.lags) % self.n_symbols]
        inputs = jnp.concatenate([symbols, silence], axis=1)
        targets = jnp.concatenate([jnp.zeros_like(symbols), replay], axis=1)
        scored = jnp.arange(self.seq_len) >= self.n_symbols
        mask = jnp.broadcast_to(scored[None, :, None], targets.shape)
        return inputs, targets, mask


@dataclasses.dataclass(frozen=True)
class FlipFlopTask(Task):
    """The n-bit flip-flop (Sussillo & Barak 2013).

    Inputs are one-step ±1 pulses on one channel at a time. Every channel is pulsed once early,
    in random order, at steps ``0, initial_interval, 2·initial_interval, ...``; later pulses come
    on a uniformly random channel with a random sign, the gap to the previous pulse uniform in
    ``{min_interval..max_interval}``. The target of a channel is the sign of its latest pulse.
    A channel is unscored before its first pulse and for ``grace`` steps starting at each of its
    pulses (steps ``p..p+grace-1``), the time the network is given to flip.
    """

    seq_len: int = 25
    n_bits: int = 3
    initial_interval: int = 2
    min_interval: int = 3
    max_interval: int = 10
    grace: int = 2
    name = "flipflop"

    def __post_init__(self):
        for field in ("seq_len", "n_bits", "initial_interval", "min_interval", "max_interval"):
            _positive_int(field, getattr(self, field))
        _require(
            isinstance(self.grace, int) and self.grace >= 0, "grace", self.grace, "it must be an integer >= 0"
        )
        _require(
            self.min_interval <= self.max_interval,
            "min_interval",
            self.min_interval,
            f"it must not exceed max_interval={self.max_interval}",
        )
        _require(
            (self.n_bits - 1) * self.initial_interval < self.seq_len,
            "initial_interval",
            self.initial_interval,
            f"the {self.n_bits} initial pulses must fit in seq_len={self.seq_len}",
        )

    n_in = property(lambda self: self.n_bits)
    n_out = property(lambda self: self.n_bits)

    def _one_trial(
        self, key: PRNGKeyArray
    ) -> tuple[Float[Array, "T Nx"], Float[Array, "T Ny"], Bool[Array, "T Ny"]]:
        order_key, gap_key, channel_key, sign_key = jax.random.split(key, 4)
        # Enough later pulses to fill the trial at the shortest gap; those past the end drop out.
        n_later = max(0, math.ceil(self.seq_len / self.min_interval))
        first_times = jnp.arange(self.n_bits) * self.initial_interval
        gaps = jax.random.randint(gap_key, (n_later,), self.min_interval, self.max_interval + 1)
        later_times = first_times[-1] + jnp.cumsum(gaps)
        times = jnp.concatenate([first_times, later_times])
        channels = jnp.concatenate(
            [
                jax.random.permutation(order_key, self.n_bits),
                jax.random.randint(channel_key, (n_later,), 0, self.n_bits),
            ]
        )
        signs = _random_signs(sign_key, times.shape)
        # One-hot pulses [pulses, T, Nx]; pulses past the end match no step and vanish.
        at_time = times[:, None] == jnp.arange(self.seq_len)[None, :]
        on_channel = channels[:, None] == jnp.arange(self.n_bits)[None, :]
        pulses = at_time[:, :, None] & on_channel[:, None, :]
        inputs = jnp.where(pulses, signs[:, None, None], 0.0).sum(axis=0)
        pulsed = inputs != 0
        steps = jnp.arange(self.seq_len)[:, None]
        last_pulse = jax.lax.cummax(jnp.where(pulsed, steps, -1), axis=0)
        targets = jnp.take_along_axis(inputs, jnp.maximum(last_pulse, 0), axis=0)
        mask = (last_pulse >= 0) & (steps - last_pulse >= self.grace)
        return inputs, targets, mask

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        return jax.vmap(self._one_trial)(jax.random.split(key, batch_size))


@dataclasses.dataclass(frozen=True)
class SineTask(Task):
    """Frequency-cued sine generation.

    A static cue ``x + cue_offset`` for the whole trial asks for sin(2π f t), t = 1..``seq_len``,
    with f = f_min + (f_max - f_min) x cycles per step. x ~ U[0, 1], or x = j/J with j uniform in
    {1..J} when ``n_freqs`` = J is given (Sussillo & Barak's discrete variant). Every step is scored.
    """

    seq_len: int = 50
    f_min: float = 0.04
    f_max: float = 0.2
    cue_offset: float = 0.25
    n_freqs: int | None = None
    name = "sine"

    def __post_init__(self):
        _positive_int("seq_len", self.seq_len)
        _require(0 <= self.f_min <= self.f_max, "f_min", self.f_min, f"need 0 <= f_min <= f_max={self.f_max}")
        if self.n_freqs is not None:
            _positive_int("n_freqs", self.n_freqs)

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        if self.n_freqs is None:
            cue = jax.random.uniform(key, (batch_size,))
        else:
            cue = jax.random.randint(key, (batch_size,), 1, self.n_freqs + 1) / self.n_freqs
        frequency = self.f_min + (self.f_max - self.f_min) * cue
        t = jnp.arange(1, self.seq_len + 1, dtype=jnp.float32)
        targets = jnp.sin(2 * jnp.pi * frequency[:, None] * t[None, :])[:, :, None]
        inputs = jnp.broadcast_to((cue + self.cue_offset)[:, None, None], targets.shape)
        return inputs, targets, jnp.ones(targets.shape, bool)


@dataclasses.dataclass(frozen=True)
class CdiTask(Task):
    """Context-dependent integration (Mante et al. 2013).

    Periods: fixation, stimulus, delay, decision. During the stimulus, sensory channel k carries
    c_k + noise·ε (c_k uniform over ±``coherences``, ε standard normal per step) and two one-hot
    channels name the relevant stream k*. The output must be 0 during fixation and stimulus and
    sign(c_k*) during the decision; the delay is unscored.
    """

    fixation: int = 3
    stimulus: int = 20
    delay: int = 5
    decision: int = 20
    noise: float = 0.1
    coherences: Sequence[float] = (1 / 8, 2 / 8, 4 / 8, 8 / 8)
    name = "cdi"

    def __post_init__(self):
        for field in ("fixation", "stimulus", "delay", "decision"):
            value = getattr(self, field)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                field,
                value,
                "it must be an integer >= 0",
            )
        _positive_int("stimulus", self.stimulus)
        _positive_int("decision", self.decision)
        _require(self.noise >= 0, "noise", self.noise, "it must be >= 0")
        # Hydra hands lists; a tuple keeps the task hashable for jit.
        object.__setattr__(self, "coherences", tuple(float(c) for c in self.coherences))
        _require(
            len(self.coherences) > 0 and all(c > 0 for c in self.coherences),
            "coherences",
            self.coherences,
            "give one or more positive magnitudes (signs are drawn)",
        )

    n_in = property(lambda self: 4)
    n_out = property(lambda self: 1)
    seq_len = property(lambda self: self.fixation + self.stimulus + self.delay + self.decision)

    def __call__(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        coherence_key, sign_key, context_key, noise_key = jax.random.split(key, 4)
        magnitudes = jnp.asarray(self.coherences, jnp.float32)
        coherence = jax.random.choice(coherence_key, magnitudes, (batch_size, 2)) * _random_signs(
            sign_key, (batch_size, 2)
        )
        context = jax.random.randint(context_key, (batch_size,), 0, 2)
        t = jnp.arange(self.seq_len)
        stimulus_on = (t >= self.fixation) & (t < self.fixation + self.stimulus)
        decision_on = t >= self.seq_len - self.decision
        delay_on = ~stimulus_on & ~decision_on & (t >= self.fixation)
        noise = self.noise * jax.random.normal(noise_key, (batch_size, self.seq_len, 2))
        sensory = coherence[:, None, :] + noise
        cue = jnp.broadcast_to(jax.nn.one_hot(context, 2)[:, None, :], sensory.shape)
        inputs = jnp.where(stimulus_on[None, :, None], jnp.concatenate([sensory, cue], axis=-1), 0.0)
        relevant = jnp.take_along_axis(coherence, context[:, None], axis=1)
        targets = jnp.where(decision_on[None, :, None], jnp.sign(relevant)[:, None, :], 0.0)
        mask = jnp.broadcast_to(~delay_on[None, :, None], targets.shape)
        return inputs, targets, mask


TASKS: dict[str, type[Task]] = {"copy": CopyTask, "flipflop": FlipFlopTask, "sine": SineTask, "cdi": CdiTask}


def make_task(name: str, **params) -> Task:
    """Build a task by name; unknown names and parameters raise a ValueError listing the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for task {name!r}; valid: {', '.join(valid)}"
        )
    return cls(**params)
