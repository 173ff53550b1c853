import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

from schurjax.fixed_points import (
    BLOCK,
    FIXED_POINT_COLUMNS,
    _blocks,
    _merge,
    _Merged,
    _residual,
    deduplicate,
    draw_starts,
    find_fixed_points,
    host_speed,
    linear_stability,
    load_fixed_points,
    network_fixed_points,
    newton_rounds,
    newton_solve,
    newton_step,
    pair_midpoints,
    save_fixed_points,
)
from schurjax.interventions import SUBSETS, ablate_all, parse_subset
from schurjax.results import load_weights, save_weights
from schurjax.schur import ordered_schur
from schurjax.subspace import DiagnosticsConfig
from schurjax.tasks import make_task
from schurjax.weights import RNNWeights

# h = tanh(2h) has the roots 0 and ±H_STAR
H_STAR = 0.9575040240772687
# q < tolerance bounds the residual: ‖F(h) − h‖ = sqrt(2q)
RESIDUAL_BOUND = np.sqrt(2 * DiagnosticsConfig().tolerance)


def test_the_reference_root():
    assert np.tanh(2 * H_STAR) == pytest.approx(H_STAR, abs=1e-14)


def _solve(w_hh, starts, drive=None, max_steps=20, tolerance=1e-6):
    """newton_solve for one network at one input: (end points [S, Nh] float64, converged [S])."""
    n = w_hh.shape[0]
    drive = np.zeros(n) if drive is None else drive
    ends, converged = newton_solve(
        jnp.asarray(w_hh, jnp.float32)[None],
        jnp.asarray(drive, jnp.float32)[None, None],
        jnp.asarray(starts, jnp.float32)[None],
        max_steps,
        tolerance,
        8,
    )
    return np.asarray(ends, np.float64)[0, 0], np.asarray(converged)[0, 0]


def _newton_iterates(h, w, steps):
    """Scalar Newton on tanh(w h) − h in float64, by hand, iterates clipped to [−1, 1]."""
    for _ in range(steps):
        f = np.tanh(w * h)
        h = np.clip(h - (f - h) / (w * (1 - f * f) - 1), -1, 1)
    return h


def test_newton_steps_are_exact_newton_steps():
    # W = 2 I decouples the units: each coordinate follows the scalar iteration. From 0.7 the
    # first step overshoots to 1.026, outside the cube that holds every fixed point: clipped to 1.
    starts = np.array([[0.7, -0.3], [1.0, 0.2]])
    for steps in (1, 2):
        ends, _ = _solve(2 * np.eye(2), starts, max_steps=steps)
        np.testing.assert_allclose(ends, _newton_iterates(starts, 2.0, steps), atol=2e-6)


def test_newton_converges_quadratically_to_a_known_root():
    ends, converged = _solve(2 * np.eye(2), np.array([[0.7, 0.7]]))
    assert converged.all()
    np.testing.assert_allclose(ends[0], [H_STAR, H_STAR], atol=1e-6)
    errors = [abs(_newton_iterates(0.7, 2.0, k) - H_STAR) for k in range(4)]
    # e_{k+1} ≈ |g''/(2 g')| e_k² with g(h) = tanh(2h) − h: quadratic, not linear, convergence
    assert errors[3] < 1e-6 and errors[2] < errors[1] ** 2


def test_solving_step_by_step_in_batches_is_one_uninterrupted_newton_solve():
    # The host advances each solve one step per round, in padded batches of 8 mixing networks;
    # that must end where optimistix's own loop ends, with the same verdict, whatever the batch.
    rng = np.random.default_rng(3)
    w_hh = (1.5 * rng.standard_normal((3, 6, 6)) / np.sqrt(6)).astype(np.float32)
    drives = (0.1 * rng.standard_normal((3, 2, 6))).astype(np.float32)
    starts = rng.uniform(-1, 1, (3, 5, 6)).astype(np.float32)
    solver = optx.Newton(rtol=1e-6, atol=1e-6)

    def reference(w, drive, start):
        solution = optx.root_find(
            _residual, solver, start, (w, drive), options={"lower": -1.0, "upper": 1.0}, max_steps=6, throw=False
        )
        return solution.value, solution.result == optx.RESULTS.successful

    per_start = jax.vmap(reference, (None, None, 0))
    expected_ends, expected_converged = map(
        np.asarray, jax.vmap(jax.vmap(per_start, (None, 0, None)))(w_hh, drives, starts)
    )
    for batch in (8, None):
        ends, converged = newton_solve(jnp.asarray(w_hh), jnp.asarray(drives), jnp.asarray(starts), 6, 1e-6, batch)
        np.testing.assert_array_equal(converged, expected_converged)
        # converged: the same root to within the solver's tolerance
        np.testing.assert_allclose(ends[converged], expected_ends[converged], atol=1e-5)
        # still far from a root after 6 steps, Newton amplifies the float32 round-off of W h,
        # which differs between one network per problem and one per block: about 1e-5 here
        np.testing.assert_allclose(ends, expected_ends, atol=1e-3)
    # some solves converge and some run out of steps: both verdicts are exercised
    assert 0 < expected_converged.mean() < 1


def test_blocks_hold_the_running_problems_of_one_network_each():
    # 10 starts per network: network 0 has 5 running problems, network 1 all 8 of 10..17, network 3 one
    running = np.array([0, 1, 2, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 30])
    blocks = _blocks(running, group=np.arange(40) // 10)
    assert blocks.shape == (3, BLOCK)
    for row in blocks:
        assert len(set(row // 10)) == 1  # one network and input per block
    np.testing.assert_array_equal(blocks[1], np.arange(10, 18))
    # short blocks are filled with their last problem, solved twice to the same end
    np.testing.assert_array_equal(blocks[0], [0, 1, 2, 5, 9, 9, 9, 9])
    assert set(blocks.ravel()) == set(running)


def _two_unit_grid():
    axis = np.linspace(-1.2, 1.2, 5) + 0.05  # off the symmetric axes, yet in every basin
    return np.array(list(itertools.product(axis, axis)))


def test_newton_finds_every_fixed_point_of_two_self_exciting_units_and_classifies_them():
    # W = 2 I: each unit has the fixed points 0 (slope 2) and ±h* (slope 2(1 − h*²) ≈ 0.17), so
    # the plane has 3 × 3 = 9: 4 stable corners, 4 saddles on the axes (one unstable direction)
    # and the origin (two).
    w_hh = 2 * np.eye(2)
    ends, converged = _solve(w_hh, _two_unit_grid())
    assert converged.all()
    found = network_fixed_points(ends, converged, w_hh, np.zeros(2), tolerance=1e-8, radius=0.05)
    expected = np.array(list(itertools.product((-H_STAR, 0.0, H_STAR), repeat=2)))
    assert len(found.states) == 9
    for point in expected:
        assert np.linalg.norm(found.states - point, axis=1).min() < 1e-5
    n_zero = (np.abs(found.states) < 0.5).sum(axis=1)
    np.testing.assert_array_equal(found.n_unstable, n_zero)
    np.testing.assert_array_equal(found.stable, n_zero == 0)
    expected_radius = np.where(n_zero == 0, 2 * (1 - H_STAR**2), 2.0)
    np.testing.assert_allclose(found.max_abs_eig, expected_radius, rtol=1e-5)


def test_mirrors_are_added_at_zero_drive_only():
    w_hh = 2 * np.eye(2)
    ends = np.array([[H_STAR, H_STAR], [H_STAR, 0.0]])
    found = network_fixed_points(ends, np.array([True, False]), w_hh, np.zeros(2), tolerance=1e-8, radius=0.05)
    mirrored = np.concatenate([ends, -ends])
    assert len(found.states) == 4
    origin = [int(np.abs(mirrored - h).max(axis=1).argmin()) for h in found.states]
    assert sorted(origin) == [0, 1, 2, 3] and np.abs(found.states - mirrored[origin]).max() == 0
    # a mirror has its original's Jacobian, hence spectrum, and its solve's outcome
    np.testing.assert_array_equal(found.n_unstable, np.array([0, 1, 0, 1])[origin])
    np.testing.assert_array_equal(found.converged, np.array([True, False, True, False])[origin])
    np.testing.assert_allclose(found.max_abs_eig, linear_stability(found.states, w_hh, np.zeros(2))[0], rtol=1e-12)
    # with a drive, −h solves another equation: the two roots found stay the only ones
    drive = np.array([0.1, -0.2])
    roots, _ = _solve(w_hh, ends, drive)
    found = network_fixed_points(roots, np.array([True, True]), w_hh, drive, tolerance=1e-8, radius=0.05)
    assert len(found.states) == 2
    assert host_speed(-roots, w_hh, drive).min() > 1e4 * 1e-8  # the mirrors are far from fixed points


def test_an_unconverged_solve_on_a_slow_region_is_kept_as_a_slow_point():
    # tanh(h) = h only at 0, a triple root: Newton converges linearly (h shrinks by ~2/3 a step),
    # so after 5 steps from 0.5 it has not converged, yet q ≈ h⁶/18 is below the tolerance.
    w_hh = np.eye(1)
    ends, converged = _solve(w_hh, np.array([[0.5]]), max_steps=5)
    assert not converged[0]
    expected = _newton_iterates(0.5, 1.0, 5)
    # float32 loses digits in tanh(h) − h ≈ −h³/3: relative error ~1e-4 on the last step
    assert ends[0, 0] == pytest.approx(expected, rel=1e-4)
    found = network_fixed_points(ends, converged, w_hh, np.zeros(1), tolerance=1e-8, radius=1e-3)
    np.testing.assert_allclose(found.states[:, 0], [ends[0, 0], -ends[0, 0]])
    assert not found.converged.any() and (found.q < 1e-8).all()
    _, converged = _solve(w_hh, np.array([[0.5]]), max_steps=60)
    assert converged[0]


def test_deduplicate_keeps_the_slowest_of_each_cluster():
    points = np.array([[0.0, 0.0], [0.0, 0.001], [1.0, 0.0], [1.0, 0.002]])
    speeds = np.array([1e-9, 1e-12, 1e-10, 1e-11])
    kept = deduplicate(points, speeds, radius=0.01)
    assert sorted(kept.tolist()) == [1, 3]
    assert deduplicate(points, speeds, radius=1e-6).tolist() == [1, 3, 2, 0]


def test_deduplicate_mirrored_keeps_one_point_of_each_mirror_pair():
    points = np.array([[0.5, 0.2], [-0.5, -0.2005], [0.5, -0.2], [0.0, 0.0]])
    speeds = np.array([1e-10, 1e-12, 1e-11, 1e-9])
    # the slower of the pair ±(0.5, 0.2) stands for both; (0.5, −0.2) and the origin have no mirror here
    assert deduplicate(points, speeds, radius=0.01, mirrored=True).tolist() == [1, 2, 3]
    assert deduplicate(points, speeds, radius=0.01).tolist() == [1, 2, 0, 3]


def test_draws_of_a_model_do_not_depend_on_the_others():
    key = jax.random.key(3)
    picks, noise = draw_starts(key, [2, 5], n_states=40, n_starts=6, noise=0.5)
    alone_picks, alone_noise = draw_starts(key, [2], n_states=40, n_starts=6, noise=0.5)
    np.testing.assert_array_equal(picks[0], alone_picks[0])
    np.testing.assert_array_equal(noise[0, :, :2], alone_noise[0])
    assert not noise[0, :, 2:].any() and noise[1].std() == pytest.approx(0.5, rel=0.3)
    assert picks.min() >= 0 and picks.max() < 40


FLIPFLOP = make_task("flipflop", n_bits=2)
CONFIG = DiagnosticsConfig(n_starts=48, start_noise=0.3, start_trials=16)


def _run(weights, config=CONFIG):
    identities = [
        {"task": "flipflop", "construction": "dense", "width": w.width, "seed": i, "alpha": 0.9}
        for i, w in enumerate(weights)
    ]
    inputs = FLIPFLOP(jax.random.key(1), 16)[0]
    return find_fixed_points(weights, identities, FLIPFLOP, inputs, jax.random.key(2), alpha=0.9, config=config)


def test_find_fixed_points_of_a_normal_network_and_its_ablations():
    # W_hh = 2 I is normal: it has no Schur couplings, so every ablation is the network itself and
    # each of its fixed points must be found again, in place, with the same stability.
    weights = RNNWeights(w_xh=3 * np.eye(2), w_hh=2 * np.eye(2), w_hy=np.eye(2))
    points, summary, states = _run([weights])
    full = [p for p in points if p["subset"] == "none"]
    # the 4 stable corners and the 4 saddles between them; the origin, a repeller, only if some
    # start lies in its Newton basin
    expected = np.array(list(itertools.product((-H_STAR, 0.0, H_STAR), repeat=2)))
    for h, p in zip(states, points):
        nearest = expected[np.abs(expected - h).max(axis=1).argmin()]
        assert np.abs(nearest - h).max() < 1e-5 and p["n_unstable"] == (nearest == 0).sum()
    assert sorted(p["n_unstable"] for p in full)[:8] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(p["q"] < CONFIG.tolerance and p["converged"] for p in points)
    assert all(p["max_abs_eig"] == pytest.approx(2 * (1 - H_STAR**2), rel=1e-5) for p in full if p["stable"])
    assert [s["subset"] for s in summary] == ["none", "T_RR", "T_CR", "T_CC"]
    for row in summary:
        assert row["n_fixed_points"] == row["n_full"] == row["n_full_survived"] == len(full)
        assert row["n_stable"] == 4 and row["n_saddles"] == 4 and row["n_stability_changed"] == 0
    for p in points:
        assert p["matched_full_index"] is not None and p["displacement"] < 1e-5 and not p["stability_changed"]
    assert states.shape == (len(points), 2)
    assert set(FIXED_POINT_COLUMNS) <= set(points[0])


def test_pair_midpoints_are_those_of_the_closest_pairs():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [10.0, 10.0]])
    # pair distances: (0,1) 1, (0,2) 3, (1,2) √10, then the pairs with the far point
    np.testing.assert_array_equal(pair_midpoints(points, 2), [[0.5, 0.0], [0.0, 1.5]])
    assert len(pair_midpoints(points, 100)) == 6 and len(pair_midpoints(points[:1], 100)) == 0


def test_starts_between_attractors_reach_the_saddles_that_trajectories_miss():
    # Noiseless starts on the trajectories of W = 2 I lie at its 4 attractors; Newton from the
    # midpoints of pairs of attractors reaches the 4 saddles between adjacent ones and the origin.
    weights = [RNNWeights(w_xh=3 * np.eye(2), w_hh=2 * np.eye(2), w_hy=np.eye(2))]
    config = dataclasses.replace(CONFIG, n_starts=8, start_noise=0.0, fixed_point_subsets=("none",))
    alone = _run(weights, dataclasses.replace(config, pair_starts=0))
    assert sorted(p["n_unstable"] for p in alone.points) == [0, 0, 0, 0]
    points, _, states = _run(weights, config)
    assert sorted(p["n_unstable"] for p in points) == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    expected = np.array(list(itertools.product((-H_STAR, 0.0, H_STAR), repeat=2)))
    np.testing.assert_allclose(np.sort(states, axis=0), np.sort(expected, axis=0), atol=1e-5)


def test_newton_rounds_need_problems_sorted_by_network():
    w_hh, drives = jnp.zeros((2, 3, 3)), jnp.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="sorted by network"):
        newton_rounds(w_hh, drives, np.array([1, 0]), np.array([0, 0]), np.zeros((2, 3)), 3, 1e-6)



def test_a_solve_near_another_or_its_mirror_follows_it():
    # rows 1 and 2 lie within the radius of row 0 and of its mirror, row 3 of neither
    x, y = np.array([0.5, -0.2]), np.array([0.1, 0.8])
    h = np.stack([x, x + 1e-4, -x - 1e-4, y]).astype(np.float32)
    for odd, running, leader, sign in (
        (True, [0, 3], [0, 0, 0, 3], [1, 1, -1, 1]),
        # a nonzero drive breaks the symmetry: the mirror is another problem
        (False, [0, 2, 3], [0, 0, 2, 3], [1, 1, 1, 1]),
    ):
        merged = _Merged(np.arange(4), np.ones(4, np.float32))
        kept = _merge(np.arange(4), np.zeros(4, np.int64), h, np.array([odd]), 1e-2, merged)
        np.testing.assert_array_equal(kept, running)
        np.testing.assert_array_equal(merged.leader, leader)
        np.testing.assert_array_equal(merged.sign, sign)


@pytest.mark.parametrize("drive", [0.0, 0.3])
def test_merging_solves_changes_no_end_point_and_saves_steps(drive, monkeypatch):
    # W = 2I from starts that funnel into its roots (0, ±H_STAR per unit), each also mirrored
    rng = np.random.default_rng(0)
    starts = rng.uniform(-1, 1, (24, 2))
    starts = np.concatenate([starts, -starts, starts + 1e-5]).astype(np.float32)
    w_hh, drives = jnp.asarray(2 * np.eye(2), jnp.float32)[None], jnp.full((1, 1, 2), drive, jnp.float32)
    steps = []

    def counted(*args):
        steps.append(args[4].shape[0] * args[4].shape[1])
        return newton_step(*args)

    monkeypatch.setattr("schurjax.fixed_points.newton_step", counted)
    solved = {}
    for radius in (0.0, 1e-3):
        steps.clear()
        solved[radius] = newton_solve(w_hh, drives, jnp.asarray(starts)[None], 20, 1e-6, 8, radius), sum(steps)
    (ends, converged), work = solved[0.0]
    (merged_ends, merged_converged), merged_work = solved[1e-3]
    np.testing.assert_array_equal(merged_converged, converged)
    # the same roots, to the solver's tolerance
    np.testing.assert_allclose(merged_ends, ends, atol=1e-5)
    assert merged_work < 0.75 * work


# self-exciting units with feed-forward (Schur) couplings: every ablation is another network
COUPLED = RNNWeights(
    w_xh=np.array([[3.0, 0.0], [0.0, 3.0], [1.0, 1.0]]),
    w_hh=np.array([[2.0, 0.5, 0.3], [0.0, 1.8, 0.4], [0.0, 0.0, 1.6]]),
    w_hy=np.eye(3)[:2],
)


def test_padding_to_a_wider_network_changes_nothing():
    alone = _run([RNNWeights(w_xh=3 * np.eye(2), w_hh=2 * np.eye(2), w_hy=np.eye(2))])
    padded = _run([RNNWeights(w_xh=3 * np.eye(2), w_hh=2 * np.eye(2), w_hy=np.eye(2)), COUPLED])
    rows = len(alone.points)
    assert [p["fp_index"] for p in padded.points[:rows]] == [p["fp_index"] for p in alone.points]
    np.testing.assert_allclose(padded.states[:rows, :2], alone.states, atol=1e-6)
    assert not padded.states[:rows, 2:].any()  # padded units stay at zero
    for a, b in zip(alone.points, padded.points):
        assert (a["n_unstable"], a["matched_full_index"]) == (b["n_unstable"], b["matched_full_index"])


def test_saved_states_are_fixed_points_of_the_saved_networks_and_their_ablations(tmp_path):
    save_weights(tmp_path / "coupled.npz", COUPLED)
    points, _, states = _run([COUPLED])
    save_fixed_points(tmp_path / "fixed_points.npz", points, states)

    weights = load_weights(tmp_path / "coupled.npz")
    ablation = ablate_all(weights.w_hh, ordered_schur(weights.w_hh), 0.9)
    loaded = load_fixed_points(tmp_path / "fixed_points.npz")
    assert sum(len(s) for s in loaded.values()) == len(points) > 4 * 3
    for (construction, width, seed, alpha, subset, level), found in loaded.items():
        assert (construction, width, seed, alpha, level) == ("dense", 3, 0, 0.9, "zero")
        w_hh = ablation.w_tilde[SUBSETS.index(parse_subset(subset))]
        residual = np.linalg.norm(np.tanh(found @ w_hh.T) - found, axis=1)
        assert residual.max() < RESIDUAL_BOUND
        rows = [p for p in points if p["subset"] == subset]
        assert [p["fp_index"] for p in rows] == list(range(len(found)))
        np.testing.assert_allclose(0.5 * residual**2, [p["q"] for p in rows], rtol=1e-6, atol=1e-20)
    # the ablations are different networks, with fixed points of their own (the origin, a fixed
    # point of every bias-free network at zero input, is common to all)
    full, ablated = (loaded["dense", 3, 0, 0.9, subset, "zero"] for subset in ("none", "T_CR"))
    assert np.linalg.norm(ablated[:, None] - full[None], axis=2).min(axis=1).max() > 0.1


def test_max_steps_reaches_the_solver_and_unconverged_slow_points_are_flagged():
    # two marginal units, tanh(h) = h only at the triple root 0: Newton needs ~40 steps to
    # converge, so with 5 every end point near 0 is a slow point (kept, not converged)
    weights = [RNNWeights(w_xh=np.eye(2), w_hh=np.eye(2), w_hy=np.eye(2))]
    config = dataclasses.replace(CONFIG, fixed_point_subsets=("none",))
    points, _, states = _run(weights, dataclasses.replace(config, max_steps=60))
    assert len(points) == 1 and points[0]["converged"] and np.abs(states).max() < 1e-2
    points, _, _ = _run(weights, dataclasses.replace(config, max_steps=5))
    assert len(points) >= 1 and not any(p["converged"] for p in points)
    assert all(p["q"] < config.tolerance for p in points)


def test_full_networks_start_from_their_kept_rollout_states_bit_for_bit():
    """A run keeps each full network's states on the starts' trials from its one held-out rollout;
    the starts drawn from them are the ones the finder's own rollout gives, padding and all."""
    from schurjax.fixed_points import _networks, _starts, _variants
    from schurjax.subspace import held_out_rollouts

    weights = [COUPLED, RNNWeights(w_xh=3 * np.eye(2), w_hh=2 * np.eye(2), w_hy=np.eye(2))]  # widths 3 and 2
    inputs = FLIPFLOP(jax.random.key(1), 24)[0]
    trials = inputs[: CONFIG.start_trials]
    subsets = ["none", "T_CR"]
    networks = _networks(_variants(weights, 0.9, subsets), np.zeros((1, 2)))
    picks, noise = draw_starts(jax.random.key(2), [3, 2], trials.shape[0] * trials.shape[1], 10, 0.3)
    kept = held_out_rollouts(weights, inputs, kept_trials=CONFIG.start_trials).states
    assert kept.shape == (2, CONFIG.start_trials, trials.shape[1], 3)
    shared = _starts(networks.models, len(subsets), trials, picks, noise, kept)
    rolled = _starts(networks.models, len(subsets), trials, picks, noise, None)
    np.testing.assert_array_equal(shared, rolled)
    assert not shared[2:, :, 2].any()  # the width-2 network's padded unit stays at zero
