"""Tasks and constructions defined outside the package: registration, and the whole pipeline on them.

The plug-ins are the worked examples of docs/EXTENDING.md, run as the document shows them, so the
document cannot drift from the code. Every registration made here is undone when its test (or, for the
examples, this module) ends, so no other test sees them.
"""

import contextlib
import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from schurjax.constructions import (
    CONSTRUCTIONS,
    DenseRecurrent,
    check_construction,
    init_recurrent,
    register_construction,
)
from schurjax.evaluate import EvalConfig
from schurjax.interventions import SUBSETS, ablate_all, subset_name
from schurjax.pipeline import RunSpec, read_results, run
from schurjax.protocols import PAPER, PROTOCOLS, training_protocol
from schurjax.results import load_weights, read_table, write_csv
from schurjax.schur import ordered_schur
from schurjax.subspace import DiagnosticsConfig
from schurjax.tasks import TASKS, Task, make_task, register_task
from schurjax.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "EXTENDING.md"
PLUGIN_CONSTRUCTIONS = ("dense_skew", "low_rank_diagonal")
STEPS = 200


@contextlib.contextmanager
def _registries_restored():
    saved = [(registry, dict(registry)) for registry in (TASKS, CONSTRUCTIONS)]
    try:
        yield
    finally:
        for registry, before in saved:
            registry.clear()
            registry.update(before)


def _guide_examples(heading: str, language: str = "python") -> list[str]:
    """The code blocks in ``language`` of one ``## heading`` section of docs/EXTENDING.md."""
    sections = re.split(r"^## ", GUIDE.read_text(), flags=re.MULTILINE)
    (section,) = [s for s in sections if s.startswith(heading + "\n")]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def examples() -> dict:
    """The guide's examples, executed as written (registering them), in one namespace."""
    namespace = {"__name__": "extending_example"}
    with _registries_restored():
        for heading in ("Adding a task", "Adding a construction"):
            for block in _guide_examples(heading):
                exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 (the guide's own code)
        yield namespace


@pytest.fixture
def registries():
    """Registrations a test makes are undone when it ends."""
    with _registries_restored():
        yield


def test_the_guide_has_the_examples_and_the_sections_it_promises():
    assert len(_guide_examples("Adding a task")) == 1 and len(_guide_examples("Adding a task", "yaml")) == 1
    assert len(_guide_examples("Adding a construction")) == 2
    assert len(_guide_examples("Adding a diagnostic column")) == 1
    assert "\n## Adding a diagnostic column\n" in GUIDE.read_text()


def test_the_example_task_config_holds_the_library_protocols(examples):
    """What the command line would build from the guide's conf/task/echo.yaml: the task, and for a
    task without an entry in schurjax.protocols, the paper's protocol under either name."""
    (block,) = _guide_examples("Adding a task", "yaml")
    config = OmegaConf.to_container(OmegaConf.create(block))["task"]
    assert config["name"] == "echo" and config["eval_params"] == {}
    assert make_task("echo", **config["params"]) == examples["EchoTask"]()
    assert set(config["protocols"]) == set(PROTOCOLS)
    for name, protocol in config["protocols"].items():
        assert TrainConfig(**protocol) == training_protocol("echo", name) == PAPER


def test_the_example_task_is_registered_and_echoes_its_inputs(examples, key):
    assert TASKS["echo"] is examples["EchoTask"]
    task = make_task("echo", delay=3)
    inputs, targets, mask = (np.asarray(a) for a in task(key, 16))
    assert inputs.shape == targets.shape == mask.shape == (16, 20, 1)
    assert np.isin(inputs, [-1.0, 1.0]).all()
    np.testing.assert_array_equal(targets[:, 3:], inputs[:, :-3])
    assert not targets[:, :3].any() and not mask[:, :3].any() and mask[:, 3:].all()
    # the defaults every task inherits
    assert task.headline_metric == "delta_fvu" and not task.has_solved_criterion
    labels, levels = task.rest_inputs(3)
    assert labels == ["zero"] and np.array_equal(levels, np.zeros((1, 1)))
    with pytest.raises(NotImplementedError, match="define solved\\(\\) in EchoTask"):
        task.solved(*task(key, 2))


def test_pad_and_truncate_round_trip_for_every_registered_construction(examples, key):
    assert set(PLUGIN_CONSTRUCTIONS) <= set(CONSTRUCTIONS)
    for name in CONSTRUCTIONS:
        recurrent = init_recurrent(name, 6, key)
        padded = recurrent.pad(10)
        w, p = np.asarray(recurrent.matrix()), np.asarray(padded.matrix())
        assert w.shape == (6, 6) and w.dtype == np.float32 and type(padded) is type(recurrent)
        # the Cayley solve runs on a larger system once padded: float32 round-off
        np.testing.assert_allclose(p[:6, :6], w, atol=1e-6, err_msg=name)
        assert not p[6:].any() and not p[:, 6:].any(), name
        back = padded.truncate(6)
        assert jax.tree.structure(back) == jax.tree.structure(recurrent)
        assert all(bool((a == b).all()) for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(recurrent))), name


def test_the_example_initialisations(examples, key):
    skew = np.asarray(init_recurrent("dense_skew", 8, key).matrix())
    assert isinstance(init_recurrent("dense_skew", 8, key), DenseRecurrent)
    np.testing.assert_array_equal(skew, -skew.T)
    low_rank = init_recurrent("low_rank_diagonal", 8, key)
    off_diagonal = np.asarray(low_rank.matrix()) - np.diag(np.asarray(low_rank.diagonal))
    # float32: the diagonal d + (L Rᵀ)_ii, less d, keeps (L Rᵀ)_ii to about an ulp of d <= 1
    np.testing.assert_allclose(off_diagonal, np.asarray(low_rank.left @ low_rank.right.T), atol=3e-7)
    assert np.linalg.matrix_rank(off_diagonal, tol=1e-5) == 2


def test_a_construction_width_check_refuses_before_any_compute(examples):
    with pytest.raises(ValueError, match="low_rank_diagonal has rank 2 and needs width >= 2; got width 1"):
        check_construction("low_rank_diagonal", 1)
    with pytest.raises(ValueError, match="needs width >= 2"):
        RunSpec(task="echo", widths=(1,), constructions=("low_rank_diagonal",))


# --- the whole pipeline on the plug-ins --------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_run(examples, tmp_path_factory):
    """One run of the example task with a built-in construction and both example constructions."""
    out_dir = tmp_path_factory.mktemp("echo_run")
    spec = RunSpec(
        task="echo",
        seeds=(0,),
        widths=(8,),
        constructions=("dense_orthogonal", *PLUGIN_CONSTRUCTIONS),
        train=TrainConfig(steps=STEPS, batch_size=32, chunk_steps=100, lr=1e-2),
        eval=EvalConfig(trials=64),
        diagnostics=DiagnosticsConfig(fixed_points=False),
    )
    return run(spec, out_dir, progress=False), out_dir


def _model_rows(rows, construction: str) -> list[dict]:
    return [r for r in rows if r["construction"] == construction]


def _check_trained_and_analysed(rows, construction: str) -> None:
    own = _model_rows(rows, construction)
    assert [r["subset"] for r in own] == [subset_name(s) for s in SUBSETS]
    assert all(r["task"] == "echo" and r["width"] == 8 and r["seed"] == 0 for r in own)
    assert all(math.isfinite(r["fvu"]) and math.isfinite(r["delta_fvu"]) for r in own)
    assert all(r["replay_accuracy"] is None for r in own)  # not this task's headline metric
    full = own[0]
    assert full["train_steps"] == STEPS and not full["diverged"]
    # A 2-step echo is easy for 8 units: held-out FVU ~1e-3 after these 200 steps (measured for all
    # three constructions), far below the 0.1 above which a model counts as not learned.
    assert full["fvu"] < 0.1


def test_a_registered_task_runs_through_the_pipeline(echo_run):
    rows, out_dir = echo_run
    assert len(rows) == 3 * len(SUBSETS)
    _check_trained_and_analysed(rows, "dense_orthogonal")
    for name in ("results.csv", "summary.csv", "spec.json", "figures/echo_subsets.png"):
        assert (out_dir / name).is_file(), name
    assert sorted(p.name for p in (out_dir / "models").iterdir()) == [
        f"echo_{c}_w8_s0.npz" for c in sorted(("dense_orthogonal", *PLUGIN_CONSTRUCTIONS))
    ]


@pytest.mark.parametrize("construction", PLUGIN_CONSTRUCTIONS)
def test_registered_constructions_train_and_are_analysed(echo_run, construction):
    rows, _ = echo_run
    _check_trained_and_analysed(rows, construction)


def test_the_trained_low_rank_network_keeps_its_parametrisation(echo_run):
    """Off its diagonal W_hh = diag(d) + L Rᵀ is L Rᵀ, of rank 2: an off-diagonal 4x4 block has two
    nonzero singular values (float32 round-off apart), where a dense W_hh has four."""
    _, out_dir = echo_run

    def block_spectrum(construction):
        w_hh = load_weights(out_dir / "models" / f"echo_{construction}_w8_s0.npz").w_hh
        s = np.linalg.svd(w_hh[:4, 4:], compute_uv=False)
        return s / s[0]

    assert block_spectrum("low_rank_diagonal")[2] < 1e-5
    assert block_spectrum("dense_orthogonal")[3] > 1e-3


# --- registry errors -----------------------------------------------------------------------------


def _task_class(*, frozen=True, dataclass=True, omit=(), **attributes) -> type:
    """A minimal task class with ``attributes`` added and the members in ``omit`` left out."""
    body = {"name": "probe", "n_in": 1, "n_out": 1, "seq_len": 2, "__call__": lambda self, key, batch_size: None}
    body = {k: v for k, v in (body | attributes).items() if k not in omit}
    cls = type("Probe", (Task,), body)
    return dataclasses.dataclass(frozen=frozen)(cls) if dataclass else cls


@pytest.mark.parametrize(
    "cls, message",
    [
        (int, "register_task takes a subclass of schurjax.tasks.Task; got <class 'int'>"),
        (_task_class(dataclass=False), "must be a frozen dataclass"),
        (_task_class(frozen=False), "must be a frozen dataclass"),
        (_task_class(omit=("name",)), "needs a registry name: add  name: ClassVar[str]"),
        (_task_class(__annotations__={"name": str}), "needs a registry name"),
        (_task_class(omit=("n_out", "seq_len")), "must define n_out, seq_len"),
        (_task_class(has_solved_criterion=True), "define both or neither"),
        (_task_class(solved=lambda self, outputs, targets, mask: True), "define both or neither"),
    ],
)
def test_register_task_refuses_a_class_it_cannot_use(cls, message, registries):
    with pytest.raises(TypeError, match=re.escape(message)):
        register_task(cls)
    assert "probe" not in TASKS


def test_a_task_name_is_registered_once(registries):
    with pytest.raises(ValueError, match="'copy' is already registered by schurjax.tasks.CopyTask; give Probe another"):
        register_task(_task_class(name="copy"))
    probe = register_task(_task_class())
    assert register_task(probe) is probe and TASKS["probe"] is probe  # the same class again: a no-op
    with pytest.raises(ValueError, match="'probe' is already registered"):
        register_task(_task_class())
    with pytest.raises(ValueError, match="unknown task 'echo_of_nothing'; choose one of: .*probe"):
        make_task("echo_of_nothing")


def test_a_registered_task_class_may_be_defined_as_a_plain_class(registries, key):
    @register_task
    @dataclasses.dataclass(frozen=True)
    class Constant(Task):
        level: float = 0.5
        name: ClassVar[str] = "constant"
        n_in: ClassVar[int] = 1
        n_out: ClassVar[int] = 1
        seq_len: ClassVar[int] = 3

        def __call__(self, key, batch_size):
            targets = jnp.full((batch_size, 3, 1), self.level, jnp.float32)
            return jnp.zeros_like(targets), targets, jnp.ones(targets.shape, bool)

    assert make_task("constant", level=0.25) == Constant(level=0.25)
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) lvl for task 'constant'; valid: level"):
        make_task("constant", lvl=1)


def test_a_construction_name_is_registered_once(registries):
    with pytest.raises(ValueError, match="'cayley' is already registered by schurjax.constructions._cayley"):
        register_construction("cayley")(lambda width, key: DenseRecurrent(jnp.zeros((width, width))))
    builtin = CONSTRUCTIONS["dense_normal"]
    register_construction("dense_normal", check_width=builtin.check_width)(builtin.init)  # again: a no-op
    assert CONSTRUCTIONS["dense_normal"] == builtin and list(CONSTRUCTIONS)[2] == "dense_normal"
    with pytest.raises(ValueError, match="non-empty string name"):
        register_construction("")


def test_a_construction_must_build_a_recurrent_module(registries, key):
    register_construction("bare_matrix")(lambda width, key: jnp.zeros((width, width)))
    with pytest.raises(TypeError, match="'bare_matrix' returned ArrayImpl, not a Recurrent module; its init must"):
        init_recurrent("bare_matrix", 4, key)
    with pytest.raises(ValueError, match="choose from: .*bare_matrix \\(or register one with"):
        check_construction("orthogonal", 4)


# --- the command line ------------------------------------------------------------------------------


def test_a_task_defined_outside_the_package_runs_from_the_command_line(tmp_path):
    """The guide's task module and config, outside the repository: ``plugins=[...]`` imports the module,
    ``hydra.searchpath`` finds its conf/task/echo.yaml, and the run trains and analyses it."""
    (tmp_path / "echo_plugin.py").write_text(_guide_examples("Adding a task")[0])
    (tmp_path / "conf" / "task").mkdir(parents=True)
    (tmp_path / "conf" / "task" / "echo.yaml").write_text(_guide_examples("Adding a task", "yaml")[0])
    out_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.run", "task=echo", "plugins=[echo_plugin]",
         f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"hydra.run.dir={out_dir}", "cache_dir=null",
         "seeds=1", "widths=[8]", "train.steps=12", "train.batch_size=8", "train.chunk_steps=6", "eval.trials=32",
         "eval.random_controls=0", "diagnostics.fixed_points=false", "progress=false"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_results(out_dir / "results.csv")
    assert [r["subset"] for r in rows] == [subset_name(s) for s in SUBSETS]
    assert {r["task"] for r in rows} == {"echo"} and rows[0]["train_steps"] == 12


def test_a_plugin_that_cannot_be_imported_is_named_with_the_fix(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "experiments.run", "plugins=[no_such_plugin_module]", f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 2
    assert "cannot import 'no_such_plugin_module'" in done.stderr and "PYTHONPATH" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_guide_diagnostic_column_computes_and_reads_back_typed(tmp_path):
    """The guide's column: its rows hold exactly the declared column, W̃(∅) = W has the model's own
    spectral radius, and a table written with the declaration reads back as floats."""
    (block,) = _guide_examples("Adding a diagnostic column")
    namespace: dict = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 (the guide's own code)
    w = np.asarray(jax.random.normal(jax.random.key(0), (6, 6))) / 6**0.5
    ablation = ablate_all(w, ordered_schur(w), 0.9)
    rows = namespace["radius_columns"](ablation)
    assert len(rows) == len(SUBSETS) and all(set(r) == set(namespace["RADIUS_COLUMNS"]) for r in rows)
    # W̃(∅) is W up to the Schur round trip (float64: ~1e-15)
    assert rows[0]["rho_ablated"] == pytest.approx(np.max(np.abs(np.linalg.eigvals(w))), rel=1e-12)
    write_csv(tmp_path / "t.csv", rows, namespace["RADIUS_COLUMNS"])
    assert read_table(tmp_path / "t.csv", namespace["RADIUS_COLUMNS"]) == rows
