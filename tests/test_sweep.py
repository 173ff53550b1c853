"""Sweeps that summarise themselves (experiments.sweep, experiments.collect) and result tables as
DataFrames (schurjax.tables): end to end through the real command line at tiny sizes, and on
sweep directories written by hand."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.sweep import (
    SWEEP_RESULTS,
    SWEEP_SUMMARY,
    headline_metric,
    summarise_sweep,
)
from schurjax.interventions import SUBSETS
from schurjax.pipeline import RESULT_COLUMNS
from schurjax.results import (
    SUMMARY_COLUMNS,
    read_csv,
    summarise,
    write_csv,
)
from schurjax.tables import (
    join_jobs,
    load_results,
    load_summary,
    sweep_jobs,
    swept_keys,
)

ROOT = Path(__file__).resolve().parents[1]
# Two seeds (so that SEMs exist) of one tiny flipflop network; no fixed points, no random controls.
TINY = ["task=flipflop", "seeds=2", "widths=[8]", "train.steps=16", "train.batch_size=8", "train.chunk_steps=8",
        "eval.trials=64", "eval.random_controls=0", "diagnostics.fixed_points=false", "progress=false"]
ROWS_PER_JOB = 2 * len(SUBSETS)


def multirun(sweep_dir: Path, cache: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", "-m", *TINY, f"hydra.sweep.dir={sweep_dir}", f"cache_dir={cache}",
         *overrides],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def collect(sweep_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.collect", str(sweep_dir)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def alpha_sweep(tmp_path_factory):
    """An α sweep with the basic launcher; its model cache serves the later sweeps (same training)."""
    root = tmp_path_factory.mktemp("alpha_sweep")
    done = multirun(root / "sweep", root / "cache", "alpha=0.85,0.95")
    assert done.returncode == 0, done.stderr
    return root / "sweep", root / "cache"


def sweep_outputs(sweep_dir: Path) -> list[Path]:
    return [sweep_dir / name for name in (SWEEP_RESULTS, SWEEP_SUMMARY, "figures/sweep_delta_fvu.png",
                                          "figures/sweep_delta_fvu.pdf")]


def test_a_multirun_summarises_itself(alpha_sweep):
    sweep_dir, _ = alpha_sweep
    jobs = sweep_jobs(sweep_dir)
    assert [job.number for job in jobs] == [0, 1] and swept_keys(jobs) == ["alpha"]
    rows = read_csv(sweep_dir / SWEEP_RESULTS)
    # alpha is a column already: no second one; every job's rows verbatim, after its job number
    assert list(rows[0]) == ["job", *RESULT_COLUMNS]
    for job, alpha in zip(jobs, ("0.85", "0.95")):
        own = read_csv(job.directory / "results.csv")
        assert len(own) == ROWS_PER_JOB and {r["alpha"] for r in own} == {alpha}
        assert [r for r in rows if r["job"] == str(job.number)] == [{"job": str(job.number)} | r for r in own]
    summary = read_csv(sweep_dir / SWEEP_SUMMARY)
    assert list(summary[0]) == ["job", *SUMMARY_COLUMNS]
    assert len(summary) == sum(len(read_csv(job.directory / "summary.csv")) for job in jobs)
    assert all(path.stat().st_size > 0 for path in sweep_outputs(sweep_dir))


def test_a_failed_job_leaves_the_others_summarised_and_is_listed(alpha_sweep, tmp_path):
    _, cache = alpha_sweep
    # Hydra stops a sweep at a failed job, before its end-of-multirun callbacks: the summary comes all the same
    done = multirun(tmp_path, cache, "alpha=0.95,1.5")
    assert done.returncode != 0 and "alpha must lie in (0, 1]" in done.stderr
    assert "1 of 2 jobs" in done.stderr and "1_alpha=1.5" in done.stderr
    rows = read_csv(tmp_path / SWEEP_RESULTS)
    assert len(rows) == ROWS_PER_JOB and {(r["job"], r["alpha"]) for r in rows} == {("0", "0.95")}


def test_submitit_local_sweep_gets_a_column_per_swept_override(alpha_sweep, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    _, cache = alpha_sweep
    # lr 1e-3 is the protocol's own: that job reuses the cached models, the other trains
    done = multirun(tmp_path, cache, "hydra/launcher=submitit_local", "train.lr=0.001,0.002")
    assert done.returncode == 0, done.stderr
    rows = read_csv(tmp_path / SWEEP_RESULTS)
    assert list(rows[0])[:2] == ["job", "train.lr"]
    assert {(r["job"], r["train.lr"]) for r in rows} == {("0", "0.001"), ("1", "0.002")}
    assert {r["train.lr"] for r in read_csv(tmp_path / SWEEP_SUMMARY)} == {"0.001", "0.002"}
    losses = {lr: {r["train_loss"] for r in rows if r["train.lr"] == lr} for lr in ("0.001", "0.002")}
    assert losses["0.001"].isdisjoint(losses["0.002"])  # the override reached the jobs' training
    assert all(path.stat().st_size > 0 for path in sweep_outputs(tmp_path))


def test_collect_rebuilds_an_interrupted_sweep_and_lists_the_unfinished_job(alpha_sweep, tmp_path):
    sweep_dir = shutil.copytree(alpha_sweep[0], tmp_path / "sweep")
    for path in sweep_outputs(sweep_dir):
        path.unlink()
    unfinished = sweep_jobs(sweep_dir)[1].directory
    (unfinished / "results.csv").unlink()
    (unfinished / "summary.csv").unlink()
    done = collect(sweep_dir)
    assert done.returncode == 0, done.stderr
    assert "1 of 2 jobs" in done.stderr and unfinished.name in done.stderr
    finished = [r for r in read_csv(alpha_sweep[0] / SWEEP_RESULTS) if r["job"] == "0"]
    assert read_csv(sweep_dir / SWEEP_RESULTS) == finished and len(finished) == ROWS_PER_JOB
    assert {r["job"] for r in read_csv(sweep_dir / SWEEP_SUMMARY)} == {"0"}
    assert all(path.stat().st_size > 0 for path in sweep_outputs(sweep_dir))


def test_collect_without_results_is_one_clear_error(alpha_sweep, tmp_path):
    sweep_dir = shutil.copytree(alpha_sweep[0], tmp_path / "sweep")
    for path in sweep_dir.glob("*/results.csv"):
        path.unlink()
    for target, message in ((sweep_dir, "none of its 2 jobs has a results.csv"),
                            (tmp_path / "elsewhere", "does not exist")):
        done = collect(target)
        assert done.returncode == 1 and f"{target}" in done.stderr and message in done.stderr
        assert "Traceback" not in done.stderr


def test_tables_load_typed_columns_from_runs_sweeps_and_lists(alpha_sweep, tmp_path):
    sweep_dir, _ = alpha_sweep
    results = load_results(sweep_dir)
    assert len(results) == 2 * ROWS_PER_JOB and list(results.columns) == ["job", *RESULT_COLUMNS]
    for column in ("job", "width", "seed", "n_R", "n_blocks", "pc_k", "train_steps"):
        assert results[column].dtype == np.int64, column
    assert results["diverged"].dtype == bool and not results["diverged"].any()
    assert results["solved"].dtype == "boolean" and results["solved"].isna().all()  # no solved criterion
    assert results["replay_accuracy"].isna().all()  # copy task only
    assert sorted(results["alpha"].unique()) == [0.85, 0.95]
    none = results["subset"] == "none"
    assert (results.loc[none, "delta_fvu"] == 0.0).all() and results.loc[none, "s_delta_t"].isna().all()
    # without sweep_results.csv, the same frame from the jobs themselves
    bare = shutil.copytree(sweep_dir, tmp_path / "bare")
    (bare / SWEEP_RESULTS).unlink()
    (bare / SWEEP_SUMMARY).unlink()
    pd.testing.assert_frame_equal(load_results(bare), results)
    pd.testing.assert_frame_equal(load_summary(bare), load_summary(sweep_dir))
    # a run directory and a results.csv, concatenated; rows without a job have none
    job = sweep_jobs(sweep_dir)[0].directory
    mixed = load_results([sweep_dir, job, job / "results.csv"])
    assert len(mixed) == 4 * ROWS_PER_JOB and mixed["job"].dtype == "Int64"
    assert mixed["job"].isna().sum() == 2 * ROWS_PER_JOB
    from_job = mixed.iloc[2 * ROWS_PER_JOB:3 * ROWS_PER_JOB].drop(columns="job").reset_index(drop=True)
    pd.testing.assert_frame_equal(from_job, results.iloc[:ROWS_PER_JOB].drop(columns="job"))
    summary = load_summary(sweep_dir)
    assert list(summary.columns) == ["job", *SUMMARY_COLUMNS]
    assert summary["n"].dtype == np.int64 and summary["sem"].dtype == np.float64
    fvu = summary[(summary["metric"] == "fvu") & (summary["subset"] == "none") & (summary["job"] == 0)]
    kept = results[(results["subset"] == "none") & (results["job"] == 0)]["fvu"]
    assert fvu["mean"].item() == pytest.approx(kept.mean(), rel=1e-12) and fvu["n"].item() == 2


def test_tables_parse_cells_by_column(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("count,gappy,flag,solved,diverged,value,note\n3,1,True,,False,nan,a\n-4,,false,True,True,,\n")
    frame = load_results(path)
    assert frame["count"].dtype == np.int64 and frame["count"].tolist() == [3, -4]
    assert frame["gappy"].dtype == "Int64" and frame["gappy"].isna().tolist() == [False, True]
    assert frame["flag"].dtype == bool and frame["flag"].tolist() == [True, False]
    assert frame["solved"].dtype == "boolean" and frame["solved"].isna().tolist() == [True, False]
    assert frame["diverged"].dtype == bool and frame["diverged"].tolist() == [False, True]
    assert frame["value"].dtype == np.float64 and frame["value"].isna().all()
    assert frame["note"].iloc[0] == "a" and pd.isna(frame["note"].iloc[1])
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_results(tmp_path)
    with pytest.raises(ValueError, match="no path given"):
        load_summary([])


def fake_sweep(sweep_dir: Path, jobs: list[tuple[list[str], list[dict]]]) -> None:
    """A sweep directory as Hydra leaves it: per job its number, overrides and tables."""
    for number, (overrides, rows) in enumerate(jobs):
        job = sweep_dir / f"{number}_job"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {number}\n")
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        write_csv(job / "results.csv", rows, RESULT_COLUMNS)
        write_csv(job / "summary.csv", summarise(rows), SUMMARY_COLUMNS)


def result_rows(task: str, construction: str, seeds=(0, 1)) -> list[dict]:
    replay = task == "copy"
    return [
        {"task": task, "construction": construction, "width": 8, "seed": seed, "alpha": 0.9, "subset": name,
         "fvu": 0.5, "delta_fvu": 0.1 * i + seed, "replay_accuracy": 1 - 0.1 * i if replay else None,
         "diverged": False}
        for seed in seeds
        for i, name in enumerate(["none", "T_RR", "T_CR", "T_CC", "T_RR+T_CR", "T_RR+T_CC", "T_CR+T_CC",
                                  "T_RR+T_CR+T_CC"])
    ]


def test_categorical_sweeps_and_headline_metrics(tmp_path):
    # over constructions: a column already, so no override column; over tasks: one figure per headline metric
    fake_sweep(tmp_path / "constructions", [
        (["seeds=2", "constructions=[dense_orthogonal]"], result_rows("sine", "dense_orthogonal")),
        (["seeds=2", "constructions=[cayley]"], result_rows("sine", "cayley")),
    ])
    assert summarise_sweep(tmp_path / "constructions") == []
    rows = read_csv(tmp_path / "constructions" / SWEEP_RESULTS)
    assert list(rows[0])[:2] == ["job", "task"] and len(rows) == 32
    assert (tmp_path / "constructions" / "figures" / "sweep_delta_fvu.png").stat().st_size > 0
    fake_sweep(tmp_path / "tasks", [
        (["task=copy", "seeds=[0]"], result_rows("copy", "cayley", seeds=(0,))),
        (["task=sine", "seeds=[1]"], result_rows("sine", "cayley", seeds=(1,))),
    ])
    summarise_sweep(tmp_path / "tasks")
    assert {path.name for path in (tmp_path / "tasks" / "figures").iterdir()} == {
        f"sweep_{metric}.{ext}" for metric in ("replay_accuracy", "delta_fvu") for ext in ("png", "pdf")
    }
    # seeds split over jobs: a column in the summary, which has none, but not in the results
    assert list(join_jobs(sweep_jobs(tmp_path / "tasks"), "summary.csv").columns)[:2] == ["job", "seeds"]
    assert list(read_csv(tmp_path / "tasks" / SWEEP_RESULTS)[0])[:2] == ["job", "task"]
    frame = load_results(tmp_path / "tasks")
    assert headline_metric("copy", frame[frame["task"] == "copy"]) == "replay_accuracy"
    assert headline_metric("sine", frame[frame["task"] == "sine"]) == "delta_fvu"
    # jobs that split the seeds only: nothing swept to plot against, all seeds pooled
    fake_sweep(tmp_path / "seeds", [([f"seeds=[{s}]"], result_rows("sine", "cayley", seeds=(s,))) for s in (0, 1)])
    summarise_sweep(tmp_path / "seeds")
    assert (tmp_path / "seeds" / "figures" / "sweep_delta_fvu.pdf").stat().st_size > 0
    # a task this process does not know is judged by what its rows hold
    assert headline_metric("my_task", frame[frame["task"] == "copy"]) == "replay_accuracy"
