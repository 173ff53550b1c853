"""Every Hydra config composes and builds its library objects (no training)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from experiments.config import eval_config, paper_spec, run_spec

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
def test_the_paper_config_builds_every_suite_and_variant(quick):
    spec = paper_spec(_compose("paper", [f"quick={str(quick).lower()}"]))
    assert set(spec.variants) == {"cdi_lr5e-4", "sine_8000_steps"}
    assert spec.variants["cdi_lr5e-4"].train.lr == 5e-4
    assert [s.task for s in spec.neuro] == ["flipflop", "sine", "cdi"]
    assert spec.copy.task == "copy"


@pytest.mark.parametrize("quick", [False, True])
def test_variants_null_skips_the_variants(quick):
    spec = paper_spec(_compose("paper", ["variants=null", f"quick={str(quick).lower()}"]))
    assert spec.variants == {}


def test_the_analyze_config_composes_with_the_shared_eval_settings():
    cfg = _compose("analyze", ["weights=model.npz", "task=sine"])
    assert cfg.weights == "model.npz"
    assert eval_config(OmegaConf.to_container(cfg, resolve=True)) == eval_config(
        OmegaConf.to_container(_compose("config", ["task=sine"]), resolve=True)
    )
