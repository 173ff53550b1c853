"""Hydra config → plain library objects. The only place that knows the config layout."""

from omegaconf import DictConfig, OmegaConf

from schurjax.evaluate import EvalConfig
from schurjax.pipeline import RunSpec
from schurjax.subspace import DiagnosticsConfig
from schurjax.train import TrainConfig


def _seeds(value) -> tuple[int, ...]:
    """``seeds=3`` means seeds 0, 1, 2; ``seeds=[0,4]`` names them."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    raise ValueError(
        f"seeds={value!r}: give a positive number of seeds (seeds=3) or a list of seeds (seeds=[0,4])"
    )


def _as_tuple(value) -> tuple:
    # A single value given without brackets (widths=64) is a one-element list.
    return tuple(value) if isinstance(value, list) else (value,)


def eval_config(plain: dict) -> EvalConfig:
    return EvalConfig(**plain["eval"])


def run_spec(cfg: DictConfig) -> RunSpec:
    """Build and validate the RunSpec a config describes."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    task = plain["task"]
    return RunSpec(
        task=task["name"],
        seeds=_seeds(plain["seeds"]),
        widths=_as_tuple(plain["widths"]),
        constructions=_as_tuple(plain["constructions"]),
        alpha=plain["alpha"],
        task_params=task.get("params") or {},
        eval_task_params=task.get("eval_params") or {},
        train=TrainConfig(**plain["train"]),
        eval=eval_config(plain),
        diagnostics=DiagnosticsConfig(**plain["diagnostics"]),
    )
