"""End to end: the whole ``experiments.run`` command vs the PyTorch reference's training alone.

    python -m benchmarks.end_to_end [--quick] [--out FILE] [--seeds 32] [--steps 1000]

Runs ``python -m experiments.run task=flipflop seeds=S train.steps=N`` as a user would, in a fresh
process with an empty model cache (startup, compilation, training, Schur, the 8-subset
evaluation, writing results and figures), and times its wall clock. Twice:

- ``core``: the pipeline the performance target was set for, with the later additions switched off
  (``eval.random_controls=0 diagnostics.fixed_points=false``);
- ``default``: the command exactly as documented, with 20 random controls per ablation and the
  fixed-point search.

The reference is the sequential PyTorch loop of ``train_throughput`` (one model after another,
batches pre-generated and not timed), measured in its own process; its time for S·N
model·steps is S·N / its rate. Ratio = reference seconds / command seconds.
"""

import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from ._common import parser, print_table, use_devices, write_json
from .train_throughput import run_torch

NAME = "end_to_end"
CONFIGS = {
    "core": ["eval.random_controls=0", "diagnostics.fixed_points=false"],
    "default": [],
}
TARGET_RATIO = 4.0
ROOT = Path(__file__).resolve().parent.parent


def time_command(overrides: list[str], cpu_devices: int) -> float:
    """Wall seconds of one ``experiments.run`` process on a fresh cache and run directory."""
    with tempfile.TemporaryDirectory() as directory:
        command = [
            sys.executable,
            "-m",
            "experiments.run",
            *overrides,
            f"cpu_devices={cpu_devices}",
            "progress=false",
            f"cache_dir={directory}/cache",
            f"hydra.run.dir={directory}/run",
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
        return time.perf_counter() - started


def main(argv=None) -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--seeds", type=int, default=None, help="default 32 (quick: 2)")
    cli.add_argument("--steps", type=int, default=None, help="default 1000 (quick: 20)")
    cli.add_argument("--torch-seconds", type=float, default=None, help="PyTorch timing (default 4)")
    args = cli.parse_args(argv)
    use_devices(args)
    seeds = args.seeds or (2 if args.quick else 32)
    steps = args.steps or (20 if args.quick else 1000)
    torch_args = Namespace(batch_size=64, pool_size=64, torch_seconds=args.torch_seconds or (1.0 if args.quick else 4.0), torch_threads=None)
    reference = run_torch("flipflop", {}, [64], torch_args)
    reference_s = seeds * steps / reference["torch_models_steps_per_s"]
    base = ["task=flipflop", f"seeds={seeds}", f"train.steps={steps}"]
    if args.quick:
        base += ["eval.trials=64", "diagnostics.n_starts=32"]
    rows = []
    for name, extra in CONFIGS.items():
        seconds = time_command(base + extra, args.cpu_devices)
        rows.append({"config": name, "command_s": seconds, "torch_training_s": reference_s, "ratio": reference_s / seconds})
    print_table(
        rows,
        (
            ("config", "config", ""),
            ("command_s", "command s", ".1f"),
            ("torch_training_s", "torch training s", ".1f"),
            ("ratio", "torch / command", ".2f"),
        ),
        title=f"python -m experiments.run task=flipflop seeds={seeds} train.steps={steps}",
    )
    print(
        f"\ncore: {' '.join(CONFIGS['core'])}; default: as documented. torch: sequential reference, "
        f"{reference['torch_models_steps_per_s']:.0f} model·steps/s, training only. Target ratio ≥ {TARGET_RATIO:g}."
    )
    settings = {"seeds": seeds, "steps": steps, "configs": CONFIGS, "base": base}
    path = write_json(NAME, {"settings": settings, "reference": reference, "rows": rows}, args.out, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
