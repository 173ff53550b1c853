import math

import numpy as np
import pytest

from schurjax.results import (
    RESULT_COLUMNS,
    load_weights,
    mean_sem,
    read_csv,
    save_weights,
    sensitivity,
    summarise,
    write_csv,
)
from schurjax.weights import RNNWeights


def _row(seed, fvu, diverged=False, s_delta_t=1.0):
    return dict(
        task="sine", construction="dense_orthogonal", width=64, alpha=0.9, subset="T_CC", seed=seed,
        fvu=fvu, delta_fvu=fvu - 0.01, s_delta_t=s_delta_t, replay_accuracy=None, removed_mass=0.1,
        nonnormal_fraction=0.3, mass_RR=0.1, mass_CR=0.2, mass_CC=0.1, n_R=4, rho=1.1, diverged=diverged,
    )


def test_mean_and_sem():
    mean, sem = mean_sem([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert sem == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1) / math.sqrt(3))
    assert math.isnan(mean_sem([5.0])[1])


def test_summary_excludes_and_counts_diverged_seeds():
    rows = [_row(0, 0.02), _row(1, 0.04), _row(2, 1e6, diverged=True)]
    by_metric = {r["metric"]: r for r in summarise(rows)}
    assert by_metric["fvu"]["mean"] == pytest.approx(0.03)
    assert by_metric["fvu"]["n"] == 2 and by_metric["fvu"]["n_diverged"] == 1
    assert "replay_accuracy" not in by_metric  # missing everywhere -> no summary row


def test_summary_leaves_missing_values_out_of_n():
    rows = [_row(0, 0.02, s_delta_t=None), _row(1, 0.04, s_delta_t=3.0)]
    by_metric = {r["metric"]: r for r in summarise(rows)}
    assert by_metric["s_delta_t"]["n"] == 1 and by_metric["s_delta_t"]["mean"] == 3.0


def test_sensitivity_is_missing_with_a_reason_for_zero_mass():
    assert sensitivity(0.5, 0.1, 1e-6) == (pytest.approx(5.0), "")
    value, note = sensitivity(0.5, 1e-9, 1e-6)
    assert value is None and "numerically zero" in note


def test_csv_round_trip_writes_missing_as_empty(tmp_path):
    rows = [_row(0, 0.02) | {"s_delta_t_note": "", "train_loss": 0.1, "n_blocks": 40, "removed_mass": 0.1}]
    write_csv(tmp_path / "r.csv", rows, RESULT_COLUMNS)
    (back,) = read_csv(tmp_path / "r.csv")
    assert list(back) == list(RESULT_COLUMNS)
    assert back["replay_accuracy"] == "" and float(back["fvu"]) == 0.02
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_weights_round_trip_in_pytorch_orientation(tmp_path):
    rng = np.random.default_rng(0)
    weights = RNNWeights(w_xh=rng.normal(size=(5, 2)), w_hh=rng.normal(size=(5, 5)), w_hy=rng.normal(size=(3, 5)))
    save_weights(tmp_path / "m.npz", weights)
    with np.load(tmp_path / "m.npz") as archive:
        assert sorted(archive.files) == ["W_hh", "W_hy", "W_xh"]
    back = load_weights(tmp_path / "m.npz")
    for name in ("w_xh", "w_hh", "w_hy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(weights, name))
    assert back.b_h is None
