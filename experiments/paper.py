"""Reproduce the paper:  python -m experiments.paper [quick=true] [seeds=10] [publish=true]"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import paper_spec
from schurjax import paper
from schurjax.devices import use_cpu_cores

log = logging.getLogger("schurjax")


@hydra.main(version_base="1.3", config_path="../conf", config_name="paper")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        use_cpu_cores(cfg.cpu_devices)
        spec = paper_spec(cfg)
    except (ValueError, TypeError) as error:
        log.error("invalid configuration: %s", error)
        sys.exit(2)
    paper.reproduce(spec, out_dir, progress=cfg.progress, cache_dir=cfg.cache_dir)
    if cfg.publish:
        paper.publish(out_dir, Path(cfg.docs_dir))
        log.info("published tables, figures and REPRODUCTION.md to %s", cfg.docs_dir)


if __name__ == "__main__":
    main()
