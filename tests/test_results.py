import math

import numpy as np
import pytest

from schurjax.columns import declare, join_columns
from schurjax.pipeline import RESULT_COLUMNS, read_results, result_rows
from schurjax.results import (
    SUMMARY_COLUMNS,
    is_diverged,
    load_weights,
    mean_sem,
    read_csv,
    read_summary,
    read_table,
    save_weights,
    summarise,
    write_csv,
)
from schurjax.scoring import sensitivity
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


def test_results_read_back_typed_as_they_were_in_memory(tmp_path):
    extra = dict(s_delta_t_note="", n_blocks=40, train_loss=0.1, train_steps=3840, solved=False, source="", pc_k=3)
    row = _row(0, 0.02) | extra | dict(ctrl_raw_rank=float("nan"))
    write_csv(tmp_path / "r.csv", [row], RESULT_COLUMNS)
    (back,) = read_results(tmp_path / "r.csv")
    assert list(back) == list(RESULT_COLUMNS)
    for name in ("task", "width", "seed", "alpha", "n_R", "fvu", "train_steps", "solved", "diverged", "pc_k"):
        assert back[name] == row[name] and type(back[name]) is type(row[name]), name
    assert back["delta_fvu"] == 0.02 - 0.01  # repr(float) round-trips every bit
    # empty cells (never written, or empty text) are missing values
    assert back["replay_accuracy"] is None and back["source"] is None and back["ctrl_schur_median"] is None
    assert math.isnan(back["ctrl_raw_rank"])
    # two seeds with every metric: no NaN (which equals nothing) in the summary
    summary = summarise([_row(0, 0.02) | extra, _row(1, 0.04) | extra])
    write_csv(tmp_path / "s.csv", summary, SUMMARY_COLUMNS)
    assert read_summary(tmp_path / "s.csv") == summary


def test_a_table_with_an_unknown_column_or_a_mistyped_cell_is_refused(tmp_path):
    columns = declare(seed=int, diverged=bool)
    write_csv(tmp_path / "a.csv", [dict(seed=1, diverged=True)], ("seed", "diverged"))
    assert read_table(tmp_path / "a.csv", columns) == [dict(seed=1, diverged=True)]
    (tmp_path / "b.csv").write_text("seed,colour\n1,red\n")
    with pytest.raises(ValueError, match="unknown column.*colour"):
        read_table(tmp_path / "b.csv", columns)
    (tmp_path / "c.csv").write_text("seed,diverged\n1,yes\n")
    with pytest.raises(ValueError, match="line 2: column diverged: 'yes' is not a bool"):
        read_table(tmp_path / "c.csv", columns)
    # a table written before a column existed reads without it
    (tmp_path / "d.csv").write_text("seed\n4\n")
    assert read_table(tmp_path / "d.csv", columns) == [dict(seed=4)]


def test_a_row_of_csv_text_is_refused_by_is_diverged(tmp_path):
    assert is_diverged(dict(diverged=True)) and not is_diverged(dict(diverged=False))
    write_csv(tmp_path / "r.csv", [_row(0, 0.02)], RESULT_COLUMNS)
    (text,) = read_csv(tmp_path / "r.csv")
    with pytest.raises(TypeError, match="read_results"):
        is_diverged(text)


def test_column_declarations_refuse_repeated_names_and_unknown_types():
    with pytest.raises(ValueError, match=r"columns \['fvu'\] are declared by two stages"):
        join_columns(declare(fvu=float), declare(seed=int, fvu=float))
    with pytest.raises(TypeError, match="cell types"):
        declare(fvu=complex)


def test_result_rows_refuse_a_column_its_stage_did_not_declare():
    groups = [declare(**{name: kind}) for name, kind in RESULT_COLUMNS.items()]
    rows = result_rows([(group, [{name: 1}]) for group in groups for name in group])
    assert list(rows[0]) == list(RESULT_COLUMNS)
    with pytest.raises(ValueError, match=r"columns \['task_squared'\] are computed but not declared"):
        result_rows([(group, [{name: 1, f"{name}_squared": 1}]) for group in groups for name in group])
    with pytest.raises(ValueError, match="not RESULT_COLUMNS"):
        result_rows([(group, [{}]) for group in groups[1:]])


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
