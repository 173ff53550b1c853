import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.constructions import CONSTRUCTIONS, check_construction, init_recurrent


def _matrix(recurrent) -> np.ndarray:
    return np.asarray(recurrent.matrix(), np.float64)


def _commutator(w: np.ndarray) -> float:
    """||W Wᵀ - Wᵀ W||_F / ||W||_F², zero exactly for normal matrices."""
    return float(np.linalg.norm(w @ w.T - w.T @ w) / np.linalg.norm(w) ** 2)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("width", [2, 8, 56])
def test_shapes_and_dtype(construction, width, key):
    w = init_recurrent(construction, width, key).matrix()
    assert w.shape == (width, width) and w.dtype == jnp.float32
    assert np.isfinite(np.asarray(w)).all()


def test_dense_default_is_pytorch_uniform(key):
    width = 64
    w = _matrix(init_recurrent("dense_default", width, key))
    bound = width**-0.5
    assert np.abs(w).max() <= bound
    # Unif[-m, m] has variance m²/3; 4096 samples pin it to a few percent.
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.1


def test_dense_orthogonal_is_orthogonal(key):
    w = _matrix(init_recurrent("dense_orthogonal", 64, key))
    # float32 QR: entries of WᵀW - I are a few ulps of 1.
    np.testing.assert_allclose(w.T @ w, np.eye(64), atol=1e-5)


def test_dense_normal_is_normal_with_the_spec_block_variance(key):
    width = 512
    w = _matrix(init_recurrent("dense_normal", width, key))
    assert _commutator(w) < 1e-6  # float32 round-off in Q D Qᵀ
    eig = np.linalg.eigvals(w)
    # Eigenvalues a ± ib with a, b ~ N(0, 1/6): both parts have variance 1/6 (256 pairs → ±~9%).
    assert abs(eig.real.var() / (1 / 6) - 1) < 0.25
    assert abs((eig.imag**2).mean() / (1 / 6) - 1) < 0.25


def test_cayley_is_normal_with_spectrum_of_an_independent_uniform_matrix(key):
    width = 24
    recurrent = init_recurrent("cayley", width, key)
    w = _matrix(recurrent)
    assert _commutator(w) < 1e-6
    _, d_key = jax.random.split(key)
    m = width**-0.5
    w_tilde = np.asarray(jax.random.uniform(d_key, (width, width), minval=-m, maxval=m), np.float64)
    expected = np.sort_complex(np.linalg.eigvals(w_tilde))
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(w)), expected, atol=1e-5)


def test_cayley_parameters_are_the_trainable_leaves(key):
    import equinox as eqx

    recurrent = init_recurrent("cayley", 10, key)
    trainable = eqx.filter(recurrent, eqx.is_inexact_array)
    assert trainable.block_of_unit is None and trainable.rotation_pattern is None
    assert trainable.u is not None and trainable.block_real is not None


def test_dense_normal_rejects_odd_width(key):
    with pytest.raises(ValueError, match="even width"):
        init_recurrent("dense_normal", 63, key)


def test_unknown_construction_lists_the_valid_ones(key):
    with pytest.raises(ValueError, match="dense_default, dense_orthogonal, dense_normal, cayley"):
        init_recurrent("orthogonal", 8, key)


@pytest.mark.parametrize("width", [0, -3, 2.5, True])
def test_bad_width(width):
    with pytest.raises(ValueError, match="width must be a positive integer"):
        check_construction("dense_default", width)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_padding_keeps_the_matrix_and_zeros_the_rest(construction, key):
    recurrent = init_recurrent(construction, 6, key)
    padded = recurrent.pad(10)
    w, p = _matrix(recurrent), _matrix(padded)
    np.testing.assert_allclose(p[:6, :6], w, atol=1e-6)
    assert not p[6:].any() and not p[:, 6:].any()
    back = padded.truncate(6)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool((a == b).all()), recurrent, back)))
