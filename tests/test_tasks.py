"""Tasks: shapes, purity under jit/vmap, each task's trial structure, the registry.

Compiling dominates the run time (threefry is costly for XLA's CPU backend), so the structure tests
share one compiled draw per task configuration, built without XLA's optimisation passes.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schurjax.tasks import (
    TASKS,
    CdiTask,
    CopyTask,
    FlipFlopTask,
    SineTask,
    Task,
    make_task,
)

B = 64


def _numpy(batch):
    return tuple(np.asarray(a) for a in batch)


def _assert_same_trials(actual, expected):
    # Compiled code may round float32 differently (sin of phases up to 63 rad, Gaussian noise).
    for a, e in zip(actual[:2], expected[:2]):
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(actual[2], expected[2])


# These tests check what is computed, not how fast: unoptimised code compiles ~4x faster.
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.partial(jax.jit, static_argnums=(0, 2), compiler_options=_FAST_COMPILE)
def _draw(task: Task, key, batch_size: int):
    return task(key, batch_size)


# --- the contract shared by every task ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("batch_size", [1, 3, B])
def test_shapes_and_dtypes(name, batch_size, key):
    task = make_task(name)
    inputs, targets, mask = jax.eval_shape(lambda k: task(k, batch_size), key)
    assert inputs.shape == (batch_size, task.seq_len, task.n_in) and inputs.dtype == jnp.float32
    assert targets.shape == (batch_size, task.seq_len, task.n_out) and targets.dtype == jnp.float32
    assert mask.shape == targets.shape and mask.dtype == jnp.bool_
    # Strongly typed: a weak float32 would silently follow the dtype of whatever it meets.
    assert not inputs.weak_type and not targets.weak_type


@pytest.mark.parametrize(
    "name, sizes", [("copy", (8, 8, 40)), ("flipflop", (3, 3, 25)), ("sine", (1, 1, 50)), ("cdi", (4, 1, 48))]
)
def test_default_sizes(name, sizes):
    task = make_task(name)
    assert (task.n_in, task.n_out, task.seq_len) == sizes


def test_derived_lengths():
    assert CopyTask(lags=128).seq_len == 136
    assert CdiTask(fixation=0, stimulus=1, delay=0, decision=1).seq_len == 2


@pytest.mark.parametrize("name", sorted(TASKS))
def test_jit_and_vmap_over_keys_match_eager(name, key):
    task = make_task(name)
    keys = jnp.stack([key, *jax.random.split(key, 2)])
    eager = [_numpy(task(k, B)) for k in keys]
    # The trainer's pattern, and the plain call, jitted.
    stacked = _numpy(jax.jit(jax.vmap(lambda k: task(k, B)), compiler_options=_FAST_COMPILE)(keys))
    for i, expected in enumerate(eager):
        _assert_same_trials(tuple(a[i] for a in stacked), expected)
    _assert_same_trials(_numpy(_draw(task, key, B)), eager[0])
    # Fixed key, same trials; another key, other trials.
    for again, first in zip(_numpy(task(key, B)), eager[0]):
        np.testing.assert_array_equal(again, first)
    assert not np.array_equal(eager[0][0], eager[1][0])
    assert not np.array_equal(eager[0][1], eager[1][1])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_tasks_are_registered_frozen_and_hashable(name):
    task = make_task(name)
    assert isinstance(task, Task) and type(task) is TASKS[name] and task.name == name
    assert task == make_task(name) and hash(task) == hash(make_task(name))
    with pytest.raises(AttributeError):
        task.seq_len = 3


def test_task_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Task()


def test_config_lists_become_hashable_tuples():
    task = CdiTask(coherences=[0.25, 0.5])
    assert task.coherences == (0.25, 0.5) and task == CdiTask(coherences=(0.25, 0.5))
    hash(task)


# --- copy ---------------------------------------------------------------------------------------


def test_copy_replays_the_presented_symbols(key):
    task = CopyTask()
    s, lags = task.n_symbols, task.lags
    inputs, targets, mask = _numpy(_draw(task, key, B))
    symbols = inputs[:, :s]
    assert np.isin(symbols, [-1.0, 1.0]).all() and 0.4 < (symbols > 0).mean() < 0.6
    assert not inputs[:, s:].any()
    assert lags > 2 * s  # the replay wraps around the stored sequence more than once
    for lag in range(1, lags + 1):
        np.testing.assert_array_equal(targets[:, s + lag - 1], symbols[:, (lag - 1) % s])
    assert not targets[:, :s].any()
    assert not mask[:, :s].any() and mask[:, s:].all()


# --- flip-flop ----------------------------------------------------------------------------------


def _flipflop_reference(inputs: np.ndarray, grace: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets and mask of one trial ``[T, Nx]``, by a plain loop over steps."""
    steps, channels = inputs.shape
    targets = np.zeros_like(inputs)
    mask = np.zeros(inputs.shape, bool)
    for c in range(channels):
        state, last = 0.0, None
        for t in range(steps):
            if inputs[t, c] != 0:
                state, last = inputs[t, c], t
            targets[t, c] = state
            mask[t, c] = last is not None and t - last >= grace
    return targets, mask


def _check_flipflop(task: FlipFlopTask, batch) -> None:
    """Every invariant of the flip-flop docstring, trial by trial."""
    for x, y, m in zip(*_numpy(batch)):
        assert np.isin(x, [-1.0, 0.0, 1.0]).all()
        assert ((x != 0).sum(axis=1) <= 1).all()  # one channel at a time
        times = np.flatnonzero(x.any(axis=1))
        initial = np.arange(task.n_bits) * task.initial_interval
        np.testing.assert_array_equal(times[: task.n_bits], initial)
        # Each channel exactly once in the early phase, so the early channels are a permutation.
        assert sorted(x[initial].nonzero()[1]) == list(range(task.n_bits))
        gaps = np.diff(times[task.n_bits - 1 :])
        assert ((gaps >= task.min_interval) & (gaps <= task.max_interval)).all()
        # Pulses run to the end of the trial: the next gap would have left it.
        assert times[-1] + task.max_interval >= task.seq_len
        expected_targets, expected_mask = _flipflop_reference(x, task.grace)
        np.testing.assert_array_equal(y, expected_targets)
        np.testing.assert_array_equal(m, expected_mask)


def test_flipflop_default_trials(key):
    task = FlipFlopTask()
    batch = _draw(task, key, B)
    _check_flipflop(task, batch)
    inputs = np.asarray(batch[0])
    pulses = inputs[inputs != 0]
    later = inputs[:, (task.n_bits - 1) * task.initial_interval + 1 :] != 0
    # Fair signs and uniform channels: bounds of ~4 sd for ~370 signs and ~170 later pulses.
    assert 0.4 < (pulses > 0).mean() < 0.6
    np.testing.assert_allclose(later.sum(axis=(0, 1)) / later.sum(), 1 / 3, atol=0.15)
    # Both ends of the gap range occur: it is inclusive.
    gaps = np.concatenate([np.diff(np.flatnonzero(x.any(axis=1))[task.n_bits - 1 :]) for x in inputs])
    assert set(gaps.tolist()) == set(range(task.min_interval, task.max_interval + 1))
    # The early order is random: any channel may come first.
    assert len({int(np.flatnonzero(x[0])[0]) for x in inputs}) == task.n_bits


@settings(max_examples=12, deadline=None)
@example(seed=0, n_bits=3, initial_interval=2, room=1, min_interval=3, spread=7, grace=2)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bits=st.integers(1, 4),
    initial_interval=st.integers(1, 3),
    room=st.integers(1, 20),
    min_interval=st.integers(1, 6),
    spread=st.integers(0, 6),
    grace=st.integers(0, 3),
)
def test_flipflop_invariants(seed, n_bits, initial_interval, room, min_interval, spread, grace):
    # ``room`` steps from the last initial pulse on; 1 leaves no room for later pulses.
    task = FlipFlopTask(
        seq_len=(n_bits - 1) * initial_interval + room,
        n_bits=n_bits,
        initial_interval=initial_interval,
        min_interval=min_interval,
        max_interval=min_interval + spread,
        grace=grace,
    )
    _check_flipflop(task, _draw(task, jax.random.key(seed), 16))


# --- sine ---------------------------------------------------------------------------------------


def _check_sine(task: SineTask, batch) -> np.ndarray:
    """Checks the cue and the target formula; returns x per trial."""
    inputs, targets, mask = _numpy(batch)
    assert (inputs == inputs[:, :1]).all()  # constant cue
    x = inputs[:, 0, 0] - task.cue_offset
    f = task.f_min + (task.f_max - task.f_min) * x
    t = np.arange(1, task.seq_len + 1)
    # |2π f t| <= 63 rad in float32: a few ulps of phase.
    np.testing.assert_allclose(targets[:, :, 0], np.sin(2 * np.pi * f[:, None] * t[None, :]), rtol=0, atol=3e-5)
    assert mask.all()
    return x


def test_sine_continuous_cue(key):
    x = _check_sine(SineTask(), _draw(SineTask(), key, B))
    assert (x >= 0).all() and (x <= 1).all()
    # U[0, 1]: every quarter gets some of 64 trials and the cues are all distinct.
    assert len(np.unique(np.floor(x * 4))) == 4 and len(np.unique(x)) == B


def test_sine_discrete_cues_lie_on_the_grid(key):
    task = SineTask(n_freqs=5, f_min=0.1, f_max=0.3, cue_offset=0.5)
    j = _check_sine(task, _draw(task, key, B)) * 5
    np.testing.assert_allclose(j, np.round(j), atol=1e-5)
    assert set(np.round(j).astype(int).tolist()) == {1, 2, 3, 4, 5}


# --- context-dependent integration --------------------------------------------------------------


def test_cdi_trial_structure(key):
    task = CdiTask(noise=0.0)
    inputs, targets, mask = _numpy(_draw(task, key, B))
    stimulus = slice(3, 23)
    assert not inputs[:, :3].any() and not inputs[:, 23:].any()
    context = inputs[:, stimulus, 2:]
    assert np.isin(context, [0.0, 1.0]).all() and (context.sum(axis=-1) == 1).all()
    assert (context == context[:, :1]).all()
    relevant = context[:, 0].argmax(axis=-1)
    assert set(relevant.tolist()) == {0, 1}
    # Without noise the sensory channels hold the coherences themselves.
    coherence = inputs[:, 3, :2]
    assert (inputs[:, stimulus, :2] == coherence[:, None]).all()
    signed = {sign * c for sign in (-1, 1) for c in (1 / 8, 2 / 8, 4 / 8, 1.0)}
    assert set(coherence.ravel().tolist()) == signed  # all 8 among 128 draws
    decision = np.sign(coherence[np.arange(B), relevant])
    np.testing.assert_array_equal(targets[:, 28:, 0], np.repeat(decision[:, None], 20, axis=1))
    assert not targets[:, :28].any()
    assert not mask[:, 23:28].any() and mask[:, :23].all() and mask[:, 28:].all()


def test_cdi_noise_averages_out_over_the_stimulus(key):
    noisy = CdiTask(noise=0.1)
    inputs, targets, mask = _numpy(_draw(noisy, key, B))
    # The noise level changes neither the coherences, contexts nor targets drawn from a key.
    clean, clean_targets, clean_mask = _numpy(_draw(CdiTask(noise=0.0), key, B))
    np.testing.assert_array_equal(inputs[..., 2:], clean[..., 2:])
    np.testing.assert_array_equal(targets, clean_targets)
    np.testing.assert_array_equal(mask, clean_mask)
    error = (inputs - clean)[:, 3:23, :2]
    assert not (inputs - clean)[:, 23:].any()
    # Each channel's stimulus mean is c_k + N(0, σ²/20), sd σ/√20 ≈ 0.022: a 5-sd bound fails by
    # chance with probability ~1e-4 over these 128 means, but noise frozen over the stimulus
    # (sd σ per mean) or biased noise would break it in many trials.
    np.testing.assert_array_less(np.abs(error.mean(axis=1)), 5 * 0.1 / np.sqrt(20))
    # Fresh noise per step and channel: sd σ, uncorrelated across steps and channels (2560 samples).
    assert abs(error.std() / 0.1 - 1) < 0.1
    assert abs(np.corrcoef(error[:, 1:].ravel(), error[:, :-1].ravel())[0, 1]) < 0.1
    assert abs(np.corrcoef(error[..., 0].ravel(), error[..., 1].ravel())[0, 1]) < 0.1


# --- registry and parameter checks --------------------------------------------------------------


def test_unknown_task_lists_the_names():
    with pytest.raises(ValueError, match="unknown task 'sinus'; choose one of: cdi, copy, flipflop, sine"):
        make_task("sinus")


@pytest.mark.parametrize(
    "name, valid",
    [
        ("copy", "n_symbols, dim, lags"),
        ("flipflop", "seq_len, n_bits, initial_interval, min_interval, max_interval, grace"),
        ("sine", "seq_len, f_min, f_max, cue_offset, n_freqs"),
        ("cdi", "fixation, stimulus, delay, decision, noise, coherences"),
    ],
)
def test_unknown_parameter_lists_the_valid_ones(name, valid):
    message = f"unknown parameter(s) frequency, name for task '{name}'; valid: {valid}"
    with pytest.raises(ValueError, match=re.escape(message)):
        make_task(name, name="x", frequency=2)


def test_parameters_pass_through():
    task = make_task("flipflop", seq_len=40, n_bits=2, grace=0)
    assert task == FlipFlopTask(seq_len=40, n_bits=2, grace=0) and task.n_in == 2


@pytest.mark.parametrize(
    "name, params, field, value",
    [
        ("copy", {"lags": 0}, "lags", 0),
        ("copy", {"n_symbols": -1}, "n_symbols", -1),
        ("copy", {"dim": 0}, "dim", 0),
        ("flipflop", {"seq_len": 0}, "seq_len", 0),
        ("flipflop", {"n_bits": 0}, "n_bits", 0),
        ("flipflop", {"min_interval": 0}, "min_interval", 0),
        ("flipflop", {"min_interval": 5, "max_interval": 3}, "min_interval", 5),
        ("flipflop", {"grace": -1}, "grace", -1),
        ("flipflop", {"seq_len": 6, "initial_interval": 3}, "initial_interval", 3),
        ("sine", {"seq_len": 0}, "seq_len", 0),
        ("sine", {"f_min": 0.3, "f_max": 0.2}, "f_min", 0.3),
        ("sine", {"f_min": -0.1}, "f_min", -0.1),
        ("sine", {"f_max": float("inf")}, "f_max", float("inf")),
        ("sine", {"n_freqs": 0}, "n_freqs", 0),
        ("cdi", {"noise": -0.1}, "noise", -0.1),
        ("cdi", {"noise": float("nan")}, "noise", float("nan")),
        ("cdi", {"stimulus": 0}, "stimulus", 0),
        ("cdi", {"delay": -1}, "delay", -1),
        ("cdi", {"coherences": []}, "coherences", []),
        ("cdi", {"coherences": [0.5, -0.25]}, "coherences", [0.5, -0.25]),
    ],
)
def test_bad_values_name_the_parameter(name, params, field, value):
    with pytest.raises(ValueError, match=re.escape(f"task parameter {field}={value!r} is invalid")):
        make_task(name, **params)


@pytest.mark.parametrize(
    "task",
    [
        FlipFlopTask(seq_len=5, initial_interval=2, grace=0, min_interval=4, max_interval=4),
        FlipFlopTask(n_bits=1, min_interval=1, max_interval=1),
        CdiTask(fixation=0, delay=0, noise=0.0, coherences=(1.0,)),
        SineTask(f_min=0.0, f_max=0.0, n_freqs=1),
        CopyTask(n_symbols=1, dim=1, lags=1),
    ],
)
def test_edge_values_are_accepted(task, key):
    inputs, targets, mask = jax.eval_shape(lambda k: task(k, 2), key)
    assert inputs.shape == (2, task.seq_len, task.n_in) and mask.shape == targets.shape


# --- what the analysis asks of a task -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, headline",
    [("copy", "replay_accuracy"), ("flipflop", "delta_fvu"), ("sine", "delta_fvu"), ("cdi", "delta_fvu")],
)
def test_headline_metric_and_solved_criterion(name, headline):
    task = make_task(name)
    assert task.headline_metric == headline
    assert task.has_solved_criterion == (name == "copy")


def test_a_task_without_a_solved_criterion_says_how_to_add_one(key):
    task = SineTask()
    with pytest.raises(NotImplementedError, match=r"'sine' has no solved criterion; define solved\(\) in SineTask"):
        task.solved(*task(key, 2))


_TARGETS = np.array([[[1.0, -1.0], [-1.0, 1.0]]], np.float32)
_SCORED = np.array([[[True, True], [True, False]]])


@pytest.mark.parametrize(
    "outputs, mask, expected",
    [
        (0.3 * _TARGETS, _SCORED, True),
        (0.3 * _TARGETS * np.array([[[1, 1], [-1, 1]]], np.float32), _SCORED, False),  # one scored sign wrong
        (0.3 * _TARGETS * np.array([[[1, 1], [1, -1]]], np.float32), _SCORED, True),  # only the unscored one
        (0.3 * _TARGETS * np.array([[[1, 0], [1, 1]]], np.float32), _SCORED, False),  # sgn 0 matches no ±1
        (0.3 * _TARGETS, np.zeros_like(_SCORED), False),  # nothing scored: agreement 0, not solved
    ],
)
def test_copy_is_solved_exactly_when_every_scored_sign_agrees(outputs, mask, expected):
    from schurjax.metrics import sign_agreement

    outputs, targets, mask = jnp.asarray(outputs), jnp.asarray(_TARGETS), jnp.asarray(mask)
    solved = CopyTask().solved(outputs, targets, mask)
    assert solved.shape == () and solved.dtype == jnp.bool_
    assert bool(solved) is expected
    assert bool(solved) == bool(sign_agreement(outputs, targets, mask) == 1.0)


def test_copy_solved_agrees_with_the_evaluators_sign_agreement(key):
    """Per network, solved() on its outputs is the evaluator's "sign agreement == 1" check."""
    from schurjax.evaluate import evaluate_models
    from schurjax.model import stack_models
    from schurjax.weights import RNNWeights, dense_model

    # One unit holds the presented symbol (w_hh = 1), or flips it every step (w_hh = -1); the readout
    # keeps its sign or inverts it: only the first network replays both lags.
    networks = [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0)]
    one_unit = lambda w_hh, w_hy: RNNWeights(np.ones((1, 1)), np.full((1, 1), w_hh), np.full((1, 1), w_hy))  # noqa: E731
    models = stack_models([dense_model(one_unit(*network)) for network in networks])
    task = CopyTask(n_symbols=1, dim=1, lags=2)
    data = task(key, 32)
    evaluator = evaluate_models(models, data).sign_agreement == 1.0
    solved = jax.vmap(lambda model: task.solved(model(data[0]), *data[1:]))(models)
    np.testing.assert_array_equal(np.asarray(solved), evaluator)
    np.testing.assert_array_equal(evaluator, [True, False, False])


def test_rest_inputs_name_the_constant_inputs_of_each_task():
    for task in (CopyTask(), FlipFlopTask()):
        labels, inputs = task.rest_inputs(3)
        assert labels == ["zero"]
        np.testing.assert_array_equal(inputs, np.zeros((1, task.n_in)))
    labels, inputs = SineTask().rest_inputs(3)
    assert labels == ["cue=0", "cue=0.5", "cue=1"]
    np.testing.assert_array_equal(inputs, [[0.25], [0.75], [1.25]])  # x + cue_offset, exact in binary
    labels, inputs = SineTask(cue_offset=0.5).rest_inputs(1)
    assert labels == ["cue=0.5"]
    np.testing.assert_array_equal(inputs, [[1.0]])
    assert SineTask().rest_inputs(5)[0] == ["cue=0", "cue=0.25", "cue=0.5", "cue=0.75", "cue=1"]
    labels, inputs = CdiTask().rest_inputs(3)
    assert labels == ["zero", "context0", "context1"]
    np.testing.assert_array_equal(inputs, [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
