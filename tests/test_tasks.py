import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schurjax.tasks import TASKS, CdiTask, CopyTask, FlipFlopTask, SineTask, make_task


@pytest.mark.parametrize("name", sorted(TASKS))
def test_shapes_dtypes_and_purity(name, key):
    task = make_task(name)
    inputs, targets, mask = task(key, 5)
    assert inputs.shape == (5, task.seq_len, task.n_in) and inputs.dtype == jnp.float32
    assert targets.shape == (5, task.seq_len, task.n_out) and targets.dtype == jnp.float32
    assert mask.shape == targets.shape and mask.dtype == jnp.bool_
    jitted = jax.jit(task, static_argnums=1)(key, 5)
    for eager, compiled in zip((inputs, targets, mask), jitted):
        np.testing.assert_allclose(np.asarray(compiled), np.asarray(eager), atol=1e-6)
    # vmapped over keys, each key reproduces its own eager batch
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k: task(k, 5))(keys)
    np.testing.assert_allclose(np.asarray(batched[1][1]), np.asarray(task(keys[1], 5)[1]), atol=1e-6)
    # a different key gives different trials
    assert not np.array_equal(np.asarray(task(jax.random.fold_in(key, 1), 5)[0]), np.asarray(inputs))


def test_copy_replays_the_presented_symbols(key):
    task = CopyTask(n_symbols=8, dim=8, lags=20)
    inputs, targets, mask = (np.asarray(x) for x in task(key, 16))
    symbols = inputs[:, :8]
    assert set(np.unique(symbols)) == {-1.0, 1.0}
    assert not inputs[:, 8:].any()
    for lag in range(1, 21):
        np.testing.assert_array_equal(targets[:, 8 + lag - 1], symbols[:, (lag - 1) % 8])
    assert not mask[:, :8].any() and mask[:, 8:].all()


def _flipflop_reference(inputs: np.ndarray, grace: int):
    """Straightforward per-step loops over one trial."""
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


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    low=st.integers(1, 6),
    spread=st.integers(0, 6),
    grace=st.integers(0, 3),
    bits=st.integers(1, 4),
)
def test_flipflop_invariants(seed, low, spread, grace, bits):
    task = FlipFlopTask(seq_len=30, n_bits=bits, min_interval=low, max_interval=low + spread, grace=grace)
    inputs, targets, mask = (np.asarray(x) for x in task(jax.random.key(seed), 8))
    for trial in range(8):
        x = inputs[trial]
        assert ((x != 0).sum(axis=1) <= 1).all()  # one channel at a time
        assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}
        early = x[: (bits - 1) * task.initial_interval + 1]
        assert ((early != 0).sum(axis=0) == 1).all()  # each channel once, early
        times = np.flatnonzero(x.any(axis=1))
        later_gaps = np.diff(times[bits - 1 :])
        assert ((later_gaps >= low) & (later_gaps <= low + spread)).all()
        expected_targets, expected_mask = _flipflop_reference(x, grace)
        np.testing.assert_array_equal(targets[trial], expected_targets)
        np.testing.assert_array_equal(mask[trial], expected_mask)


def test_sine_target_and_cue(key):
    task = SineTask()
    inputs, targets, mask = (np.asarray(x) for x in task(key, 32))
    cue = inputs[:, 0, 0] - 0.25
    assert (inputs == inputs[:, :1]).all() and ((cue >= 0) & (cue <= 1)).all()
    f = 0.04 + 0.16 * cue
    t = np.arange(1, 51)
    np.testing.assert_allclose(targets[:, :, 0], np.sin(2 * np.pi * f[:, None] * t[None, :]), atol=2e-5)
    assert mask.all()


def test_sine_discrete_cues_lie_on_the_grid(key):
    inputs, _, _ = SineTask(n_freqs=5)(key, 64)
    grid = np.asarray(inputs[:, 0, 0]) - 0.25
    np.testing.assert_allclose(np.sort(np.unique(np.round(grid * 5, 4))), [1, 2, 3, 4, 5])


def test_cdi_structure(key):
    task = CdiTask(noise=0.1)
    inputs, targets, mask = (np.asarray(x) for x in task(key, 256))
    stimulus = slice(3, 23)
    assert not inputs[:, :3].any() and not inputs[:, 23:].any()
    context = inputs[:, stimulus, 2:]
    assert (context.sum(axis=-1) == 1).all() and (context == context[:, :1]).all()
    relevant = context[:, 0].argmax(axis=-1)
    means = inputs[:, stimulus, :2].mean(axis=1)
    coherence = means[np.arange(256), relevant]
    # Each mean is c + noise/√20 ≈ c ± 0.022; the nearest allowed coherence is therefore c itself.
    allowed = np.array([-1, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1.0])
    nearest = allowed[np.abs(coherence[:, None] - allowed[None]).argmin(axis=1)]
    assert np.abs(coherence - nearest).max() < 6 * 0.1 / np.sqrt(20)
    np.testing.assert_array_equal(targets[:, 28:, 0], np.repeat(np.sign(nearest)[:, None], 20, axis=1))
    assert not targets[:, :28].any()
    assert not mask[:, 23:28].any() and mask[:, :23].all() and mask[:, 28:].all()


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown task 'sinus'; choose one of: cdi, copy, flipflop, sine"):
        make_task("sinus")
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) freq .*valid: seq_len, f_min"):
        make_task("sine", freq=3)


@pytest.mark.parametrize(
    "name, params, field",
    [
        ("copy", {"lags": 0}, "lags"),
        ("flipflop", {"min_interval": 5, "max_interval": 3}, "min_interval"),
        ("flipflop", {"grace": -1}, "grace"),
        ("flipflop", {"seq_len": 4, "initial_interval": 3}, "initial_interval"),
        ("sine", {"f_min": 0.3, "f_max": 0.2}, "f_min"),
        ("sine", {"n_freqs": 0}, "n_freqs"),
        ("cdi", {"noise": -0.1}, "noise"),
        ("cdi", {"coherences": []}, "coherences"),
    ],
)
def test_bad_parameters_name_the_field(name, params, field):
    with pytest.raises(ValueError, match=f"task parameter {field}="):
        make_task(name, **params)
