import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.fixed_points import (
    deduplicate,
    find_fixed_points,
    host_speed,
    max_abs_eigenvalue,
    minimise_speed,
    rest_inputs,
)
from schurjax.subspace import DiagnosticsConfig
from schurjax.tasks import make_task
from schurjax.weights import RNNWeights

# h = tanh(2h) has the roots 0 and ±H_STAR
H_STAR = 0.9575040240772687


def test_the_reference_root():
    assert np.tanh(2 * H_STAR) == pytest.approx(H_STAR, abs=1e-14)


def _grid_starts(n_per_axis=5):
    axis = np.linspace(-1.2, 1.2, n_per_axis)
    return np.array(list(itertools.product(axis, axis)), np.float32)


def test_adam_finds_all_nine_fixed_points_of_two_self_exciting_units():
    # W_hh = 2 I: each unit has the fixed points 0 (unstable, slope 2) and ±h* (stable, slope
    # 2(1 - h*²) ≈ 0.17), so the plane has 3 × 3 = 9, of which the 4 corners are stable.
    w_hh = 2 * np.eye(2)
    starts = _grid_starts(5) + np.float32(0.05)  # off the symmetric axes, yet in every basin
    ends, speeds = minimise_speed(
        jnp.asarray(w_hh, jnp.float32)[None], jnp.zeros((1, 1, 2), jnp.float32), jnp.asarray(starts)[None], 3000, 0.05
    )
    ends = np.asarray(ends, np.float64)[0, 0]
    q = host_speed(ends, w_hh, np.zeros(2))
    assert np.all(q < 1e-10), q.max()
    found = ends[deduplicate(ends, q, radius=0.05)]
    expected = np.array(list(itertools.product((-H_STAR, 0.0, H_STAR), repeat=2)))
    assert len(found) == 9
    for point in expected:
        assert np.linalg.norm(found - point, axis=1).min() < 1e-3
    for point in found:
        corner = np.all(np.abs(point) > 0.5)
        eig = max_abs_eigenvalue(point, w_hh, np.zeros(2))
        assert (eig < 1) == corner
        assert eig == pytest.approx(2 * (1 - H_STAR**2) if corner else 2.0, rel=1e-3)


def test_deduplicate_keeps_the_slowest_of_each_cluster():
    points = np.array([[0.0, 0.0], [0.0, 0.001], [1.0, 0.0], [1.0, 0.002]])
    speeds = np.array([1e-9, 1e-12, 1e-10, 1e-11])
    kept = deduplicate(points, speeds, radius=0.01)
    assert sorted(kept.tolist()) == [1, 3]
    assert deduplicate(points, speeds, radius=1e-6).tolist() == [1, 3, 2, 0]


def test_rest_inputs_per_task():
    labels, levels = rest_inputs(make_task("sine"), 3)
    assert labels == ["cue=0", "cue=0.5", "cue=1"]
    np.testing.assert_allclose(levels[:, 0], [0.25, 0.75, 1.25])
    labels, levels = rest_inputs(make_task("cdi"), 3)
    assert labels == ["zero", "context0", "context1"] and levels.shape == (3, 4)
    labels, levels = rest_inputs(make_task("flipflop"), 3)
    assert labels == ["zero"] and not levels.any()


def test_find_fixed_points_of_a_normal_network_and_its_ablations():
    # W_hh = 2 I is normal: it has no Schur couplings, so every ablation is the network itself and
    # each of its fixed points must be found again, in place, with the same stability.
    task = make_task("flipflop", n_bits=2)
    weights = RNNWeights(w_xh=3 * np.eye(2), w_hh=2 * np.eye(2), w_hy=np.eye(2))
    inputs = task(jax.random.key(1), 16)[0]
    config = DiagnosticsConfig(n_starts=48, iterations=2000, learning_rate=0.05, start_noise=0.3, start_trials=16)
    points, summary = find_fixed_points(
        [weights], [dict(seed=0)], task, inputs, jax.random.key(2), alpha=0.9, config=config
    )
    full = [p for p in points if p["subset"] == "none"]
    corners = [p for p in full if p["stable"]]
    assert len(corners) == 4  # trajectories visit all four memories
    assert all(p["q"] < config.tolerance for p in points)
    assert all(p["max_abs_eig"] == pytest.approx(2 * (1 - H_STAR**2), rel=1e-3) for p in corners)
    assert all(p["max_abs_eig"] == pytest.approx(2.0, rel=1e-3) for p in full if not p["stable"])
    assert [s["subset"] for s in summary] == ["none", "T_RR", "T_CR", "T_CC"]
    for row in summary:
        assert row["n_fixed_points"] == row["n_full"] == row["n_full_survived"] == len(full)
        assert row["n_stability_changed"] == 0
    for p in points:
        assert p["matched_full_index"] is not None and p["displacement"] < 1e-3 and not p["stability_changed"]
