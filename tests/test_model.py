import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.constructions import CONSTRUCTIONS
from schurjax.model import (
    TanhRNN,
    init_model,
    pad_model,
    stack_models,
    unpad_model,
    unstack_models,
)
from schurjax.weights import RNNWeights, dense_model, export_weights


def _reference_rollout(weights: RNNWeights, inputs: np.ndarray) -> np.ndarray:
    """The recurrence written out step by step in float64."""
    h = np.zeros(weights.width)
    outputs = []
    for x in inputs:
        h = np.tanh(weights.w_xh @ x + weights.w_hh @ h + (0 if weights.b_h is None else weights.b_h))
        outputs.append(weights.w_hy @ h + (0 if weights.b_y is None else weights.b_y))
    return np.stack(outputs)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_rollout_matches_the_spec_equations(construction, key):
    model = init_model(construction, 10, 3, 2, key)
    inputs = jax.random.normal(jax.random.fold_in(key, 1), (15, 3))
    expected = _reference_rollout(export_weights(model), np.asarray(inputs, np.float64))
    # float32 rollout of a contracting-ish tanh map: errors stay at a few float32 ulps.
    np.testing.assert_allclose(np.asarray(model(inputs)), expected, atol=1e-5)


def test_biases_enter_as_in_the_spec(key):
    k1, k2, k3 = jax.random.split(key, 3)
    weights = RNNWeights(
        w_xh=np.asarray(jax.random.normal(k1, (6, 2)), np.float64) * 0.3,
        w_hh=np.asarray(jax.random.normal(k2, (6, 6)), np.float64) * 0.3,
        w_hy=np.ones((1, 6)),
        b_h=np.linspace(-0.5, 0.5, 6),
        b_y=np.array([0.25]),
    )
    inputs = np.asarray(jax.random.normal(k3, (9, 2)))
    model = dense_model(weights)
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(inputs))), _reference_rollout(weights, inputs), atol=1e-5)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_padded_model_computes_the_same_and_keeps_padded_units_at_zero(construction, key):
    model = init_model(construction, 8, 3, 2, key)
    padded = pad_model(model, 14)
    inputs = jax.random.normal(jax.random.fold_in(key, 1), (20, 3))
    np.testing.assert_allclose(np.asarray(padded(inputs)), np.asarray(model(inputs)), atol=1e-6)
    assert not np.asarray(padded.hidden_states(inputs))[:, 8:].any()
    assert padded.width == 8
    back = unpad_model(padded)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool((a == b).all()), model, back)))


def test_stack_and_unstack_round_trip(key):
    models = [init_model("dense_default", 5, 1, 1, k) for k in jax.random.split(key, 3)]
    stacked = stack_models(models)
    assert stacked.w_xh.shape == (3, 5, 1)
    for original, recovered in zip(models, unstack_models(stacked)):
        assert isinstance(recovered, TanhRNN)
        assert bool((original.recurrent.weight == recovered.recurrent.weight).all())


def _plain_recurrence(w, drive, mask):
    """h_t = mask ⊙ tanh(drive_t + W h_{t-1}) as an unrolled loop, differentiated by autodiff."""
    state, states = jnp.zeros_like(drive[:, 0]), []
    for t in range(drive.shape[1]):
        state = jnp.tanh(drive[:, t] + state @ w.T) * mask[None, :]
        states.append(state)
    return jnp.stack(states, axis=1)


def test_recurrence_gradient_matches_autodiff_of_the_plain_loop(key):
    from schurjax.model import tanh_recurrence

    k1, k2, k3 = jax.random.split(key, 3)
    w = 0.4 * jax.random.normal(k1, (7, 7))
    # 11 steps: not a multiple of the loop's unroll factor, so the remainder path is covered
    drive = jax.random.normal(k2, (3, 11, 7))
    mask = jnp.array([1.0] * 5 + [0.0] * 2)
    weights = jax.random.normal(k3, (3, 11, 7))

    def loss(recurrence):
        return lambda w, d: jnp.sum(jnp.sin(recurrence(w, d, mask) * weights))

    np.testing.assert_allclose(
        np.asarray(tanh_recurrence(w, drive, mask)), np.asarray(_plain_recurrence(w, drive, mask)), rtol=1e-6, atol=1e-6
    )
    expected = jax.grad(loss(_plain_recurrence), argnums=(0, 1))(w, drive)
    actual = jax.grad(loss(tanh_recurrence), argnums=(0, 1))(w, drive)
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-6)
    # padded units get no gradient at all
    assert not np.asarray(actual[0])[5:].any() and not np.asarray(actual[0])[:, 5:].any()


def test_a_batch_of_trials_matches_trial_by_trial_rollouts(key):
    model = init_model("dense_orthogonal", 9, 2, 3, key)
    inputs = jax.random.normal(jax.random.fold_in(key, 1), (2, 4, 6, 2))
    batched = np.asarray(model(inputs))
    assert batched.shape == (2, 4, 6, 3)
    one_by_one = np.stack([np.stack([np.asarray(model(trial)) for trial in row]) for row in inputs])
    # same arithmetic, possibly different matmul blocking: agree to float32 round-off
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-6)
