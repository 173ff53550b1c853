import math

import hypothesis.extra.numpy as hnp
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schurjax.model import TanhRNN
from schurjax.subspace import (
    DiagnosticsConfig,
    StateGeometry,
    perturbation_diagnostics,
    predictive_power,
    state_geometry,
)
from schurjax.weights import RNNWeights, dense_model

OVERLAPS = ("pc_overlap", "pc_overlap_col", "pc_overlap_row", "readout_overlap")


def _geometry(variances, mean=None, axes=None) -> StateGeometry:
    """States with principal axes ``axes`` (default: the unit vectors) and these variances."""
    variances = np.asarray(variances, np.float64)
    n = len(variances)
    axes = np.eye(n) if axes is None else axes
    mean = np.zeros(n) if mean is None else mean
    second = axes @ np.diag(variances) @ axes.T + np.outer(mean, mean)
    return StateGeometry(mean, second, axes, variances)


def _orthogonal(seed: int, n: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q


def test_n_components_reaches_the_variance_fraction():
    geometry = _geometry([3.0, 1.0, 0.0, 0.0])
    assert geometry.n_components(0.75) == 1
    assert geometry.n_components(0.9) == 2
    assert geometry.n_components(1.0) == 2


def test_act_perturbation_is_zero_without_removal_and_overlaps_undefined():
    w = np.diag([1.0, 2.0, 3.0])
    values = perturbation_diagnostics(w, np.zeros((3, 3)), np.ones((1, 3)), _geometry([1.0, 1.0, 1.0]), 0.9)
    assert values["act_perturbation"] == 0.0
    assert all(math.isnan(values[k]) for k in OVERLAPS)


def test_act_perturbation_matches_the_closed_form():
    # E||D h||^2 = sum_ij D_ij^2 E[h_j^2] for uncorrelated units; with a mean, E[h h^T] = C + mu mu^T.
    rng = np.random.default_rng(0)
    w, d = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    variances, mean = np.array([4.0, 2.0, 1.0, 0.5]), np.array([0.3, -0.2, 0.0, 0.1])
    second = np.diag(variances) + np.outer(mean, mean)
    expected = np.trace(d @ second @ d.T) / np.trace(w @ second @ w.T)
    values = perturbation_diagnostics(w, d, np.ones((1, 4)), _geometry(variances, mean), 0.9)
    assert values["act_perturbation"] == pytest.approx(expected, rel=1e-12)
    # uncorrelated zero-mean units: E||D h||^2 = sum_ij D_ij^2 var_j
    centred = perturbation_diagnostics(w, d, np.ones((1, 4)), _geometry(variances), 0.9)
    assert centred["act_perturbation"] == pytest.approx((d**2 @ variances).sum() / (w**2 @ variances).sum(), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    d=hnp.arrays(np.float64, (5, 5), elements=st.floats(-10, 10, allow_nan=False, allow_subnormal=False)),
    seed=st.integers(0, 1000),
)
def test_overlaps_lie_in_the_unit_interval(d, seed):
    rng = np.random.default_rng(seed)
    geometry = _geometry(np.sort(rng.uniform(0, 1, 5))[::-1], axes=_orthogonal(seed, 5))
    values = perturbation_diagnostics(rng.normal(size=(5, 5)), d, rng.normal(size=(2, 5)), geometry, 0.8)
    if np.sum(d * d) == 0:
        assert all(math.isnan(values[k]) for k in OVERLAPS)
    else:
        for key in OVERLAPS:
            assert -1e-12 <= values[key] <= 1 + 1e-12
        # P D P is inside both one-sided projections
        assert values["pc_overlap"] <= min(values["pc_overlap_col"], values["pc_overlap_row"]) + 1e-12
    assert values["act_perturbation"] >= 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_overlap_is_one_inside_the_pc_span_and_zero_orthogonal_to_it(seed):
    rng = np.random.default_rng(seed)
    axes = _orthogonal(seed, 6)
    geometry = _geometry([5.0, 4.0, 0.01, 0.01, 0.0, 0.0], axes=axes)  # k = 2 at 90%
    inside, outside = axes[:, :2], axes[:, 2:]
    a = rng.normal(size=(6, 6))
    w = rng.normal(size=(6, 6))
    d_in = inside @ inside.T @ a @ inside @ inside.T
    d_out = outside @ outside.T @ a @ outside @ outside.T
    values_in = perturbation_diagnostics(w, d_in, rng.normal(size=(1, 6)), geometry, 0.9)
    values_out = perturbation_diagnostics(w, d_out, rng.normal(size=(1, 6)), geometry, 0.9)
    assert values_in["pc_k"] == 2
    for key in ("pc_overlap", "pc_overlap_col", "pc_overlap_row"):
        assert values_in[key] == pytest.approx(1.0, abs=1e-10)
        assert values_out[key] == pytest.approx(0.0, abs=1e-10)


def test_readout_overlap_sees_only_the_readout_row_space():
    w_hy = np.array([[1.0, 1.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]])  # rank 1: span{(1,1,0,0)}
    u = np.array([1.0, 1.0, 0.0, 0.0]) / np.sqrt(2)
    v = np.array([0.0, 1.0, 2.0, 0.0])
    geometry, w = _geometry([1.0, 1.0, 1.0, 1.0]), np.eye(4)
    assert perturbation_diagnostics(w, np.outer(u, v), w_hy, geometry, 0.9)["readout_overlap"] == pytest.approx(1.0)
    orthogonal = np.array([1.0, -1.0, 0.0, 0.0]) / np.sqrt(2)
    assert (
        perturbation_diagnostics(w, np.outer(orthogonal, v), w_hy, geometry, 0.9)["readout_overlap"]
        == pytest.approx(0.0, abs=1e-15)
    )


def test_numerically_zero_removal_has_undefined_overlaps():
    w = np.eye(3)
    values = perturbation_diagnostics(w, 1e-9 * np.ones((3, 3)), np.ones((1, 3)), _geometry([1.0, 1.0, 1.0]), 0.9, 1e-6)
    assert all(math.isnan(values[k]) for k in OVERLAPS)


def test_state_geometry_matches_a_direct_rollout():
    rng = np.random.default_rng(1)
    weights = [
        RNNWeights(rng.normal(size=(n, 2)), rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=(1, n)))
        for n in (3, 5)
    ]
    inputs = rng.normal(size=(4, 7, 2)).astype(np.float32)
    for w, geometry in zip(weights, state_geometry(weights, inputs, models_per_call=2)):
        model: TanhRNN = dense_model(w)
        states = np.concatenate([np.asarray(model.hidden_states(jnp.asarray(x)), np.float64) for x in inputs])
        np.testing.assert_allclose(geometry.mean, states.mean(0), atol=1e-6)
        np.testing.assert_allclose(geometry.second_moment, states.T @ states / len(states), atol=1e-6)
        centred = np.cov(states.T, bias=True)
        np.testing.assert_allclose(geometry.axes @ np.diag(geometry.variances) @ geometry.axes.T, centred, atol=1e-5)
        assert np.all(np.diff(geometry.variances) <= 1e-12)


def _row(task, subset, delta, removed, act, overlap=0.5, diverged=False):
    return dict(
        task=task, subset=subset, delta_fvu=delta, removed_mass=removed, act_perturbation=act, pc_overlap=overlap,
        pc_overlap_col=overlap, pc_overlap_row=overlap, readout_overlap=None if overlap is None else 0.1,
        diverged=diverged,
    )


def test_predictive_power_ranks_a_monotone_predictor_perfectly():
    rows = [_row("sine", "T_CC", 0.1 * i**2, removed=float(i), act=-float(i)) for i in range(1, 7)]
    rows += [_row("cdi", "T_CR", 0.2 * i, removed=float(7 - i), act=float(i)) for i in range(1, 6)]
    rows += [
        _row("sine", "none", 99.0, 0.0, 0.0, overlap=None),  # nothing removed: left out
        _row("sine", "T_RR", -99.0, 3.0, 3.0, diverged=True),  # diverged: left out
    ]
    table = {(r["scope"], r["predictor"]): r for r in predictive_power(rows)}
    assert table["sine", "removed_mass"]["spearman_rho"] == pytest.approx(1.0)
    assert table["sine", "act_perturbation"]["spearman_rho"] == pytest.approx(-1.0)
    assert table["cdi", "removed_mass"]["spearman_rho"] == pytest.approx(-1.0)
    assert table["cdi", "act_perturbation"]["spearman_rho"] == pytest.approx(1.0)
    assert table["all", "removed_mass"]["n"] == 11
    # a constant predictor has no rank correlation
    assert math.isnan(table["sine", "pc_overlap"]["spearman_rho"])
    assert {scope for scope, _ in table} == {"all", "sine", "cdi"}


def test_the_subspace_report_reads_its_runs_back_as_they_were_in_memory(tmp_path):
    from experiments.subspace_report import main
    from schurjax.pipeline import RESULT_COLUMNS
    from schurjax.results import read_csv, write_csv

    # pc_overlap varies within each task, so every predictor has ranks to correlate
    runs = {
        "sine": [_row("sine", "T_CC", 0.1 * i**2, float(i), 0.5 * i, overlap=0.1 * i) for i in range(1, 6)],
        "cdi": [_row("cdi", "T_CR", 0.2 * i, float(6 - i), 0.3 * i, overlap=0.9 - 0.1 * i) for i in range(1, 5)]
        + [_row("cdi", "T_RR", -9.0, 1.0, 1.0, diverged=True)],
    }
    for task, rows in runs.items():
        write_csv(tmp_path / task / "results.csv", rows, RESULT_COLUMNS)
    assert main([f"runs=[{tmp_path / 'sine'},{tmp_path / 'cdi'}]", f"out={tmp_path / 'report'}"]) == 0
    expected = predictive_power([row for rows in runs.values() for row in rows])
    written = read_csv(tmp_path / "report" / "predictive_power.csv")
    assert [(r["scope"], r["predictor"], int(r["n"])) for r in written] == [
        (r["scope"], r["predictor"], r["n"]) for r in expected
    ]
    # repr(float) round-trips: the correlations of the rows read back are those of the rows written
    # (NaN for the constant readout_overlap, equal here as well)
    np.testing.assert_array_equal([float(r["spearman_rho"]) for r in written], [r["spearman_rho"] for r in expected])
    assert (tmp_path / "report" / "diagnostics.png").stat().st_size > 0
    (tmp_path / "sine" / "results.csv").write_text("task,colour\nsine,red\n")
    assert main([f"runs=[{tmp_path / 'sine'}]", f"out={tmp_path / 'report'}"]) == 2


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(pc_variance=0.0), "diagnostics.pc_variance=0.0"),
        (dict(pc_variance=1.5), "diagnostics.pc_variance=1.5"),
        (dict(n_starts=0), "diagnostics.n_starts=0"),
        (dict(pair_starts=-1), "diagnostics.pair_starts=-1"),
        (dict(max_steps=0), "diagnostics.max_steps=0"),
        (dict(tolerance=-1.0), "diagnostics.tolerance=-1.0"),
        (dict(match_radius=0.0), "diagnostics.match_radius=0.0"),
        (dict(fixed_point_subsets=("T_RR",)), "must contain none"),
        (dict(fixed_point_subsets=("none", "T_XX")), "unknown subset 'T_XX'"),
    ],
)
def test_diagnostics_config_names_the_bad_override(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        DiagnosticsConfig(**override)
