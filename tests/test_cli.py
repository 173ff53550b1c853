"""End-to-end runs through the real command line, at tiny step counts."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schurjax.fixed_points import FIXED_POINT_COLUMNS
from schurjax.interventions import SUBSETS, subset_name
from schurjax.pipeline import RESULT_COLUMNS, read_results
from schurjax.results import SUMMARY_COLUMNS, read_csv, read_summary

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.steps=12", "train.batch_size=8", "train.chunk_steps=6", "eval.trials=32", "diagnostics.n_starts=32",
        "progress=false"]


def run_cli(tmp_path: Path, *overrides: str, module: str = "experiments.run") -> subprocess.CompletedProcess:
    # Caches of its own per test, so tests never reuse each other's (or a user's) models or programs.
    caches = [f"cache_dir={tmp_path}/cache", f"compilation_cache={tmp_path}/compilation_cache"]
    return subprocess.run(
        [sys.executable, "-m", module, f"hydra.run.dir={tmp_path}", *caches, *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_sine_run_writes_the_output_contract(tmp_path):
    done = run_cli(tmp_path, "task=sine", "seeds=2", "widths=[8]", *TINY)
    assert done.returncode == 0, done.stderr
    rows = read_results(tmp_path / "results.csv")
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert len(rows) == 2 * len(SUBSETS)
    assert [r["subset"] for r in rows[:8]] == [subset_name(s) for s in SUBSETS]
    assert {(r["seed"], r["width"], r["construction"]) for r in rows} == {
        (0, 8, "dense_orthogonal"),
        (1, 8, "dense_orthogonal"),
    }
    for row in rows:
        assert row["replay_accuracy"] is None  # copy task only
        if row["subset"] == "none":
            assert row["delta_fvu"] == 0.0 and row["s_delta_t"] is None
    summary = read_summary(tmp_path / "summary.csv")
    assert list(summary[0]) == list(SUMMARY_COLUMNS)
    fvu_none = [r for r in summary if r["metric"] == "fvu" and r["subset"] == "none"]
    assert len(fvu_none) == 1 and fvu_none[0]["n"] == 2
    expected_mean = np.mean([r["fvu"] for r in rows if r["subset"] == "none"])
    assert fvu_none[0]["mean"] == pytest.approx(expected_mean)
    for seed in (0, 1):
        with np.load(tmp_path / "models" / f"sine_dense_orthogonal_w8_s{seed}.npz") as weights:
            assert weights["W_xh"].shape == (8, 1)
            assert weights["W_hh"].shape == (8, 8)
            assert weights["W_hy"].shape == (1, 8)
    none_rows = [r for r in rows if r["subset"] == "none"]
    assert all(r["act_perturbation"] == 0.0 and r["pc_overlap"] is None for r in none_rows)
    with open(tmp_path / "fixed_points.csv") as handle:
        assert handle.readline().strip().split(",") == list(FIXED_POINT_COLUMNS)
    assert len(read_csv(tmp_path / "fixed_point_summary.csv")) == 2 * 4 * 3  # models x subsets x cues
    assert (tmp_path / "figures" / "sine_fixed_points.png").stat().st_size > 0
    assert (tmp_path / "fixed_points.npz").stat().st_size > 0
    assert (tmp_path / "figures" / "sine_subsets.png").stat().st_size > 0
    assert (tmp_path / "figures" / "sine_subsets.pdf").stat().st_size > 0
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    log = (tmp_path / "run.log").read_text()
    assert "trained 2 models" in log
    # the timing table: every stage, and shares that add up
    table = log.split("time per stage")[1].splitlines()[1:]
    stages = {line[:22].strip(): float(line.split()[-2]) for line in table if line.endswith("%")}
    assert list(stages) == [
        "start-up", "training", "held-out set", "Schur + ablations", "evaluation", "random controls",
        "subspace diagnostics", "writing", "fixed points", "other", "total",
    ]
    assert stages["total"] == 100.0 and sum(stages.values()) == pytest.approx(200.0, abs=0.1 * len(stages))
    # the run records its protocol, and what the overrides changed in it
    assert "training protocol: default (" in log and "changed from default: steps=12" in log
    assert '"protocol": "default"' in (tmp_path / "spec.json").read_text()


def test_copy_run_mixes_widths_and_parametrisations(tmp_path):
    done = run_cli(
        tmp_path, "task=copy", "seeds=1", "widths=[6,8]", "constructions=[dense_normal,cayley]",
        "task.params.lags=4", "task.eval_params.lags=16", *TINY,
    )
    assert done.returncode == 0, done.stderr
    rows = read_results(tmp_path / "results.csv")
    assert len(rows) == 2 * 2 * len(SUBSETS)
    assert all(0.0 <= r["replay_accuracy"] <= 1.0 for r in rows)
    # copy trains until solved within the budget; 12 steps solve nothing, so all use the budget
    assert {(r["train_steps"], r["solved"]) for r in rows} == {(12, False)}
    # Cayley iterates are normal: no nonnormal coupling mass up to float32 round-off.
    for row in rows:
        if row["construction"] == "cayley":
            assert row["nonnormal_fraction"] < 1e-5
            if row["subset"] != "none":
                assert row["s_delta_t"] is None and "numerically zero" in row["s_delta_t_note"]
    assert {(r["construction"], r["width"]) for r in rows} == {
        ("dense_normal", 6), ("dense_normal", 8), ("cayley", 6), ("cayley", 8),
    }


@pytest.mark.parametrize(
    "override, message",
    [
        ("alpha=1.5", "alpha must lie in (0, 1]"),
        ("seeds=0", "seeds=0"),
        ("train.steps=2.5", "train.steps must be a positive integer"),
        ("eval.trials=1", "eval.trials must be an integer >= 2"),
        ("task.params.f_min=0.5", "f_min=0.5"),
        ("+task.params.frequency=2", "unknown parameter(s) frequency"),
        ("widths=[]", "widths is empty"),
        ("constructions=[]", "constructions is empty"),
        ("constructions=[orthogonal]", "unknown construction 'orthogonal'"),
        ("train.batch_size=0", "train.batch_size must be a positive integer"),
        ("train.lr=-1", "train.lr must be a positive finite number"),
        ("seeds=[-1]", "seeds must be non-negative integers"),
        ("seeds=abc", "seeds='abc'"),
        ("alpha=0", "alpha must lie in (0, 1]"),
        ("train.until_solved=true", "needs a solved criterion, which task 'sine' does not define"),
        ("eval.random_controls=-2", "eval.random_controls must be an integer >= 0"),
        ("constructions=[dense_normal]", "even width"),
        ("diagnostics.pc_variance=0", "diagnostics.pc_variance=0"),
        ("train.protocol=fast", "train.protocol=fast: task sine has the protocols default, paper"),
        ("train.clip_norm=0", "train.clip_norm must be a positive finite number"),
        ("train.decay=linear", "train.decay='linear' is not one of constant, cosine"),
        ("train.warmup_steps=20", "train.warmup_steps must be an integer in [0, train.steps=12)"),
    ],
)
def test_bad_configuration_is_one_clear_error(tmp_path, override, message):
    extra = ["widths=[7]"] if "dense_normal" in override else []
    done = run_cli(tmp_path, "task=sine", *extra, *TINY, override)
    assert done.returncode != 0
    assert message in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results.csv").exists()


def test_unknown_task_names_the_choices(tmp_path):
    done = run_cli(tmp_path, "task=sinus", *TINY)
    assert done.returncode != 0
    assert "sinus" in done.stderr and "flipflop" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_config_key_is_a_hydra_error_without_traceback(tmp_path):
    done = run_cli(tmp_path, "task=sine", "trian.steps=10", *TINY)
    assert done.returncode != 0
    assert "trian" in done.stderr and "Traceback" not in done.stderr


def test_alpha_sweep_and_rerun_reuse_trained_models_and_reproduce_bitwise(tmp_path):
    common = ["task=flipflop", "seeds=2", "widths=[8]", *TINY, "eval.random_controls=2"]
    first = run_cli(tmp_path / "a", *common, f"cache_dir={tmp_path}/cache", "alpha=0.9")
    assert first.returncode == 0, first.stderr
    assert "reusing" not in first.stderr
    # same config again, in another directory: nothing trains, every byte of the table repeats
    again = run_cli(tmp_path / "b", *common, f"cache_dir={tmp_path}/cache", "alpha=0.9")
    assert "reusing 2 trained model(s)" in again.stderr
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    # another alpha changes the partition only: the models are reused, the weights identical
    other = run_cli(tmp_path / "c", *common, f"cache_dir={tmp_path}/cache", "alpha=0.5")
    assert "reusing 2 trained model(s)" in other.stderr
    for seed in (0, 1):
        name = f"models/flipflop_dense_orthogonal_w8_s{seed}.npz"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()
    # a different training config trains afresh
    longer = run_cli(tmp_path / "d", *common, f"cache_dir={tmp_path}/cache", "train.steps=18")
    assert "reusing" not in longer.stderr


def test_training_is_deterministic_without_a_cache(tmp_path):
    common = ["task=sine", "seeds=1", "widths=[6]", *TINY, "eval.random_controls=0", "cache_dir=null"]
    for name in ("a", "b"):
        assert run_cli(tmp_path / name, *common, "compilation_cache=null").returncode == 0
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()


def test_programs_loaded_from_the_compilation_cache_give_byte_identical_results(tmp_path):
    common = ["task=flipflop", "seeds=1", "widths=[8]", *TINY, "eval.random_controls=2", "cache_dir=null",
              f"compilation_cache={tmp_path}/xla"]
    for name in ("cold", "warm"):
        assert run_cli(tmp_path / name, *common).returncode == 0
    assert len(list((tmp_path / "xla").glob("*-cache"))) > 10  # training, evaluation, controls, fixed points, data
    for name in ("results.csv", "fixed_points.csv"):
        expected = (tmp_path / "cold" / name).read_bytes()
        assert (tmp_path / "warm" / name).read_bytes() == expected
    uncached = run_cli(tmp_path / "uncached", *common, "compilation_cache=null")
    assert uncached.returncode == 0
    assert (tmp_path / "uncached" / "results.csv").read_bytes() == (tmp_path / "cold" / "results.csv").read_bytes()


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_bitwise_equal(tmp_path):
    import os
    import signal
    import time

    # 30 chunks of 50 steps at width 32: long enough that each kill lands mid-training.
    common = ["task=flipflop", "seeds=2", "widths=[32]", "train.steps=1500", "train.batch_size=32",
              "train.chunk_steps=50", "eval.trials=32", "eval.random_controls=0", "progress=false"]
    reference = run_cli(tmp_path / "reference", *common, f"cache_dir={tmp_path}/reference_cache")
    assert reference.returncode == 0, reference.stderr

    cache = tmp_path / "cache"
    checkpoints = cache / "checkpoints"

    def stamp():
        files = list(checkpoints.glob("*.eqx")) if checkpoints.exists() else []
        return files[0].stat().st_mtime_ns if files else None

    for writes_before_kill in (1, 3):  # the first kill right after a checkpoint, the next a few chunks later
        process = subprocess.Popen(
            [
                sys.executable, "-m", "experiments.run", f"hydra.run.dir={tmp_path / 'run'}", *common,
                f"cache_dir={cache}",
            ],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        last, seen, deadline = stamp(), 0, time.monotonic() + 300
        while seen < writes_before_kill and time.monotonic() < deadline:
            assert process.poll() is None, "training finished before the kill; lengthen the run"
            current = stamp()
            if current is not None and current != last:
                seen, last = seen + 1, current
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert stamp() is not None, "the kill should leave a checkpoint behind"
    resumed = run_cli(tmp_path / "run", *common, f"cache_dir={cache}")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "run" / "results.csv").read_bytes() == (tmp_path / "reference" / "results.csv").read_bytes()
    assert stamp() is None  # cleaned up once the models are cached


def test_submitit_local_multirun_sweeps_alpha(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.run", "-m", "hydra/launcher=submitit_local", "task=sine", "seeds=1",
         "widths=[4]", *TINY, "eval.random_controls=0", "alpha=0.5,0.9", f"hydra.sweep.dir={tmp_path}",
         f"cache_dir={tmp_path}/cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    tables = sorted(tmp_path.glob("*/results.csv"))
    assert [p.parent.name.split("_")[0] for p in tables] == ["0", "1"]
    alphas = [{r["alpha"] for r in read_results(p)} for p in tables]
    assert alphas == [{0.5}, {0.9}]
    # the same trained model under both thresholds: only the partition differs
    fvu = [[r["fvu"] for r in read_results(p) if r["subset"] == "none"] for p in tables]
    assert fvu[0] == fvu[1]


def test_two_devices_shard_the_seeds_and_agree_with_one(tmp_path):
    import os

    common = ["task=flipflop", "seeds=3", "widths=[8]", "train.steps=60", "train.batch_size=8", "train.chunk_steps=20",
              "eval.trials=32", "eval.random_controls=0", "progress=false", "cache_dir=null"]
    runs = {}
    for devices in (1, 2):
        env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        done = subprocess.run(
            [sys.executable, "-m", "experiments.run", f"hydra.run.dir={tmp_path / str(devices)}", *common],
            cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
        )
        assert done.returncode == 0, done.stderr
        runs[devices] = read_results(tmp_path / str(devices) / "results.csv")
    # 3 seeds on 2 devices: groups of 2, the second filled with a copy, one group per device.
    # Training runs the same program per group on any device count: bitwise equal. The
    # evaluation is one program partitioned across the devices: equal to float32 round-off.
    for one, two in zip(runs[1], runs[2]):
        assert (one["seed"], one["subset"]) == (two["seed"], two["subset"])
        assert two["train_loss"] == one["train_loss"]
        assert two["fvu"] == pytest.approx(one["fvu"], rel=1e-4, abs=1e-6)
