"""Leading-sector partition and the 8 coupling ablations."""

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import block_diag
from scipy.stats import ortho_group

from schurjax.interventions import (
    ABLATION_COLUMNS,
    BLOCKS,
    SUBSETS,
    ablate,
    ablate_all,
    ablation_columns,
    check_alpha,
    coupling_parts,
    parse_subset,
    partition,
    subset_name,
)
from schurjax.schur import ordered_schur

NAMES = ["none", "T_RR", "T_CR", "T_CC", "T_RR+T_CR", "T_RR+T_CC", "T_CR+T_CC", "T_RR+T_CR+T_CC"]


def _random(n, seed):
    return np.random.default_rng(seed).normal(size=(n, n)) / np.sqrt(n)


def _normal_matrix(n, seed):
    """Q D Qᵀ with D block diagonal: rotation-scaling 2×2 blocks and, for odd n, one real 1×1."""
    rng = np.random.default_rng(seed)
    blocks = [np.array([[a, -b], [b, a]]) for a, b in rng.normal(size=(n // 2, 2))]
    d = block_diag(*blocks, *rng.normal(size=n % 2))
    q = ortho_group.rvs(n, random_state=seed) if n > 1 else np.eye(1)
    return q @ d @ q.T


def test_subset_names_are_canonical_and_round_trip():
    assert [subset_name(s) for s in SUBSETS] == NAMES
    assert [parse_subset(name) for name in NAMES] == list(SUBSETS)
    assert set(SUBSETS) == {s for k in range(4) for s in itertools.combinations(BLOCKS, k)}
    # Names follow BLOCKS order whatever order the subset lists them in.
    assert subset_name(("T_CC", "T_RR")) == "T_RR+T_CC"


@pytest.mark.parametrize("name", ["RR", "T_CC+T_RR", "", "None"])
def test_unknown_subset_names_are_refused_with_the_valid_list(name):
    with pytest.raises(ValueError, match="valid names: none, T_RR, T_CR, T_CC, T_RR\\+T_CR, .*T_RR\\+T_CR\\+T_CC"):
        parse_subset(name)


def test_unknown_block_in_a_subset_is_refused():
    with pytest.raises(ValueError, match="unknown coupling block"):
        subset_name(("T_RC",))
    w = _random(4, 0)
    coords = ordered_schur(w)
    with pytest.raises(ValueError, match="unknown coupling block"):
        ablate(w, coords, partition(coords, 0.9), ("T_C→R",))


@pytest.mark.parametrize("alpha", [0.9, 1, 1.0, np.float32(0.5), np.float64(0.85), 1e-300])
def test_valid_alpha_is_returned_as_float(alpha):
    assert check_alpha(alpha) == float(alpha) and type(check_alpha(alpha)) is float


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, 1 + 1e-15, float("nan"), float("inf"), "0.9", True, None, 0.9j])
def test_alpha_outside_the_unit_interval_is_refused(alpha):
    message = f"alpha must lie in (0, 1] (the leading-sector threshold, paper: 0.9); got {alpha!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_alpha(alpha)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    alpha=st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
)
def test_ablation_identities(n, seed, alpha):
    w = _random(n, seed)
    coords = ordered_schur(w)
    ablations = ablate_all(w, coords, alpha)
    assert ablations.subsets == SUBSETS
    assert ablations.w_tilde.shape == (8, n, n) and ablations.w_tilde.dtype == np.float64
    mass = dict(zip(NAMES, ablations.removed_mass))
    # S = ∅ is W itself, bit for bit.
    assert np.array_equal(ablations.w_tilde[0], w) and mass["none"] == 0.0
    assert np.all((0 <= ablations.removed_mass) & (ablations.removed_mass <= 1))
    # T_RR, T_CR, T_CC occupy disjoint entries of T, so squared Frobenius masses add exactly in
    # exact arithmetic; the computed norms carry ~n·eps relative round-off, far below 1e-12.
    for first, second in itertools.combinations(SUBSETS, 2):
        if not set(first) & set(second):
            union = subset_name(first + second)
            assert mass[union] ** 2 == pytest.approx(
                mass[subset_name(first)] ** 2 + mass[subset_name(second)] ** 2, abs=1e-12
            )
    assert mass["T_RR+T_CR+T_CC"] == pytest.approx(ablations.nonnormal_fraction, abs=1e-12)
    blocks_squared = ablations.mass_rr**2 + ablations.mass_cr**2 + ablations.mass_cc**2
    assert blocks_squared == pytest.approx(ablations.nonnormal_fraction**2, abs=1e-12)
    assert (ablations.mass_rr, ablations.mass_cr, ablations.mass_cc) == (mass["T_RR"], mass["T_CR"], mass["T_CC"])
    # W − Q ΔT Qᵀ equals Q T̃ Qᵀ up to the reconstruction error ||W − Q T Qᵀ|| (~n·eps·||W||).
    part = ablations.partition
    parts = coupling_parts(coords, part)
    for subset, w_tilde in zip(SUBSETS, ablations.w_tilde):
        t_tilde = coords.t - sum((parts[p] for p in subset), np.zeros_like(coords.t))
        assert np.linalg.norm(w_tilde - coords.q @ t_tilde @ coords.q.T) <= 1e-12 * np.linalg.norm(w)
        # The single-subset helper is the same computation.
        assert np.array_equal(ablate(w, coords, part, subset)[0], w_tilde)
    # R is a prefix of blocks at or above α ρ (with the documented 1e-12 slack), C the rest.
    threshold = alpha * coords.rho * (1 - 1e-12)
    assert np.all(coords.moduli[: part.n_r] >= threshold) and np.all(coords.moduli[part.n_r :] < threshold)
    assert 1 <= part.n_r <= part.n_blocks == coords.n_blocks
    assert part.r == coords.block_sizes[: part.n_r].sum() and part.rho == coords.rho and part.alpha == alpha


def test_parts_sit_where_the_spec_puts_them():
    w = _random(12, 0)
    coords = ordered_schur(w)
    part = partition(coords, 0.6)
    assert 0 < part.r < 12
    parts = coupling_parts(coords, part)
    r = part.r
    assert not parts["T_RR"][r:].any() and not parts["T_RR"][:, r:].any()
    assert not parts["T_CR"][r:].any() and not parts["T_CR"][:, :r].any()
    assert not parts["T_CC"][:r].any() and not parts["T_CC"][:, :r].any()
    n = sum(parts.values())
    # N is T off its diagonal blocks: zero on and below them, T's own entries above.
    block_diagonal = np.zeros_like(coords.t)
    for start, size in zip(coords.block_starts, coords.block_sizes):
        block = slice(start, start + size)
        block_diagonal[block, block] = coords.t[block, block]
        assert not n[block, block].any()
    np.testing.assert_array_equal(np.tril(n), 0)
    np.testing.assert_array_equal(n + block_diagonal, coords.t)


def test_masses_of_a_known_triangular_matrix():
    # Distinct eigenvalues 2 > 1 > 0.5 fix the ordered Schur form up to the signs of Q's
    # columns, so |t_ij|, and with them the masses, are those of this T to round-off.
    t = np.array([[2.0, 3.0, -1.0], [0.0, 1.0, 2.0], [0.0, 0.0, 0.5]])
    q = ortho_group.rvs(3, random_state=1)
    w = q @ t @ q.T
    coords = ordered_schur(w)
    t_norm = np.linalg.norm(t)
    ablations = ablate_all(w, coords, 0.9)  # R = {2}: α ρ = 1.8
    assert (ablations.partition.n_r, ablations.partition.r) == (1, 1)
    assert ablations.mass_rr == 0.0
    assert ablations.mass_cr == pytest.approx(np.sqrt(10) / t_norm, abs=1e-14)
    assert ablations.mass_cc == pytest.approx(2 / t_norm, abs=1e-14)
    assert ablations.nonnormal_fraction == pytest.approx(np.sqrt(14) / t_norm, abs=1e-14)
    ablations = ablate_all(w, coords, 0.4)  # R = {2, 1}: α ρ = 0.8
    assert (ablations.partition.n_r, ablations.partition.r) == (2, 2)
    assert ablations.mass_rr == pytest.approx(3 / t_norm, abs=1e-14)
    assert ablations.mass_cr == pytest.approx(np.sqrt(5) / t_norm, abs=1e-14)
    assert ablations.mass_cc == 0.0


def test_the_result_columns_of_the_known_triangular_matrix():
    t = np.array([[2.0, 3.0, -1.0], [0.0, 1.0, 2.0], [0.0, 0.0, 0.5]])
    q = ortho_group.rvs(3, random_state=1)
    w = q @ t @ q.T
    rows = ablation_columns(ablate_all(w, ordered_schur(w), 0.9))  # R = {2}, C = {1, 0.5}
    assert len(rows) == len(SUBSETS) and all(list(row) == list(ABLATION_COLUMNS) for row in rows)
    assert all(type(row[name]) is kind for row in rows for name, kind in ABLATION_COLUMNS.items())
    assert {(row["n_R"], row["n_blocks"]) for row in rows} == {(1, 3)}
    assert rows[0]["rho"] == pytest.approx(2.0, rel=1e-14)
    t_norm = np.linalg.norm(t)
    # removed: nothing; T_RR = 0; T_C→R = (3, −1); T_CC = (2); and their unions
    expected = [0.0, 0.0, np.sqrt(10), 2.0, np.sqrt(10), 2.0, np.sqrt(14), np.sqrt(14)]
    np.testing.assert_allclose([row["removed_mass"] for row in rows], np.array(expected) / t_norm, atol=1e-14)


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_a_normal_matrix_has_no_couplings_and_every_ablation_keeps_it(n):
    w = _normal_matrix(n, n)
    ablations = ablate_all(w, ordered_schur(w), 0.9)
    # The Schur form of a normal matrix is block diagonal. Schur is backward stable: T is the
    # exact Schur form of W + E with ||E|| ~ n·eps·||W|| ≈ 1e-14·||W|| here, and the departure
    # from normality ||N||_F of that nearly normal matrix is of the order of ||E||.
    assert ablations.nonnormal_fraction < 1e-12
    for w_tilde in ablations.w_tilde:
        assert np.linalg.norm(w_tilde - w) <= 1e-12 * np.linalg.norm(w)


def test_alpha_one_keeps_exactly_the_blocks_of_modulus_rho():
    q = ortho_group.rvs(7, random_state=0)
    c, s = np.cos(1.0), np.sin(1.0)
    # Modulus 1: the real eigenvalues ±1 and the pair e^{±i}; 0.999 is just below.
    w = q @ block_diag(1.0, -1.0, [[c, -s], [s, c]], 0.999, 0.5, 0.1) @ q.T
    coords = ordered_schur(w)
    part = partition(coords, 1.0)
    assert (part.n_r, part.r) == (3, 4)
    assert partition(coords, 0.999).n_r == 4
    # An integer α (as a config file may give it) is accepted.
    assert partition(coords, 1) == part


def test_zero_and_nilpotent_matrices_put_every_block_in_r():
    zero = ablate_all(np.zeros((3, 3)), ordered_schur(np.zeros((3, 3))), 0.9)
    assert zero.partition.rho == 0.0 and zero.partition.n_r == zero.partition.n_blocks == 3
    assert not zero.removed_mass.any() and zero.nonnormal_fraction == 0.0 and not zero.w_tilde.any()
    # A strictly triangular W is its own Schur form (T = N), so all of T is T_RR.
    w = np.triu(np.random.default_rng(2).normal(size=(5, 5)), 1)
    nilpotent = ablate_all(w, ordered_schur(w), 0.9)
    assert nilpotent.partition.n_r == 5
    assert nilpotent.nonnormal_fraction == pytest.approx(1.0, abs=1e-15)
    assert nilpotent.mass_rr == pytest.approx(1.0, abs=1e-15) and nilpotent.mass_cr == nilpotent.mass_cc == 0.0
    np.testing.assert_allclose(nilpotent.w_tilde[NAMES.index("T_RR")], 0.0, atol=1e-15)


def test_float32_input_is_kept_exactly_and_ablations_are_float64():
    w = _random(6, 3).astype(np.float32)
    ablations = ablate_all(w, ordered_schur(w), 0.9)
    assert ablations.w_tilde.dtype == np.float64
    assert np.array_equal(ablations.w_tilde[0], w.astype(np.float64))


def test_empty_subset_is_bitwise_w_including_signed_zeros():
    w = _random(9, 4)
    w[::2, ::3] = -0.0
    ablations = ablate_all(w, ordered_schur(w), 0.9)
    assert np.array_equal(ablations.w_tilde[0].view(np.int64), w.view(np.int64))


def test_a_matrix_of_another_shape_is_refused():
    coords = ordered_schur(_random(4, 0))
    with pytest.raises(ValueError, match=r"W_hh of shape \(5, 5\) does not match Schur coordinates of shape \(4, 4\)"):
        ablate_all(_random(5, 0), coords, 0.9)
