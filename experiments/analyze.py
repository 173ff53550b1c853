"""Schur ablations of networks trained elsewhere:  python -m experiments.analyze weights=<path> task=<name>"""

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.config import build_or_exit, eval_config
from schurjax.evaluate import held_out_set
from schurjax.imports import TorchKeys, check_against_task, load_inputs, load_networks
from schurjax.interventions import check_alpha
from schurjax.pipeline import TrainedModel, analyse, write_results
from schurjax.tasks import make_task

log = logging.getLogger("schurjax")


def _prepare(cfg: DictConfig):
    """Load and validate everything before any compute: (networks, data, has_targets, task name)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    alpha = check_alpha(plain["alpha"])
    config = eval_config(plain)
    networks = load_networks(Path(plain["weights"]), TorchKeys(**plain["torch"]))
    widths = {w.width for _, w in networks}
    shapes = {(w.w_xh.shape[1], w.w_hy.shape[0]) for _, w in networks}
    if len(shapes) > 1:
        raise ValueError(
            f"networks analysed together need the same numbers of inputs and outputs; got {sorted(shapes)}"
        )
    (n_in, n_out), = shapes
    if plain["inputs"] is None:
        task_cfg = plain["task"]
        task = make_task(task_cfg["name"], **{**(task_cfg.get("params") or {}), **(task_cfg.get("eval_params") or {})})
        for name, weights in networks:
            check_against_task(weights, task.n_in, task.n_out, name, task.name)
        data, has_targets, task_name = held_out_set(task, config), True, task.name
    else:
        inputs, targets, mask = load_inputs(Path(plain["inputs"]), n_in)
        has_targets = targets is not None
        if targets is not None and targets.shape[2] != n_out:
            raise ValueError(
                f"{plain['inputs']}: targets have {targets.shape[2]} channels, the networks {n_out} outputs"
            )
        shape = (*inputs.shape[:2], n_out)
        targets = np.zeros(shape, np.float32) if targets is None else targets
        mask = np.ones(shape, bool) if mask is None else np.broadcast_to(mask.reshape(*mask.shape[:2], -1), shape)
        data, task_name = (inputs, targets, mask), "custom"
    trained = [
        TrainedModel("imported", w.width, index, w, None, None, False, source=name)
        for index, (name, w) in enumerate(networks)
    ]
    log.info("loaded %d network(s) of width(s) %s", len(trained), sorted(widths))
    return trained, data, has_targets, task_name, alpha, config


@hydra.main(version_base="1.3", config_path="../conf", config_name="analyze")
def main(cfg: DictConfig) -> None:
    trained, data, has_targets, task_name, alpha, config = build_or_exit(cfg, _prepare, failure="cannot analyse")
    rows = analyse(trained, data, task=task_name, alpha=alpha, config=config, has_targets=has_targets)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    write_results(rows, out_dir)
    log.info("wrote %s", out_dir)


if __name__ == "__main__":
    main()
