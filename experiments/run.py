"""Train, ablate and evaluate one task:  python -m experiments.run task=sine seeds=3"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import run_spec
from schurjax import pipeline
from schurjax.devices import use_cpu_cores

log = logging.getLogger("schurjax")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        use_cpu_cores(cfg.cpu_devices)
        spec = run_spec(cfg)
        pipeline.check_run_directory(spec, out_dir)
    except (ValueError, TypeError) as error:
        log.error("invalid configuration: %s", error)
        sys.exit(2)
    pipeline.run(spec, out_dir, progress=cfg.progress, cache_dir=cfg.cache_dir)


if __name__ == "__main__":
    main()
