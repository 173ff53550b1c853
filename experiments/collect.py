"""Summarise a sweep directory again:  python -m experiments.collect outputs/multirun/flipflop/<date>_<time>

Rebuilds sweep_results.csv, sweep_summary.csv and figures/sweep_<metric>.{png,pdf} from the jobs'
results, as a multirun does when it ends: for a sweep whose jobs ran elsewhere, were interrupted
or failed. Lists the jobs without results; exits with status 1 if no job has any.
"""

import argparse
import logging
import sys
from pathlib import Path

from experiments.sweep import summarise_sweep

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.collect", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun's directory (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        summarise_sweep(args.sweep_dir)
    except ValueError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
