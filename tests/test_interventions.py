import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from schurjax.interventions import (
    SUBSETS,
    ablate_all,
    check_alpha,
    coupling_parts,
    parse_subset,
    partition,
    subset_name,
)
from schurjax.schur import ordered_schur


def _random(n, seed):
    return np.random.default_rng(seed).normal(size=(n, n)) / np.sqrt(n)


def _normal_matrix(n, seed):
    rng = np.random.default_rng(seed)
    d = np.zeros((n, n))
    for i in range(0, n - 1, 2):
        a, b = rng.normal(size=2)
        d[i : i + 2, i : i + 2] = [[a, -b], [b, a]]
    if n % 2:
        d[-1, -1] = rng.normal()
    q = ortho_group.rvs(n, random_state=seed)
    return q @ d @ q.T


def test_subset_names():
    assert [subset_name(s) for s in SUBSETS] == [
        "none", "T_RR", "T_CR", "T_CC", "T_RR+T_CR", "T_RR+T_CC", "T_CR+T_CC", "T_RR+T_CR+T_CC",
    ]
    assert all(parse_subset(subset_name(s)) == s for s in SUBSETS)
    with pytest.raises(ValueError, match="T_RR\\+T_CC"):
        parse_subset("RR")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**31 - 1), alpha=st.floats(0.05, 1.0))
def test_ablation_identities(n, seed, alpha):
    w = _random(n, seed)
    coords = ordered_schur(w)
    ablations = ablate_all(w, coords, alpha)
    names = [subset_name(s) for s in ablations.subsets]
    mass = dict(zip(names, ablations.removed_mass))
    # S = ∅ is W itself, bit for bit.
    assert np.array_equal(ablations.w_tilde[0], w) and mass["none"] == 0.0
    # Disjoint parts of T: squared Frobenius masses add (round-off ~ eps relative).
    for a, b in [("T_RR", "T_CR"), ("T_RR", "T_CC"), ("T_CR", "T_CC")]:
        assert mass[f"{a}+{b}"] ** 2 == pytest.approx(mass[a] ** 2 + mass[b] ** 2, abs=1e-12)
    assert mass["T_RR+T_CR+T_CC"] == pytest.approx(ablations.nonnormal_fraction, abs=1e-12)
    assert ablations.mass_rr**2 + ablations.mass_cr**2 + ablations.mass_cc**2 == pytest.approx(
        ablations.nonnormal_fraction**2, abs=1e-12
    )
    # W − Q ΔT Qᵀ equals Q T̃ Qᵀ.
    parts = coupling_parts(coords, ablations.partition)
    for subset, w_tilde in zip(ablations.subsets, ablations.w_tilde):
        t_tilde = coords.t - sum((parts[p] for p in subset), np.zeros_like(coords.t))
        np.testing.assert_allclose(w_tilde, coords.q @ t_tilde @ coords.q.T, atol=1e-12 * max(np.linalg.norm(w), 1))
    # R is a prefix of blocks above α ρ, C the rest.
    part = ablations.partition
    assert np.all(coords.moduli[: part.n_r] >= alpha * coords.rho * (1 - 1e-12))
    assert np.all(coords.moduli[part.n_r :] < alpha * coords.rho)
    assert part.r == coords.block_sizes[: part.n_r].sum()


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
    # N has no entries on or below the diagonal blocks.
    for start, size in zip(coords.block_starts, coords.block_sizes):
        assert not n[start : start + size, start : start + size].any()
    np.testing.assert_array_equal(np.tril(n), 0)


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_a_normal_matrix_has_no_couplings_and_every_ablation_keeps_it(n):
    w = _normal_matrix(n, n)
    ablations = ablate_all(w, ordered_schur(w), 0.9)
    # Schur form of a normal matrix is block diagonal; the couplings are Householder round-off.
    assert ablations.nonnormal_fraction < 1e-12
    for w_tilde in ablations.w_tilde:
        np.testing.assert_allclose(w_tilde, w, atol=1e-12 * np.linalg.norm(w))


def test_alpha_one_keeps_exactly_the_blocks_of_modulus_rho():
    q = ortho_group.rvs(5, random_state=0)
    w = q @ np.diag([1.0, -1.0, 0.999, 0.5, 0.1]) @ q.T
    part = partition(ordered_schur(w), 1.0)
    assert part.n_r == 2 and part.r == 2


def test_zero_matrix_has_nothing_to_remove():
    ablations = ablate_all(np.zeros((3, 3)), ordered_schur(np.zeros((3, 3))), 0.9)
    assert ablations.partition.n_r == 3 and not ablations.removed_mass.any()


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, float("nan"), "0.9", True, None])
def test_alpha_outside_the_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha must lie in \\(0, 1\\]"):
        check_alpha(alpha)
