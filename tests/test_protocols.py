"""Training protocols: named per task, the optimiser they build, and the protocol study's CLI."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from schurjax.pipeline import RunSpec
from schurjax.protocols import PROTOCOLS, describe_protocol, training_protocol
from schurjax.results import read_csv
from schurjax.train import TrainConfig, learning_rate, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def test_a_notebook_run_spec_trains_under_the_task_default_protocol():
    for task in ("flipflop", "sine", "cdi", "copy"):
        assert RunSpec(task=task).train == PROTOCOLS["default"][task]
        assert RunSpec(task=task, protocol="paper").train == PROTOCOLS["paper"][task]


def test_the_paper_protocol_is_the_paper_s():
    for task in ("flipflop", "sine", "cdi"):
        config = training_protocol(task, "paper")
        assert (config.steps, config.batch_size, config.lr, config.clip_norm, config.decay) == (
            3840, 64, 1e-3, None, "constant"
        )
    copy = training_protocol("copy", "paper")
    assert copy.steps == 8000 and copy.until_solved


def test_an_unknown_protocol_names_the_override():
    with pytest.raises(ValueError, match="train.protocol=fast"):
        RunSpec(task="sine", protocol="fast")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"clip_norm": 0.0}, "clip_norm"), ({"clip_norm": float("inf")}, "clip_norm"),
     ({"warmup_steps": 3840}, "warmup_steps"), ({"warmup_steps": -1}, "warmup_steps"), ({"decay": "linear"}, "decay")],
)
def test_bad_protocol_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_describe_protocol_names_what_was_changed():
    config = training_protocol("cdi", "paper", lr=5e-4)
    text = describe_protocol("cdi", "paper", config)
    assert text.startswith("paper (Adam lr 0.0005") and text.endswith("changed from paper: lr=0.0005")
    assert "changed" not in describe_protocol("cdi", "paper", training_protocol("cdi", "paper"))


def test_warmup_then_cosine_decay():
    schedule = learning_rate(TrainConfig(steps=100, lr=1e-2, warmup_steps=10, decay="cosine"))
    with jax.numpy_dtype_promotion("standard"):
        values = np.array([schedule(jax.numpy.int32(step)) for step in (0, 5, 10, 55, 100)])
    # linear from 0 to the peak over the warmup, half the peak half-way through the decay, 0 at the end
    np.testing.assert_allclose(values, [0.0, 5e-3, 1e-2, 5e-3, 0.0], atol=1e-8)
    assert learning_rate(TrainConfig(lr=1e-3)) == 1e-3  # the paper's constant rate stays a plain number


def test_clipping_bounds_the_gradient_adam_sees():
    grads = {"w": jax.numpy.full((4,), 30.0)}  # global norm 60
    params = {"w": jax.numpy.zeros(4)}
    clipped = make_optimizer(TrainConfig(clip_norm=1.0))
    plain = make_optimizer(TrainConfig())
    # Adam's first step is lr * sign(g) either way; its moments differ by the clipping factor 60.
    clipped_state, plain_state = clipped.init(params), plain.init(params)
    with jax.numpy_dtype_promotion("standard"):  # as train_step does: optax mixes floats and int32 counts
        _, clipped_state = clipped.update(grads, clipped_state, params)
        _, plain_state = plain.update(grads, plain_state, params)
    clipped_mu = optax.tree_utils.tree_get(clipped_state, "mu")["w"]
    plain_mu = optax.tree_utils.tree_get(plain_state, "mu")["w"]
    np.testing.assert_allclose(np.asarray(plain_mu) / np.asarray(clipped_mu), 60.0, rtol=1e-5)


def test_the_protocol_study_runs_through_the_cli_and_reports_every_cell(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "experiments.protocols", "quick=true", "publish=true", "progress=false",
         f"hydra.run.dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", f"docs_dir={tmp_path / 'docs'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    table = read_csv(tmp_path / "run" / "protocols.csv")
    assert [(r["task"], r["protocol"]) for r in table] == [
        ("flipflop", "paper"), ("flipflop", "clip1"), ("copy", "paper")
    ]
    assert all(r["models"] == "2" and 0 <= int(r["learned"]) <= 2 for r in table)
    curves = read_csv(tmp_path / "run" / "training_curves.csv")
    assert {r["step"] for r in curves if r["task"] == "flipflop"} == {"20", "40"}  # 2 chunks of 20 steps
    assert all(float(r["grad_norm"]) > 0 for r in curves)
    report = (tmp_path / "docs" / "PROTOCOLS.md").read_text()
    assert "training revision" in report and "| flipflop | clip1 |" in report
    assert (tmp_path / "docs" / "protocols" / "protocols.png").stat().st_size > 0


def test_every_model_that_did_not_learn_is_named_with_its_reason():
    from schurjax.pipeline import unlearned

    def row(construction, seed, fvu, train_steps, diverged, solved=None):
        return dict(construction=construction, width=64, seed=seed, subset="none", fvu=fvu,
                    train_steps=train_steps, diverged=diverged, solved=solved)

    rows = [
        row("dense_orthogonal", 0, 0.01, 3840, False),
        row("dense_orthogonal", 1, 0.82, 3840, False),
        row("dense_orthogonal", 2, 0.5, 100, True),
        row("cayley", 3, 0.05, 8000, False, solved=False),
        row("cayley", 3, 0.9, 8000, False, solved=False) | {"subset": "T_CC"},  # ablations are not models
    ]
    assert unlearned(rows) == [
        "dense_orthogonal width 64 seed 1 has held-out FVU 0.82 > 0.1",
        "dense_orthogonal width 64 seed 2 diverged (non-finite loss or weights; frozen at its last finite weights)",
        "cayley width 64 seed 3 was not solved within the 8000-step budget",
    ]
