"""The paper reproduction: report logic on constructed rows, and the quick mode through the CLI."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from experiments.reproduction.report import (
    PAPER_COPY,
    numeric_verdict,
    reproduction_report,
)
from experiments.reproduction.suites import CI_SUMMARY_COLUMNS, confidence_summary
from schurjax.interventions import SUBSETS, subset_name
from schurjax.results import SUMMARY_COLUMNS, read_csv

ROOT = Path(__file__).resolve().parents[1]
NAMES = [subset_name(s) for s in SUBSETS]


def _row(task, construction, seed, subset, **metrics):
    base = dict(task=task, construction=construction, width=72 if task == "copy" else 64, seed=seed, alpha=0.9,
                subset=subset, diverged=False, train_steps=100, n_R=4)
    return base | metrics


def _copy_rows(accuracy: dict[str, float], cayley_drop: float) -> list[dict]:
    rows = []
    for seed in range(3):
        for name in NAMES:
            # seeds scatter by ±0.001 around the given means
            scattered = accuracy[name] + 0.001 * (seed - 1)
            rows.append(_row("copy", "dense_orthogonal", seed, name, replay_accuracy=scattered))
            dropped = 1.0 - (cayley_drop if name != "none" else 0)
            rows.append(_row("copy", "cayley", seed, name, replay_accuracy=dropped))
    return rows


def _neuro_rows(profile: dict[str, dict[str, float]], seeds: int) -> list[dict]:
    rows = []
    for task, deltas in profile.items():
        for seed in range(seeds):
            for name in NAMES:
                delta = 0.0 if name == "none" else deltas.get(name, 0.5) * (1 + 0.05 * seed)
                rows.append(_row(task, "dense_orthogonal", seed, name, fvu=0.01 + delta, delta_fvu=delta,
                                 s_delta_t=None if name == "none" else 10 * delta))
    return rows


def _report(copy_rows, neuro_rows):
    return reproduction_report(copy_rows=copy_rows, paper_neuro=neuro_rows, ci_neuro=neuro_rows, main_alpha=0.9,
                               copy_budget=8000, seconds={"total": 1.0}, reused={}, variants={}, diverged=0,
                               protocol="paper", protocols={"copy": "Adam lr 0.001"})


def _claim_verdicts(report: str) -> list[str]:
    section = report.split("### The paper's copy claims")[1].split("## Table 1")[0]
    rows = [line for line in section.splitlines() if line.startswith(("| dense", "| cayley"))]
    return [line.rsplit("|", 2)[-2].strip() for line in rows]


def test_the_paper_pattern_reproduces_every_copy_claim_and_a_flat_one_does_not():
    neuro = _neuro_rows({"flipflop": {"T_CR": 0.1, "T_RR": 0.001}, "sine": {"T_CC": 2.0, "T_RR": 0.01}}, seeds=3)
    assert _claim_verdicts(_report(_copy_rows(PAPER_COPY, cayley_drop=0.0), neuro)) == ["reproduced"] * 4
    flat = {name: 0.9 for name in NAMES}
    assert _claim_verdicts(_report(_copy_rows(flat, cayley_drop=0.05), neuro)) == [
        "reproduced", "not reproduced", "not reproduced", "not reproduced"
    ]


def test_task_dependence_claim_follows_the_block_rankings():
    copy = _copy_rows(PAPER_COPY, cayley_drop=0.0)
    differ = _report(copy, _neuro_rows({"flipflop": {"T_CR": 0.1}, "sine": {"T_CC": 2.0}}, seeds=3))
    alike = _report(copy, _neuro_rows({"flipflop": {"T_CC": 0.9}, "sine": {"T_CC": 2.0}}, seeds=3))
    assert "reproduced (the rankings differ" in differ
    assert "not reproduced (every task ranks the blocks alike)" in alike


@pytest.mark.parametrize(
    ("ours", "paper", "sem", "verdict"),
    [
        ([1.0, 1.1, 0.9], 1.05, 0.05, "consistent"),  # |diff| 0.05 < 2 × combined SEM (≈0.13)
        ([1.0, 1.1, 0.9], 2.0, 0.05, "same order"),  # factor 2
        ([1.0, 1.1, 0.9], 5.0, 0.05, "differs"),  # factor 5
        ([], 1.0, None, "no data"),
    ],
)
def test_numeric_verdict(ours, paper, sem, verdict):
    assert numeric_verdict(ours, paper, sem) == verdict


def test_confidence_interval_is_the_student_t_interval():
    rows = _neuro_rows({"sine": {"T_CC": 2.0}}, seeds=4)
    summary = confidence_summary(rows)
    entry = next(r for r in summary if r["subset"] == "T_CC" and r["metric"] == "delta_fvu")
    values = np.array([2.0 * (1 + 0.05 * s) for s in range(4)])
    low, high = scipy.stats.t.interval(0.95, 3, loc=values.mean(), scale=scipy.stats.sem(values))
    assert entry["ci95_low"] == pytest.approx(low) and entry["ci95_high"] == pytest.approx(high)
    one_seed = confidence_summary(_neuro_rows({"sine": {"T_CC": 2.0}}, seeds=1))
    assert all(math.isnan(r["ci95_low"]) for r in one_seed)


def test_quick_reproduction_through_the_cli_writes_and_publishes_everything(tmp_path):
    docs = tmp_path / "docs"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.paper", "quick=true", "publish=true", "progress=false",
         "variants={cdi_lr5e-4: {task: cdi, train: {lr: 5.0e-4}}}",
         f"hydra.run.dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", f"docs_dir={docs}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr
    for protocol in ("default", "paper"):
        run, published = tmp_path / "run" / protocol, docs / "reproduction" / protocol
        for name in ("copy_summary", "alpha_table", "neuro_summary"):
            table = read_csv(run / "tables" / f"{name}.csv")
            assert list(table[0]) == list(SUMMARY_COLUMNS)
            assert (published / f"{name}.csv").read_bytes() == (run / "tables" / f"{name}.csv").read_bytes()
        assert list(read_csv(run / "tables" / "neuro_ci_summary.csv")[0]) == list(CI_SUMMARY_COLUMNS)
        # α only moves the partition: the copy controllers are trained once and analysed three times
        alpha_rows = read_csv(run / "tables" / "alpha_table.csv")
        full = {r["alpha"]: r["mean"] for r in alpha_rows if r["metric"] == "fvu" and r["subset"] == "none"
                and r["construction"] == "dense_orthogonal"}
        assert set(full) == {"0.85", "0.9", "0.95"} and len(set(full.values())) == 1
        neuro = read_csv(run / "tables" / "neuro_summary.csv")
        assert {r["task"] for r in neuro} == {"flipflop", "sine", "cdi"}
        assert {r["n"] for r in neuro if r["metric"] == "fvu"} == {"1"}  # quick: seeds=1 compared with the paper
        for stem in ("figure1", "figure1_mean_sem", "figure2", "figure2_ci"):
            for suffix in (".png", ".pdf"):
                assert (run / "figures" / f"{stem}{suffix}").stat().st_size > 0
                assert (published / f"{stem}{suffix}").exists()
        for suite in ("copy", "copy_alpha0.85", "copy_alpha0.95", "neuro/flipflop", "neuro/sine", "neuro/cdi",
                      "variants/cdi_lr5e-4"):
            assert (run / suite / "results.csv").exists()
        # every run records its protocol
        assert f'"protocol": "{protocol}"' in (run / "neuro" / "cdi" / "spec.json").read_text()
    report = (docs / "REPRODUCTION.md").read_text()
    for heading in ("## How each protocol trains", "## The paper's numbers beside ours",
                    "## Reproduction of the paper's experiments: default training protocol",
                    "## Reproduction of the paper's experiments: paper training protocol", "### Copy suite",
                    "#### The paper's copy claims", "### Table 1", "### Neuro suite",
                    "### Investigations beyond the paper's protocol", "#### cdi_lr5e-4", "### Where our protocol"):
        assert heading in report
    assert "](reproduction/default/figure1.png)" in report and "](reproduction/paper/figure1.png)" in report
    assert "](figures/" not in report and "training revision" in report
    # the variants train with their own settings: the same seeds, other models than the main suite
    spec = (tmp_path / "run" / "paper" / "variants" / "cdi_lr5e-4" / "spec.json").read_text()
    assert '"lr": 0.0005' in spec and '"steps": 60' in spec
