"""Predictive power of the subspace diagnostics across runs:

    python -m experiments.subspace_report runs=[outputs/flipflop/A,outputs/sine/B] out=outputs/subspace_report

Reads each run directory's results.csv and writes predictive_power.csv (Spearman ρ of each
diagnostic and of the removed Schur mass with ΔFVU, over all runs and per task) and the scatter
figure diagnostics.png/pdf to ``out``.
"""

import argparse
import logging
import sys
from pathlib import Path

from schurjax.pipeline import read_results
from schurjax.plots import diagnostic_figure
from schurjax.results import write_csv
from schurjax.subspace import predictive_power

log = logging.getLogger("schurjax")


def _runs(value: str) -> list[Path]:
    """``runs=[a,b]``, ``runs=a,b`` or ``a b`` (Hydra-like or plain)."""
    return [Path(p) for p in value.removeprefix("runs=").strip("[]").split(",") if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="runs=[dir1,dir2,...] or directories")
    parser.add_argument("--out", default="outputs/subspace_report", help="output directory (or out=<dir>)")
    args, rest = parser.parse_known_args(argv)
    out = Path(args.out)
    runs: list[Path] = []
    for value in [*args.runs, *rest]:
        if value.startswith("out="):
            out = Path(value.removeprefix("out="))
        else:
            runs += _runs(value)
    missing = [str(r) for r in runs if not (r / "results.csv").exists()]
    if missing or not runs:
        log.error("runs=%s: no results.csv in %s", [str(r) for r in runs], missing or "(no runs given)")
        return 2
    try:
        rows = [row for run in runs for row in read_results(run / "results.csv")]
    except ValueError as error:
        log.error("%s", error)
        return 2
    if "pc_overlap" not in rows[0]:
        log.error("the results.csv files predate the subspace diagnostics (no pc_overlap column); rerun them")
        return 2
    table = predictive_power(rows)
    write_csv(out / "predictive_power.csv", table, ("scope", "predictor", "spearman_rho", "p_value", "n"))
    diagnostic_figure(rows, out / "diagnostics")
    for row in table:
        rho, p = row["spearman_rho"], row["p_value"]
        print(f"{row['scope']:>8}  {row['predictor']:<16}  rho={rho:+.3f}  p={p:.2g}  n={row['n']}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    sys.exit(main())
