"""Reproduce the paper:  python -m experiments.paper [quick=true] [seeds=10] [publish=true]"""

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import build_or_exit, paper_specs
from experiments.reproduction.comparison import publish, write_comparison
from experiments.reproduction.suites import reproduce

log = logging.getLogger("schurjax")
README = Path(__file__).resolve().parents[1] / "README.md"


@hydra.main(version_base="1.3", config_path="../conf", config_name="paper")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    specs = build_or_exit(cfg, paper_specs)
    results = {}
    for protocol, spec in specs.items():
        log.info("reproduction under the %s training protocol", protocol)
        results[protocol] = reproduce(spec, out_dir / protocol, progress=cfg.progress, cache_dir=cfg.cache_dir)
    overrides = " ".join(HydraConfig.get().overrides.task)
    write_comparison(specs, results, out_dir, f"python -m experiments.paper {overrides}".strip())
    if cfg.publish:
        # the README's table describes this project's defaults: only a full run may replace it
        publish(out_dir, Path(cfg.docs_dir), list(specs), None if cfg.quick else README)
        log.info("published tables, figures and REPRODUCTION.md to %s", cfg.docs_dir)


if __name__ == "__main__":
    main()
