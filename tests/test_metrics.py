import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.metrics import fvu, masked_mse, sign_agreement, target_variation


@pytest.fixture
def data(key):
    k1, k2, k3 = jax.random.split(key, 3)
    targets = jax.random.normal(k1, (16, 10, 3))
    outputs = targets + 0.3 * jax.random.normal(k2, (16, 10, 3))
    mask = jax.random.bernoulli(k3, 0.7, (16, 10, 3))
    return outputs, targets, mask


def test_fvu_matches_numpy_definition(data):
    outputs, targets, mask = (np.asarray(x) for x in data)
    y = np.where(mask, targets, np.nan)
    mean = np.nanmean(y, axis=(0, 1))
    expected = np.nansum((np.where(mask, outputs, np.nan) - y) ** 2) / np.nansum((y - mean) ** 2)
    np.testing.assert_allclose(float(fvu(*data)), expected, rtol=1e-5)


def test_fvu_of_perfect_and_of_mean_predictions(data):
    _, targets, mask = data
    assert float(fvu(targets, targets, mask)) == 0.0
    counts = mask.sum(axis=(0, 1)).astype(jnp.float32)
    mean = jnp.where(mask, targets, 0.0).sum(axis=(0, 1)) / counts
    predicting_mean = jnp.broadcast_to(mean, targets.shape)
    np.testing.assert_allclose(float(fvu(predicting_mean, targets, mask)), 1.0, rtol=1e-5)


def test_unscored_entries_never_count(data):
    outputs, targets, mask = data
    garbage = jnp.where(mask, outputs, 1e6)
    assert float(masked_mse(garbage, targets, mask)) == float(masked_mse(outputs, targets, mask))
    assert float(fvu(garbage, targets, mask)) == float(fvu(outputs, targets, mask))
    assert float(target_variation(jnp.where(mask, targets, -1e6), mask)) == pytest.approx(
        float(target_variation(targets, mask)), rel=1e-6
    )


def test_sign_agreement_counts_scored_matches():
    targets = jnp.array([[[1.0], [-1.0], [1.0], [1.0]]])
    outputs = jnp.array([[[0.2], [0.5], [-3.0], [9.0]]])
    mask = jnp.array([[[True], [True], [True], [False]]])
    # scored: match, mismatch, mismatch -> 1/3
    assert float(sign_agreement(outputs, targets, mask)) == pytest.approx(1 / 3)
