"""Every Hydra config composes and builds its library objects (no training)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from experiments.config import eval_config, paper_specs, protocol_candidates, run_spec
from schurjax.protocols import PROTOCOLS, training_protocol

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
