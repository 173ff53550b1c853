"""Ordered real Schur coordinates: the checks, the ordering and tie rule, edge cases."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import block_diag
from scipy.optimize import linear_sum_assignment
from scipy.stats import ortho_group

from schurjax.schur import SchurError, _standardised, check_schur, ordered_schur

TINY = np.finfo(np.float64).tiny


def _assert_valid(w, coords):
    """The Schur-coordinate conditions and the SchurCoords invariants, restated independently of check_schur."""
    w = np.asarray(w, np.float64)
    n = len(w)
    q, t, starts, sizes = coords.q, coords.t, coords.block_starts, coords.block_sizes
    assert q.shape == t.shape == (n, n) and q.dtype == t.dtype == np.float64
    # Norms of W/max|W| so that the 1e±300 cases neither overflow nor underflow.
    s = max(np.abs(w).max(), TINY)
    assert np.linalg.norm(w / s - q @ (t / s) @ q.T) <= 1e-10 * max(np.linalg.norm(w / s), TINY)
    assert np.linalg.norm(q.T @ q - np.eye(n)) <= 1e-12
    assert set(sizes.tolist()) <= {1, 2} and sizes.sum() == n
    np.testing.assert_array_equal(starts, np.cumsum(sizes) - sizes)
    pairs = starts[sizes == 2]
    below = np.tril(t, -1)
    below[pairs + 1, pairs] = 0.0
    assert not below.any(), "T is not quasi-upper-triangular"
    for i in pairs:
        (a, b), (c, d) = t[i : i + 2, i : i + 2]
        assert a == d and np.sign(b) == -np.sign(c) != 0, "2x2 block not standardised"
    np.testing.assert_array_equal(coords.moduli, np.abs(coords.eigenvalues))
    assert coords.rho == coords.moduli[0] and coords.n == n and coords.n_blocks == len(sizes)
    assert np.all(np.diff(coords.moduli) <= 1e-12 * max(coords.rho, TINY))
    assert np.all((coords.eigenvalues.imag > 0) == (sizes == 2))


def _spectrum(coords):
    """All n eigenvalues of T's blocks (a 2×2 block contributes its conjugate pair)."""
    pairs = coords.eigenvalues[coords.block_sizes == 2]
    return np.concatenate([coords.eigenvalues, pairs.conj()])


def _assert_same_multiset(a, b, tol):
    """a and b are equal as multisets up to tol, under the best one-to-one matching."""
    assert len(a) == len(b)
    distance = np.abs(np.subtract.outer(a, b))
    rows, cols = linear_sum_assignment(distance)
    assert distance[rows, cols].max() <= tol


def _rotation(theta, r=1.0):
    return r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 80), seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_random_gaussian_matrices(n, seed, scale):
    w = np.random.default_rng(seed).normal(size=(n, n)) * scale / np.sqrt(n)
    coords = ordered_schur(w)
    _assert_valid(w, coords)
    # Both sides are backward stable: eigenvalue errors are ≲ κ(λ)·n·eps·||W||, and eigenvalue
    # condition numbers κ of Gaussian matrices this small stay far below the 1e6 this allows.
    _assert_same_multiset(_spectrum(coords), np.linalg.eigvals(w), 1e-8 * np.linalg.norm(w))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_orthogonal_matrices_have_all_moduli_tied_and_decreasing_real_parts(n, seed):
    w = ortho_group.rvs(n, random_state=seed) if n > 1 else np.array([[-1.0]])
    coords = ordered_schur(w)
    _assert_valid(w, coords)
    np.testing.assert_allclose(coords.moduli, 1.0, atol=1e-13)
    # Every block is tied with every other, so the tie rule orders the whole spectrum by real
    # part; swaps after a block is chosen move the others by round-off only (1e-12 slack).
    assert np.all(np.diff(coords.eigenvalues.real) <= 1e-12)


# Eigenvalue angles: 0 and π give the 1×1 blocks +r and −r, the others a rotation block.
ANGLES = (0.0, np.pi, np.pi / 3, np.pi / 2, 2 * np.pi / 3)
RADII = (1.0, 0.5, 0.25)


@settings(max_examples=50, deadline=None)
@given(
    blocks=st.lists(st.tuples(st.sampled_from(RADII), st.sampled_from(ANGLES)), min_size=1, max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_repeated_moduli_follow_the_documented_tie_rule(blocks, seed):
    """Normal matrices with many tied moduli: the order must be (−|λ|, −Re λ)."""
    diagonal = [
        np.array([[r * np.cos(theta)]]) if theta in (0.0, np.pi) else _rotation(theta, r) for r, theta in blocks
    ]
    d = block_diag(*diagonal)
    q = ortho_group.rvs(len(d), random_state=seed) if len(d) > 1 else np.eye(1)
    w = q @ d @ q.T
    coords = ordered_schur(w)
    _assert_valid(w, coords)
    expected = [r * np.exp(1j * theta) for r, theta in blocks]
    expected += [z.conjugate() for z in expected if z.imag > 1e-3]
    # A normal matrix's eigenvalues move by at most the backward error (Bauer–Fike), ~n·eps.
    _assert_same_multiset(_spectrum(coords), expected, 1e-12)
    # Sort keys (−|λ|, −Re λ) nondecreasing; the moduli groups are 0.25 apart, so rounding to
    # 6 digits identifies the tied blocks. (A repeated ±r may come out as one 2×2 block of
    # eigenvalues ±r + O(eps)·i, which is why keys, not a fixed list, are compared.)
    moduli, real = np.round(coords.moduli, 6), coords.eigenvalues.real
    assert np.all(np.diff(moduli) <= 0)
    assert np.all(np.diff(real)[np.diff(moduli) == 0] <= 1e-12)


@pytest.mark.parametrize(
    "w",
    [
        pytest.param(ortho_group.rvs(9, random_state=0), id="orthogonal"),
        pytest.param(np.diag([2.0, -2.0, 1.0, -1.0, 0.5]), id="plus-minus"),
        pytest.param(block_diag(_rotation(2.0), 1.0, -1.0), id="rotation-beside-equal-reals"),
        pytest.param(np.eye(4) + np.eye(4, k=1), id="jordan"),
        pytest.param(np.zeros((4, 4)), id="zero"),
        pytest.param(np.triu(np.random.default_rng(1).normal(size=(6, 6)), 1), id="nilpotent"),
        pytest.param(np.diag([1.0, 1e-14, 1e-300, 0.0]), id="near-zero-eigenvalues"),
        pytest.param(np.triu(np.random.default_rng(2).normal(size=(7, 7))), id="triangular"),
        pytest.param(np.array([[3.0]]), id="n1"),
        pytest.param(np.array([[0.0, -1.0], [1.0, 0.0]]), id="n2-rotation"),
        pytest.param(np.array([[1.0, 2.0], [0.0, 1.0]]), id="n2-defective"),
        pytest.param(np.array([[0.0, 1.0], [1.0, 0.0]]), id="n2-swap"),
        pytest.param((lambda a: a + a.T)(np.random.default_rng(3).normal(size=(10, 10))), id="symmetric"),
        pytest.param(np.random.default_rng(4).normal(size=(8, 8)) * 1e-300, id="scale-1e-300"),
        pytest.param(np.random.default_rng(4).normal(size=(8, 8)) * 1e300, id="scale-1e+300"),
        pytest.param(np.roll(np.eye(7), 1, axis=0), id="cyclic-permutation"),
    ],
)
def test_adversarial_matrices_pass_the_checks(w):
    coords = ordered_schur(w)
    _assert_valid(w, coords)
    # These spectra are exact in float64 or perfectly conditioned (normal/triangular matrices),
    # except the defective ones, whose exact triangular form LAPACK leaves untouched.
    scale = max(np.abs(w).max(), TINY)
    _assert_same_multiset(_spectrum(coords) / scale, np.linalg.eigvals(w / scale), 1e-12 * len(w))


@pytest.mark.parametrize("n", [3, 6])
def test_rotated_defective_matrices_pass_the_checks(n):
    """Q J Qᵀ for a Jordan block J = I + shift: computed eigenvalues spread on a circle of radius
    ~(eps·||J||)^(1/n) around 1 (1e-5 for n = 3, 3e-3 for n = 6), yet the checks hold."""
    q = ortho_group.rvs(n, random_state=n)
    w = q @ (np.eye(n) + np.eye(n, k=1)) @ q.T
    coords = ordered_schur(w)
    _assert_valid(w, coords)
    assert np.abs(_spectrum(coords) - 1.0).max() <= 10 * (np.finfo(float).eps * np.linalg.norm(w)) ** (1 / n)


def test_exact_cases():
    zero = ordered_schur(np.zeros((3, 3)))
    assert zero.rho == 0.0 and not zero.t.any()
    single = ordered_schur(np.array([[-3.0]], np.float32))
    assert single.t.tolist() == [[-3.0]] and abs(single.q[0, 0]) == 1.0 and single.rho == 3.0
    nilpotent = ordered_schur(np.triu(np.ones((5, 5)), 1))
    assert nilpotent.rho == 0.0 and not np.diag(nilpotent.t).any()
    near_zero = ordered_schur(np.diag([1e-300, 0.0, 1.0, 1e-14]))
    np.testing.assert_array_equal(near_zero.moduli, [1.0, 1e-14, 1e-300, 0.0])


def test_ties_are_ordered_as_documented():
    # +r before −r, whatever the input order.
    np.testing.assert_array_equal(ordered_schur(np.diag([-1.0, 0.5, 1.0, -0.5])).eigenvalues, [1, -1, 0.5, -0.5])
    q = ortho_group.rvs(3, random_state=4)
    # A real eigenvalue r before a complex pair of modulus r with smaller real part ...
    coords = ordered_schur(q @ block_diag(_rotation(2.0), 1.0) @ q.T)
    assert coords.block_sizes.tolist() == [1, 2] and coords.eigenvalues[0] == pytest.approx(1.0, abs=1e-14)
    # ... and after one with a larger real part.
    coords = ordered_schur(q @ block_diag(_rotation(0.5), -1.0) @ q.T)
    assert coords.block_sizes.tolist() == [2, 1]
    assert coords.eigenvalues[0] == pytest.approx(np.exp(0.5j), abs=1e-14)
    # All three of modulus 1: 1, then e^{2i} (real part −0.42), then −1.
    coords = ordered_schur(block_diag(-1.0, _rotation(2.0), 1.0))
    np.testing.assert_allclose(coords.eigenvalues, [1.0, np.exp(2j), -1.0], atol=1e-15)


def test_two_calls_are_bitwise_identical():
    for w in [np.random.default_rng(5).normal(size=(50, 50)), ortho_group.rvs(30, random_state=5)]:
        first, second = ordered_schur(w), ordered_schur(w)
        assert np.array_equal(first.t, second.t) and np.array_equal(first.q, second.q)
        assert np.array_equal(first.eigenvalues, second.eigenvalues)


def test_two_by_two_blocks_are_standardised():
    coords = ordered_schur(np.random.default_rng(6).normal(size=(40, 40)))
    assert (coords.block_sizes == 2).sum() >= 5
    for start in coords.block_starts[coords.block_sizes == 2]:
        (a, b), (c, d) = coords.t[start : start + 2, start : start + 2]
        assert a == d and b * c < 0


def test_a_non_standard_block_is_rotated_into_standard_form():
    q = ortho_group.rvs(4, random_state=7)
    # [[1, 3], [-1, 2]] has complex eigenvalues 1.5 ± i·√2.75 but unequal diagonal entries.
    t = np.array([[3.0, 1.0, 2.0, 0.5], [0.0, 1.0, 3.0, 1.0], [0.0, -1.0, 2.0, 4.0], [0.0, 0.0, 0.0, -0.5]])
    t_std, q_std = _standardised(t, q)
    (a, b), (c, d) = t_std[1:3, 1:3]
    assert a == d == pytest.approx(1.5) and b * c == pytest.approx(-2.75)
    np.testing.assert_allclose(q_std @ t_std @ q_std.T, q @ t @ q.T, atol=1e-14)
    assert np.linalg.norm(q_std.T @ q_std - np.eye(4)) <= 1e-14
    # The 1×1 blocks and the untouched input arrays stay as they were.
    assert t_std[0, 0] == 3.0 and t_std[3, 3] == -0.5 and t[1, 1] == 1.0
    with pytest.raises(SchurError, match="standard-form check failed.*real eigenvalues"):
        _standardised(np.array([[1.0, 2.0], [1.0, 1.0]]), np.eye(2))


@pytest.mark.parametrize(
    "w, message",
    [
        (np.ones((3, 4)), r"W_hh must be a non-empty square matrix; got shape \(3, 4\)"),
        (np.ones(3), r"square matrix; got shape \(3,\)"),
        (np.ones((2, 2, 2)), r"square matrix; got shape \(2, 2, 2\)"),
        (np.ones((0, 0)), r"non-empty square matrix; got shape \(0, 0\)"),
        (np.array([[1.0, np.nan], [np.inf, 1.0]]), "W_hh has 2 NaN/inf entries; a diverged model cannot be analysed"),
        (np.array([[1j]]), "W_hh must be a real matrix; got dtype complex128"),
    ],
)
def test_bad_input_is_refused_clearly(w, message):
    with pytest.raises(ValueError, match=message) as raised:
        ordered_schur(w)
    assert not isinstance(raised.value, SchurError)


def test_overflowing_schur_form_raises_schur_error():
    # Eigenvalue 3 × 1.7e308 is beyond float64.
    with pytest.raises(SchurError, match="finiteness check failed.*rescale"):
        ordered_schur(np.full((3, 3), 1.7e308))


def test_check_schur_names_the_failed_check():
    w = np.random.default_rng(8).normal(size=(6, 6))
    coords = ordered_schur(w)
    check_schur(w, coords)
    with pytest.raises(SchurError, match=r"reconstruction check failed: \|\|W - Q T Q\^T\|\|_F / \|\|W\|\|_F = "):
        check_schur(w + 1e-6, coords)
    with pytest.raises(SchurError, match="orthogonality check failed"):
        check_schur(w, dataclasses.replace(coords, q=coords.q * (1 + 1e-9), t=coords.t / (1 + 1e-9) ** 2))
    diagonal = ordered_schur(np.diag([2.0, 1.0]))
    reversed_order = dataclasses.replace(
        diagonal,
        q=np.eye(2),
        t=np.diag([1.0, 2.0]),
        moduli=np.array([1.0, 2.0]),
        eigenvalues=np.array([1.0, 2.0], complex),
    )
    with pytest.raises(SchurError, match="ordering check failed"):
        check_schur(np.diag([1.0, 2.0]), reversed_order)
    lower = np.array([[1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(SchurError, match="quasi-triangularity check failed"):
        check_schur(lower, dataclasses.replace(diagonal, q=np.eye(2), t=lower))
    block = np.array([[1.0, 3.0], [-1.0, 2.0]])
    as_block = dataclasses.replace(
        diagonal,
        q=np.eye(2),
        t=block,
        block_starts=np.array([0]),
        block_sizes=np.array([2]),
        moduli=np.array([2.0]),
        eigenvalues=np.array([1.5 + 1.3j]),
    )
    with pytest.raises(SchurError, match="standard-form check failed"):
        check_schur(block, as_block)
    with pytest.raises(SchurError, match=r"do not belong to W_hh of shape \(3, 3\)"):
        check_schur(np.eye(3), diagonal)
