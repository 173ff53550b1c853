"""End to end: whole ``experiments.run`` commands, timed as a user runs them, against PyTorch.

    python -m benchmarks.end_to_end [--quick] [--out FILE] [--seeds 32] [--steps 1000] [--neuro-seeds 3]

Every command runs in a fresh process with an empty model cache (start-up, compilation, training,
Schur, the 8-subset evaluation, random controls, subspace diagnostics, fixed points, writing
results and figures); its wall clock and peak RSS are measured from outside, and its own log
splits the time into training (``trained N models in X s``) and everything after it, and its
closing table into stages (``stages``: seconds per stage of run.log's table).

- ``default`` (the headline): ``python -m experiments.run task=flipflop seeds=32 train.steps=1000``
  exactly as documented, every diagnostic on, against the sequential PyTorch reference's
  *training alone* for the same model·steps (S·N / its rate): ratio = reference s / command s.
  Its compilation cache starts empty: a first run on a machine.
- ``default, compiled``: the same command again with the programs the first one left in the
  compilation cache (still a fresh model cache): every later run, e.g. each job of a sweep.
- ``core``: the same without the later diagnostics (``eval.random_controls=0
  diagnostics.fixed_points=false``).
- ``neuro <task>``: the paper's neuro protocol (``train.protocol=paper``, 3 seeds) for flip-flop,
  sine and CDI: analysis + diagnostics s / training s (target: at most 1).

The reference is ``train_throughput``'s sequential PyTorch loop (one model after another, batches
pre-generated and not timed), measured in its own process just before and just after the headline
commands; their mean rate is the one compared (a shared machine's speed drifts over minutes).
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

from schurjax.timing import read_table

from ._common import bracketed_reference, parser, print_table, use_devices, write_json
from .train_throughput import run_torch

NAME = "end_to_end"
CONFIGS = {
    "default": [],
    "core": ["eval.random_controls=0", "diagnostics.fixed_points=false"],
}
NEURO_TASKS = ("flipflop", "sine", "cdi")
TARGET_RATIO = 3.0
TARGET_RSS_MB = 1536
ROOT = Path(__file__).resolve().parent.parent
TRAINED = re.compile(r"trained \d+ models in ([0-9.]+) s")
TOTAL = re.compile(r"wrote .* in ([0-9.]+) s total")
STAGE_TABLE = "time per stage"


def run_command(overrides: list[str], cpu_devices: int, compilation_cache: Path | None = None) -> dict:
    """Wall seconds, peak RSS, the logged training and total seconds and the stage table of one
    ``experiments.run`` process on a fresh model cache and run directory, and a fresh compilation
    cache unless one is given."""
    with tempfile.TemporaryDirectory() as directory:
        compiled = compilation_cache or Path(directory) / "compilation_cache"
        command = [sys.executable, "-m", "experiments.run", *overrides, f"cpu_devices={cpu_devices}",
                   "progress=false", f"cache_dir={directory}/cache", f"compilation_cache={compiled}",
                   f"hydra.run.dir={directory}/run"]
        log = Path(directory) / "log.txt"
        with open(log, "w") as sink:
            started = time.perf_counter()
            child = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
            # wait4 gives this child's own resource usage (its peak RSS), not the maximum over
            # every child so far as RUSAGE_CHILDREN would
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - started
        text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{text[-3000:]}")
    training = float(TRAINED.search(text).group(1))
    logged_total = float(TOTAL.search(text).group(1))
    stages = {stage: seconds for stage, (seconds, _) in read_table(text.rpartition(STAGE_TABLE)[2]).items()}
    return {"command_s": seconds, "training_s": training, "after_training_s": logged_total - training,
            "peak_rss_mb": usage.ru_maxrss / 1024, "stages": stages}


def headline_rows(args, measure_reference: Callable[[], dict]) -> tuple[list[dict], dict]:
    """The documented default command and its core, against the reference's training alone,
    measured before and after them; returns the rows and the reference (both rates, their mean)."""
    base = ["task=flipflop", f"seeds={args.seeds}", f"train.steps={args.steps}"] + args.quick_overrides

    def commands() -> list[dict]:
        rows = []
        with tempfile.TemporaryDirectory() as compiled:
            # the default command twice: on an empty compilation cache, then on the programs it left there
            shared = Path(compiled)
            runs = [("default", CONFIGS["default"], shared), ("default, compiled", CONFIGS["default"], shared),
                    ("core", CONFIGS["core"], None)]
            for name, extra, cache in runs:
                rows.append({"config": name, "command": " ".join(base + extra)}
                            | run_command(base + extra, args.cpu_devices, cache))
        return rows

    rows, reference = bracketed_reference(measure_reference, commands)
    torch_s = args.seeds * args.steps / reference["torch_models_steps_per_s"]
    return [row | {"torch_training_s": torch_s, "ratio": torch_s / row["command_s"]} for row in rows], reference


def neuro_rows(args) -> list[dict]:
    """The paper's neuro protocol at ``args.neuro_seeds`` seeds: analysis + diagnostics vs training."""
    rows = []
    for task in NEURO_TASKS:
        overrides = [f"task={task}", f"seeds={args.neuro_seeds}", "train.protocol=paper"] + args.quick_overrides
        overrides += ["train.steps=20"] if args.quick else []
        measured = run_command(overrides, args.cpu_devices)
        rows.append({"config": f"neuro {task}", "command": " ".join(overrides), **measured,
                     "analysis_per_training": measured["after_training_s"] / measured["training_s"]})
    return rows


HEADLINE_COLUMNS = (
    ("config", "config", ""),
    ("command_s", "command s", ".1f"),
    ("training_s", "of which training s", ".1f"),
    ("peak_rss_mb", "peak RSS MiB", ".0f"),
    ("torch_training_s", "torch training s", ".1f"),
    ("ratio", "torch / command", ".2f"),
)
NEURO_COLUMNS = (
    ("config", "config", ""),
    ("command_s", "command s", ".1f"),
    ("training_s", "training s", ".1f"),
    ("after_training_s", "analysis + diagnostics s", ".1f"),
    ("analysis_per_training", "analysis / training", ".2f"),
    ("peak_rss_mb", "peak RSS MiB", ".0f"),
)


def print_stages(rows: list[dict]) -> None:
    """run.log's stage table of each command side by side: one line per stage, one column per command."""
    stages = list(dict.fromkeys(stage for row in rows for stage in row["stages"]))
    table = [{"stage": stage} | {row["config"]: row["stages"].get(stage) for row in rows} for stage in stages]
    columns = (("stage", "stage", ""), *((row["config"], f"{row['config']} s", ".2f") for row in rows))
    print_table(table, columns, title="Time per stage (run.log)")


def main(argv=None) -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--seeds", type=int, default=None, help="default 32 (quick: 2)")
    cli.add_argument("--steps", type=int, default=None, help="default 1000 (quick: 20)")
    cli.add_argument("--neuro-seeds", type=int, default=3, help="seeds of the neuro-protocol rows (0: none)")
    cli.add_argument("--torch-seconds", type=float, default=None, help="PyTorch timing (default 4)")
    args = cli.parse_args(argv)
    use_devices(args)
    args.seeds, args.steps = args.seeds or (2 if args.quick else 32), args.steps or (20 if args.quick else 1000)
    args.quick_overrides = ["eval.trials=64", "diagnostics.n_starts=32"] if args.quick else []
    torch_seconds = args.torch_seconds or (1.0 if args.quick else 4.0)
    torch_args = Namespace(batch_size=64, pool_size=64, torch_seconds=torch_seconds, torch_threads=None)
    headline, reference = headline_rows(args, lambda: run_torch("flipflop", {}, [64], torch_args))
    neuro = neuro_rows(args) if args.neuro_seeds else []
    print_table(headline, HEADLINE_COLUMNS, title=f"python -m experiments.run {headline[0]['command']}")
    print(f"\ncore: {' '.join(CONFIGS['core'])}; default: as documented. torch: sequential reference, "
          f"{reference['torch_models_steps_per_s']:.0f} model·steps/s (mean of "
          f"{' and '.join(f'{rate:.0f}' for rate in reference['torch_rates_before_after'])} before and after), "
          "training only. "
          f"Targets: ratio ≥ {TARGET_RATIO:g}, default peak RSS ≤ {TARGET_RSS_MB} MiB.")
    print_stages(headline)
    if neuro:
        print_table(neuro, NEURO_COLUMNS, title=f"The paper's neuro protocol at {args.neuro_seeds} seeds")
        print("\nanalysis + diagnostics: the command's logged total less its training. Target: ≤ 1× training.")
    settings = {"seeds": args.seeds, "steps": args.steps, "neuro_seeds": args.neuro_seeds, "configs": CONFIGS}
    path = write_json(NAME, {"settings": settings, "reference": reference, "rows": headline, "neuro_rows": neuro},
                      args.out, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
