"""Several leading-sector thresholds in one run: the same numbers as one run per α."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from schurjax.evaluate import EvalConfig
from schurjax.interventions import SUBSETS
from schurjax.pipeline import RunSpec, read_results, run
from schurjax.subspace import DiagnosticsConfig
from schurjax.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = (0.85, 0.95)


def _spec(alpha) -> RunSpec:
    return RunSpec(
        task="flipflop",
        seeds=(0, 1),
        widths=(8,),
        alpha=alpha,
        train=TrainConfig(steps=24, batch_size=16, chunk_steps=12),
        eval=EvalConfig(trials=32, random_controls=2),
        diagnostics=DiagnosticsConfig(fixed_points=True, fixed_point_subsets=("none", "T_CC"), n_starts=8),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run over both thresholds and one run per threshold, sharing their trained models."""
    root = tmp_path_factory.mktemp("alphas")
    cache = root / "cache"
    together = run(_spec(ALPHAS), root / "together", progress=False, cache_dir=cache)
    alone = {alpha: run(_spec(alpha), root / f"alpha{alpha}", progress=False, cache_dir=cache) for alpha in ALPHAS}
    return root, together, alone


def test_an_alpha_list_gives_every_threshold_the_rows_of_its_own_run(runs):
    _, together, alone = runs
    assert len(together) == len(ALPHAS) * 2 * len(SUBSETS)
    for alpha in ALPHAS:
        # identical values, not merely close: each α is the same computation as in its own run
        assert [r for r in together if r["alpha"] == alpha] == alone[alpha]


def test_an_alpha_list_writes_one_table_with_an_alpha_column_and_figures_per_alpha(runs):
    root, together, _ = runs
    written = read_results(root / "together" / "results.csv")
    assert [r["alpha"] for r in written] == [r["alpha"] for r in together]
    for alpha in ALPHAS:
        assert (root / "together" / "figures" / f"flipflop_subsets_alpha{alpha:g}.png").is_file()
    with open(root / "together" / "fixed_point_summary.csv") as handle:
        assert {float(r["alpha"]) for r in csv.DictReader(handle)} == set(ALPHAS)


@pytest.mark.parametrize("alpha", ["[]", "[0.9,0.9]", "[0.9,1.5]"])
def test_a_bad_alpha_list_is_refused_before_any_compute(alpha, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "experiments.run", "task=flipflop", f"alpha={alpha}", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 2 and "alpha" in done.stderr and "Traceback" not in done.stderr
