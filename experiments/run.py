"""Train, ablate and evaluate one task:  python -m experiments.run task=sine seeds=3"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import build_or_exit, run_spec
from schurjax import pipeline
from schurjax.timing import process_age


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)

    def checked_spec(cfg: DictConfig) -> pipeline.RunSpec:
        spec = run_spec(cfg)
        pipeline.check_run_directory(spec, out_dir)
        return spec

    spec = build_or_exit(cfg, checked_spec)
    # start-up: everything this process did before the run (interpreter, imports, config)
    pipeline.run(spec, out_dir, progress=cfg.progress, cache_dir=cfg.cache_dir, startup_seconds=process_age())


if __name__ == "__main__":
    main()
