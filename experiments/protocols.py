"""The protocol study:  python -m experiments.protocols [quick=true] [publish=true]"""

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import build_or_exit, protocol_candidates
from experiments.protocol_report import publish, write_study
from experiments.protocol_study import run_cell
from schurjax.cache import ModelCache

log = logging.getLogger("schurjax")


@hydra.main(version_base="1.3", config_path="../conf", config_name="protocols")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    candidates = build_or_exit(cfg, protocol_candidates)
    cache = ModelCache(cfg.cache_dir)
    cells = [run_cell(candidate, cache, cfg.progress) for candidate in candidates]
    overrides = " ".join(HydraConfig.get().overrides.task)
    write_study(cells, out_dir, f"python -m experiments.protocols {overrides}".strip())
    log.info("wrote %s", out_dir / "PROTOCOLS.md")
    if cfg.publish:
        publish(out_dir, Path(cfg.docs_dir))
        log.info("published PROTOCOLS.md and its figures to %s", cfg.docs_dir)


if __name__ == "__main__":
    main()
