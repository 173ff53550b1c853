import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from schurjax.schur import SchurError, check_schur, ordered_schur


def _assert_valid(w, coords):
    """SPEC §5 checks, asserted independently of check_schur."""
    w = np.asarray(w, np.float64)
    scale = max(np.linalg.norm(w), 1e-300)
    assert np.linalg.norm(w - coords.q @ coords.t @ coords.q.T) <= 1e-10 * scale
    assert np.linalg.norm(coords.q.T @ coords.q - np.eye(len(w)), 2) <= 1e-12
    assert np.all(np.diff(coords.moduli) <= 1e-12 * max(coords.rho, 1e-300))
    assert coords.block_sizes.sum() == len(w)
    # Eigenvalues of the blocks are those of W. Perturbation of a simple eigenvalue is
    # O(eps·||W||·cond); the random test matrices are far from defective.
    block_eigs = np.concatenate(
        [[e] if z == 1 else [e, e.conjugate()] for e, z in zip(coords.eigenvalues, coords.block_sizes)]
    )
    return block_eigs


def _same_multiset(a, b, tol):
    a, b = list(a), list(b)
    for x in a:
        j = int(np.argmin([abs(x - y) for y in b]))
        assert abs(x - b[j]) <= tol
        b.pop(j)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 80), seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_random_matrices(n, seed, scale):
    w = np.random.default_rng(seed).normal(size=(n, n)) * scale / np.sqrt(n)
    coords = ordered_schur(w)
    block_eigs = _assert_valid(w, coords)
    _same_multiset(block_eigs, np.linalg.eigvals(w), 1e-8 * scale)


@pytest.mark.parametrize(
    "w",
    [
        ortho_group.rvs(9, random_state=0),  # all moduli 1
        np.diag([2.0, -2.0, 1.0, -1.0, 0.5]),
        np.array([[1.0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]),  # Jordan block
        np.zeros((4, 4)),
        np.triu(np.random.default_rng(1).normal(size=(6, 6)), 1),  # nilpotent
        np.diag([1.0, 1e-14, 1e-300, 0.0]),  # near-zero eigenvalues
        np.triu(np.random.default_rng(2).normal(size=(7, 7))),  # already triangular
        np.array([[3.0]]),
        np.array([[0.0, -1.0], [1.0, 0.0]]),  # one 2x2 rotation block
        np.array([[1.0, 2.0], [0.0, 1.0]]),  # defective 2x2
        (lambda a: a + a.T)(np.random.default_rng(3).normal(size=(10, 10))),  # symmetric
    ],
    ids=["orthogonal", "plus-minus", "jordan", "zero", "nilpotent", "near-zero", "triangular", "1x1", "rotation", "defective2", "symmetric"],
)
def test_adversarial_matrices_pass_the_checks(w):
    coords = ordered_schur(w)
    _assert_valid(w, coords)


def test_rotation_beside_real_eigenvalue_of_equal_modulus_puts_the_real_one_first():
    c, s = np.cos(2.0), np.sin(2.0)
    w = np.zeros((3, 3))
    w[:2, :2] = [[c, -s], [s, c]]
    w[2, 2] = 1.0
    q = ortho_group.rvs(3, random_state=4)
    coords = ordered_schur(q @ w @ q.T)
    assert list(coords.block_sizes) == [1, 2]
    assert coords.eigenvalues[0].real == pytest.approx(1.0)


def test_ties_are_ordered_deterministically():
    coords = ordered_schur(np.diag([-1.0, 0.5, 1.0, -0.5]))
    np.testing.assert_allclose(coords.eigenvalues.real, [1.0, -1.0, 0.5, -0.5])
    w = np.random.default_rng(5).normal(size=(30, 30))
    first, second = ordered_schur(w), ordered_schur(w)
    assert np.array_equal(first.t, second.t) and np.array_equal(first.q, second.q)


def test_two_by_two_blocks_are_standardised():
    coords = ordered_schur(np.random.default_rng(6).normal(size=(40, 40)))
    assert (coords.block_sizes == 2).any()
    for start, size in zip(coords.block_starts, coords.block_sizes):
        if size == 2:
            block = coords.t[start : start + 2, start : start + 2]
            assert block[0, 0] == block[1, 1] and block[0, 1] * block[1, 0] < 0


@pytest.mark.parametrize(
    "w, message",
    [
        (np.ones((3, 4)), "square"),
        (np.ones(3), "square"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "1 NaN/inf"),
        (np.array([[1j]]), "real"),
    ],
)
def test_bad_input_is_refused_clearly(w, message):
    with pytest.raises(ValueError, match=message):
        ordered_schur(w)


def test_check_schur_catches_a_wrong_decomposition():
    w = np.random.default_rng(7).normal(size=(5, 5))
    coords = ordered_schur(w)
    with pytest.raises(SchurError, match="Q T Q"):
        check_schur(w + 1e-6, coords)
