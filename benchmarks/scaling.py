"""Scaling of the training cost with seeds, width and sequence length.

    python -m benchmarks.scaling [--quick] [--out FILE]

Three sweeps of the flip-flop task (batch 64), each configuration measured by
``train_throughput.measure_jax`` in a fresh subprocess (same method: steady-state rate from the
difference of two ``train_models`` calls):

- seeds 1..128 at Nh = 64, T = 25;
- width 32..512 at ``--width-seeds`` seeds (default 8), T = 25;
- sequence length (flip-flop ``seq_len``) 25..400 at Nh = 64, ``--width-seeds`` seeds.

The chunk length of each configuration is chosen so that one chunk holds about ``--chunk-gflop``
GFLOP of recurrent matmuls (between 8 and 256 steps): a fixed chunk would make the largest
configurations take minutes per chunk and the smallest too short to time.

For each sweep the summary names the point of highest GFLOP/s and the first step of the sweep
at which GFLOP/s grows by less than 10%, the raw facts behind "where the curve bends".
"""

import itertools
import math
import sys
import time

from ._common import (
    parser,
    print_table,
    recurrent_gflop_per_model_step,
    use_devices,
    write_json,
)
from .train_throughput import run_jax

NAME = "scaling"
BATCH_SIZE = 64
BASE_WIDTH, BASE_SEQ_LEN = 64, 25
SWEEPS = {
    "seeds": (1, 2, 4, 8, 16, 32, 64, 128),
    "width": (32, 64, 128, 256, 512),
    "seq_len": (25, 50, 100, 200, 400),
}
QUICK_SWEEPS = {"seeds": (1, 2), "width": (32, 64), "seq_len": (25, 50)}
# GFLOP/s growing by less than this factor from one sweep point to the next counts as flat.
FLAT_GROWTH = 1.10


def configuration(sweep: str, value: int, sweep_seeds: int) -> tuple[int, int, int]:
    """(seeds, width, seq_len) of one sweep point; the other two stay at their base values."""
    seeds, width, seq_len = sweep_seeds, BASE_WIDTH, BASE_SEQ_LEN
    if sweep == "seeds":
        seeds = value
    elif sweep == "width":
        width = value
    else:
        seq_len = value
    return seeds, width, seq_len


def chunk_steps_for(seeds: int, width: int, seq_len: int, chunk_gflop: float) -> int:
    step_gflop = seeds * recurrent_gflop_per_model_step(BATCH_SIZE, seq_len, width)
    return min(256, max(8, round(chunk_gflop / step_gflop)))


def measure(seeds: int, width: int, seq_len: int, args) -> dict:
    """One configuration in a fresh subprocess."""
    return run_jax(
        {
            "task": "flipflop",
            "task_params": {"seq_len": seq_len},
            "widths": [width],
            "seeds": seeds,
            "chunk_steps": chunk_steps_for(seeds, width, seq_len, args.chunk_gflop),
            "chunks": 2,
            "min_seconds": args.min_seconds,
            "max_chunks": args.max_chunks,
            "batch_size": BATCH_SIZE,
        },
        args.cpu_devices,
    )


def run_sweeps(args) -> list[dict]:
    """Every sweep point; a configuration shared by two sweeps is measured once."""
    measured: dict[tuple[int, int, int], dict] = {}
    rows = []
    for sweep, values in args.sweeps.items():
        for value in values:
            key = configuration(sweep, value, args.width_seeds)
            if key not in measured:
                print(
                    f"[{time.strftime('%H:%M:%S')}] seeds {key[0]} width {key[1]} T {key[2]}",
                    file=sys.stderr,
                    flush=True,
                )
                measured[key] = measure(*key, args)
            seeds, width, seq_len = key
            rows.append(
                {
                    "sweep": sweep,
                    "x": value,
                    "seeds": seeds,
                    "width": width,
                    "seq_len": seq_len,
                }
                | measured[key]
            )
    return rows


def bends(rows: list[dict]) -> list[dict]:
    """Per sweep: the point of highest GFLOP/s, and the first point where GFLOP/s stops growing."""
    summary = []
    for sweep in dict.fromkeys(row["sweep"] for row in rows):
        points = [
            (row["x"], row["jax_gflop_per_s"]) for row in rows if row["sweep"] == sweep
        ]
        finite = [(x, g) for x, g in points if math.isfinite(g)]
        if not finite:
            continue
        flat = next(
            (
                x
                for (_, before), (x, after) in itertools.pairwise(points)
                if after < FLAT_GROWTH * before
            ),
            None,
        )
        summary.append(
            {
                "sweep": sweep,
                "peak_at": max(finite, key=lambda p: p[1])[0],
                "peak_gflop_per_s": max(g for _, g in finite),
                "growth_below_10pct_at": flat,
            }
        )
    return summary


COLUMNS = (
    ("sweep", "sweep", ""),
    ("seeds", "seeds", "d"),
    ("width", "width", "d"),
    ("seq_len", "T", "d"),
    ("chunk_steps", "chunk", "d"),
    ("jax_models_steps_per_s", "m·steps/s", ".1f"),
    ("jax_gflop_per_s", "GFLOP/s", ".1f"),
    ("compile_s", "compile s", ".1f"),
    ("peak_rss_mb", "RSS MiB", ".0f"),
    ("device_peak_mb", "GPU MiB", ".0f"),
)


def arguments(argv=None):
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument(
        "--width-seeds", type=int, default=None, help="seeds of the width and T sweeps (default 8, quick 2)"
    )
    cli.add_argument("--chunk-gflop", type=float, default=100.0, help="recurrent GFLOP per chunk, roughly")
    cli.add_argument("--min-seconds", type=float, default=None, help="time of the timed chunks (default 10, quick 1)")
    cli.add_argument("--max-chunks", type=int, default=None, help="cap on timed chunks (default 256, quick 8)")
    for sweep, points in SWEEPS.items():
        cli.add_argument(
            f"--{sweep.replace('_', '-')}",
            nargs="+",
            type=int,
            default=None,
            help=f"points of the {sweep} sweep (default {' '.join(map(str, points))})",
        )
    args = cli.parse_args(argv)
    use_devices(args)
    defaults = QUICK_SWEEPS if args.quick else SWEEPS
    args.sweeps = {sweep: tuple(getattr(args, sweep) or defaults[sweep]) for sweep in SWEEPS}
    args.width_seeds = args.width_seeds or (2 if args.quick else 8)
    args.min_seconds = args.min_seconds or (1.0 if args.quick else 10.0)
    args.max_chunks = args.max_chunks or (8 if args.quick else 256)
    if args.quick:
        args.chunk_gflop = min(args.chunk_gflop, 10.0)
    return args


def main(argv=None) -> None:
    args = arguments(argv)
    rows = run_sweeps(args)
    print_table(
        rows,
        COLUMNS,
        title=f"Training cost scaling (flipflop, batch {BATCH_SIZE})",
    )
    summary = bends(rows)
    print_table(
        summary,
        (
            ("sweep", "sweep", ""),
            ("peak_at", "peak GFLOP/s at", ""),
            ("peak_gflop_per_s", "peak GFLOP/s", ".1f"),
            ("growth_below_10pct_at", "first point with < 10% growth", ""),
        ),
        title="Where GFLOP/s stops growing",
    )
    print("\nGFLOP/s: 3 × 2·B·T·Nh² per model step (recurrent matmuls only).")
    settings = {
        "sweeps": args.sweeps,
        "width_seeds": args.width_seeds,
        "chunk_gflop": args.chunk_gflop,
        "min_seconds": args.min_seconds,
        "max_chunks": args.max_chunks,
    }
    path = write_json(
        NAME,
        {"settings": settings, "rows": rows, "bends": summary},
        args.out,
        args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
