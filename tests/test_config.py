"""Every Hydra config composes and builds its library objects (no training), and the configs
state the library's own defaults: a notebook and the command line run alike."""

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from experiments.config import (
    diagnostics_config,
    eval_config,
    paper_specs,
    protocol_candidates,
    run_spec,
)
from schurjax.evaluate import EvalConfig
from schurjax.pipeline import RunSpec
from schurjax.protocols import PROTOCOLS, training_protocol
from schurjax.subspace import DiagnosticsConfig

REPO = Path(__file__).resolve().parents[1]

TASKS = sorted(path.stem for path in (REPO / "conf" / "task").glob("*.yaml"))


def _compose(name: str, overrides=()):
    """The config as ``@hydra.main`` sees it, ``${hydra:...}`` interpolations included."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):  # the app reads its own keys only; hydra's own node has runtime-only fields
        del cfg["hydra"]
    return cfg


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_builds_a_run_spec(task):
    spec = run_spec(_compose("config", [f"task={task}"]))
    assert spec.task == task
    assert spec.train_task().name == task and spec.eval_task().name == task


@pytest.mark.parametrize("quick", [False, True])
def test_the_paper_config_builds_every_suite_under_each_protocol(quick):
    specs = paper_specs(_compose("paper", [f"quick={str(quick).lower()}"]))
    assert list(specs) == ["default", "paper"]
    for protocol, spec in specs.items():
        assert spec.variants == {}
        assert [s.task for s in spec.neuro] == ["flipflop", "sine", "cdi"]
        assert spec.copy.task == "copy" and spec.copy.train.until_solved
        if not quick:
            for suite in (spec.copy, *spec.neuro):
                assert suite.protocol == protocol
                assert suite.train == training_protocol(suite.task, protocol)


def test_paper_variants_change_training_on_top_of_each_protocol():
    specs = paper_specs(_compose("paper", ["variants={cdi_lr: {task: cdi, train: {lr: 5.0e-4}}}"]))
    for protocol, spec in specs.items():
        assert spec.variants["cdi_lr"].train == training_protocol("cdi", protocol, lr=5e-4)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("task", TASKS)
def test_the_task_configs_hold_the_library_protocols(task, protocol):
    """conf/task/<task>.yaml mirrors schurjax.protocols: the CLI and a notebook train alike."""
    spec = run_spec(_compose("config", [f"task={task}", f"train.protocol={protocol}"]))
    assert spec.protocol == protocol
    assert spec.train == training_protocol(task, protocol)


def test_a_train_setting_on_the_command_line_changes_only_that_setting():
    spec = run_spec(_compose("config", ["task=cdi", "train.protocol=paper", "train.lr=5e-4"]))
    assert spec.train == training_protocol("cdi", "paper", lr=5e-4)


@pytest.mark.parametrize("quick", [False, True])
def test_the_protocol_study_config_builds_every_cell(quick):
    candidates = protocol_candidates(_compose("protocols", [f"quick={str(quick).lower()}"]))
    tasks = {c.task for c in candidates}
    assert "copy" in tasks and "flipflop" in tasks
    paper = [c for c in candidates if c.protocol == "paper"]
    assert all(c.spec.train.until_solved == (c.task == "copy") for c in paper)
    if not quick:
        assert all(len(c.spec.seeds) >= 16 for c in candidates)
        assert all(c.spec.train == training_protocol(c.task, "paper") for c in paper)


def test_the_analyze_config_composes_with_the_shared_eval_settings():
    cfg = _compose("analyze", ["weights=model.npz", "task=sine"])
    assert cfg.weights == "model.npz"
    assert eval_config(OmegaConf.to_container(cfg, resolve=True)) == eval_config(
        OmegaConf.to_container(_compose("config", ["task=sine"]), resolve=True)
    )


# config section -> (its dataclass, how the command line builds it from the plain config)
SECTIONS = {"eval": (EvalConfig, eval_config), "diagnostics": (DiagnosticsConfig, diagnostics_config)}
# Settings a config deliberately holds apart from the library's defaults, and why.
CONFIG_CHOICES = {
    # matched-norm random controls belong to experiments.run (docs/RANDOM_CONTROLS.md)
    ("paper", "eval", "random_controls"): 0,
    ("protocols", "eval", "random_controls"): 0,
}
def _plain(name: str, overrides=()) -> dict:
    return OmegaConf.to_container(_compose(name, overrides), resolve=True)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_the_run_config_states_every_library_default(section):
    """Every field of the section's dataclass has its line in conf/config.yaml, at the default."""
    config, build = SECTIONS[section]
    plain = _plain("config")
    assert sorted(plain[section]) == sorted(field.name for field in dataclasses.fields(config)), (
        f"conf/config.yaml's {section} section and {config.__name__}'s fields differ"
    )
    built = dataclasses.asdict(build(plain))
    for name, default in dataclasses.asdict(config()).items():
        assert built[name] == default, f"{section}.{name}: conf/config.yaml {built[name]!r}, library {default!r}"


@pytest.mark.parametrize("name", ["paper", "protocols", "analyze"])
def test_configs_that_restate_a_default_state_the_library_default(name):
    """An eval or diagnostics setting another config restates is the library's default, or a
    choice listed (with its reason) in CONFIG_CHOICES."""
    plain = _plain(name, ["weights=model.npz"] if name == "analyze" else [])
    checked = 0
    for section, (config, build) in SECTIONS.items():
        stated = set(plain.get(section) or {})
        built = dataclasses.asdict(build(plain)) if stated else {}
        for field, default in dataclasses.asdict(config()).items():
            if field in stated:
                expected = CONFIG_CHOICES.get((name, section, field), default)
                assert built[field] == expected, f"conf/{name}.yaml: {section}.{field}={built[field]!r} != {expected!r}"
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize("task", TASKS)
def test_a_notebook_run_spec_is_the_command_line_default(task):
    """``RunSpec(task=...)`` is ``python -m experiments.run task=...``: same seeds, widths,
    constructions, alpha, protocol, evaluation and diagnostics (the task's own, Task.run_defaults,
    where it has them: the copy task's widths, constructions and 128-lag evaluation), same tasks."""
    built = run_spec(_compose("config", [f"task={task}"]))
    library = RunSpec(task=task)
    # the YAML spells the task's parameters out; the library's tasks have them as defaults
    assert built.train_task() == library.train_task() and built.eval_task() == library.eval_task()
    params = dict(task_params={}, eval_task_params={})
    assert dataclasses.replace(built, **params) == dataclasses.replace(library, **params)
