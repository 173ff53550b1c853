"""Measured FLOP ceilings of this machine and the trainer's achieved fraction.

    python -m benchmarks.flops [--quick] [--out FILE] [--measure-trainer]

Ceilings, all float32 under ``jax.jit``, each the fastest of repeated calls after a warm-up:

- gemm: one N×N @ N×N product (N = 2048): 2·N³ FLOP per call;
- chain M: R = 256 dependent batched products x ← x @ W, x and W [M, 64, 64] (W orthogonal, so
  x neither overflows nor decays into denormals), in one ``fori_loop`` call:
  2·M·64³·R FLOP per call. The products depend on each other as a recurrence's do, and one call
  amortises the dispatch over all R;
- scan M: one 25-step ``lax.scan`` of h ← tanh(h @ W), h [M, 64 trials, 64], W [M, 64, 64]
  (unroll 1 and 5): 2·M·64·64²·25 FLOP per call (tanh not counted), the forward rollout of one
  flip-flop training step of M models, dispatch included.

Chains and scans run on one device (one core) and, when there are several, split across all
devices as the trainer's models are (M padded to a multiple of the device count; the padded
models' work is counted). M = 3 and 32 are the seed counts the performance targets name. The trainer's achieved
GFLOP/s count
its recurrent matmuls, 3 × 2·B·T·Nh² per model step (forward, dL/dh and dL/dW_hh); they come
from ``results/train_throughput.json`` (flip-flop, width 64) when it exists, else are measured
here the same way, and are divided by each ceiling.
"""

import json
import math

import jax
import jax.numpy as jnp

from ._common import (
    RESULTS_DIR,
    best_time,
    parser,
    print_table,
    use_devices,
    write_json,
)
from .train_throughput import run_jax

NAME = "flops"
GEMM_SIZE = 2048
SMALL = 64  # width and trials per model, as in the flip-flop benchmarks
CHAIN_LENGTH = 256
SCAN_STEPS = 25
MODEL_COUNTS = (3, 32)
UNROLLS = (1, 5)


def _orthogonal(key, models: int) -> jax.Array:
    q, _ = jnp.linalg.qr(jax.random.normal(key, (models, SMALL, SMALL)))
    return q


def gemm_ceiling(seconds: float) -> dict:
    a, b = jax.random.normal(jax.random.key(0), (2, GEMM_SIZE, GEMM_SIZE))
    t = best_time(jax.jit(jnp.matmul), a, b, min_seconds=seconds)
    return {"name": f"gemm {GEMM_SIZE}²", "gflop": 2 * GEMM_SIZE**3 / 1e9, "seconds": t}


def _on_devices(per_model, devices: int):
    """``per_model`` over the leading axis: vmapped on one device, or split across all of them."""
    from schurjax.devices import map_models

    if devices == 1:
        return jax.jit(jax.vmap(per_model))
    return jax.jit(map_models(per_model, None))


def _models(models: int, devices: int) -> int:
    """Models actually computed: the count, padded to split evenly across the devices used."""
    return models + (-models % devices)


def chain_ceiling(models: int, devices: int, seconds: float) -> dict:
    count = _models(models, devices)
    w = _orthogonal(jax.random.key(1), count)
    x = jax.random.normal(jax.random.key(2), (count, SMALL, SMALL))
    chain = _on_devices(lambda x, w: jax.lax.fori_loop(0, CHAIN_LENGTH, lambda _, x: x @ w, x), devices)
    t = best_time(chain, x, w, min_seconds=seconds)
    return {
        "name": f"chain M={models} devices={devices}",
        "gflop": 2 * count * SMALL**3 * CHAIN_LENGTH / 1e9,
        "seconds": t,
    }


def scan_ceiling(models: int, unroll: int, devices: int, seconds: float) -> dict:
    count = _models(models, devices)
    w = _orthogonal(jax.random.key(3), count)
    h = jax.random.normal(jax.random.key(4), (count, SMALL, SMALL))

    def rollout(h, w):
        def step(h, _):
            return jnp.tanh(h @ w), None

        return jax.lax.scan(step, h, None, length=SCAN_STEPS, unroll=unroll)[0]

    t = best_time(_on_devices(rollout, devices), h, w, min_seconds=seconds)
    gflop = 2 * count * SMALL * SMALL**2 * SCAN_STEPS / 1e9
    return {"name": f"scan M={models} unroll={unroll} devices={devices}", "gflop": gflop, "seconds": t}


def ceilings(seconds: float) -> list[dict]:
    """The GEMM (XLA's own threading) and, on one device and on all, the small-matmul ceilings."""
    rows = [gemm_ceiling(seconds)]
    for devices in sorted({1, jax.device_count()}):
        rows += [chain_ceiling(m, devices, seconds) for m in MODEL_COUNTS]
        rows += [scan_ceiling(m, u, devices, seconds) for m in MODEL_COUNTS for u in UNROLLS]
    return [row | {"gflop_per_s": row["gflop"] / row["seconds"]} for row in rows]


def _recorded_trainer(quick: bool) -> list[dict] | None:
    """Flip-flop width-64 rows at 3 and 32 seeds of a train_throughput run (quick: its quick run)."""
    path = RESULTS_DIR / (
        "train_throughput.quick.json" if quick else "train_throughput.json"
    )
    if not path.exists():
        return None
    rows = [
        {
            "seeds": row["seeds"],
            # Written as null where that run could not time it.
            "gflop_per_s": row["jax_gflop_per_s"] or math.nan,
            "source": str(path),
        }
        for row in json.loads(path.read_text())["rows"]
        if row["task"] == "flipflop"
        and row["widths"] == "64"
        and row["seeds"] in MODEL_COUNTS
    ]
    return rows or None


def _measured_trainer(quick: bool, cpu_devices: int) -> list[dict]:
    rows = []
    for seeds in MODEL_COUNTS:
        spec = {
            "task": "flipflop",
            "task_params": {},
            "widths": [SMALL],
            "seeds": seeds,
            "chunk_steps": 32 if quick else 256,
            "chunks": 2,
            "min_seconds": 1.0 if quick else 10.0,
            "max_chunks": 4 if quick else 256,
            "batch_size": SMALL,
        }
        rows.append(
            {
                "seeds": seeds,
                "gflop_per_s": run_jax(spec, cpu_devices)["jax_gflop_per_s"],
                "source": "measured here",
            }
        )
    return rows


def fractions(trainer: list[dict], ceiling_rows: list[dict]) -> list[dict]:
    return [
        {
            "seeds": t["seeds"],
            "trainer_gflop_per_s": t["gflop_per_s"],
            "ceiling": c["name"],
            "ceiling_gflop_per_s": c["gflop_per_s"],
            "fraction": t["gflop_per_s"] / c["gflop_per_s"],
        }
        for t in trainer
        for c in ceiling_rows
    ]


def arguments(argv=None):
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--measure-trainer", action="store_true", help="measure the trainer even if results exist")
    cli.add_argument("--seconds", type=float, default=None, help="timing per ceiling, at least (default 3, quick 0.3)")
    args = cli.parse_args(argv)
    use_devices(args)
    return args


def main(argv=None) -> None:
    args = arguments(argv)
    seconds = args.seconds or (0.3 if args.quick else 3.0)
    ceiling_rows = ceilings(seconds)
    trainer = None if args.measure_trainer else _recorded_trainer(args.quick)
    trainer = trainer or _measured_trainer(args.quick, args.cpu_devices)
    print_table(
        ceiling_rows,
        (
            ("name", "ceiling", ""),
            ("gflop", "GFLOP/call", ".4f"),
            ("seconds", "s/call", ".2e"),
            ("gflop_per_s", "GFLOP/s", ".1f"),
        ),
        title=f"FLOP ceilings (float32, jit, backend {jax.default_backend()})",
    )
    print(
        f"\ngemm: 2·N³ / time of one {GEMM_SIZE}² matmul. chain M: {CHAIN_LENGTH} dependent [M,64,64] @ [M,64,64] "
        f"products in one fori_loop, 2·M·64³·{CHAIN_LENGTH} / time.\nscan M: one {SCAN_STEPS}-step scan of "
        f"h ← tanh(h @ W), h [M,64,64], 2·M·64·64²·{SCAN_STEPS} / time (tanh not counted). Fastest of repeats."
    )
    fraction_rows = fractions(trainer, ceiling_rows)
    print_table(
        fraction_rows,
        (
            ("seeds", "seeds", "d"),
            ("trainer_gflop_per_s", "trainer GFLOP/s", ".1f"),
            ("ceiling", "ceiling", ""),
            ("ceiling_gflop_per_s", "ceiling GFLOP/s", ".1f"),
            ("fraction", "fraction", ".2f"),
        ),
        title=f"Trainer (flipflop, Nh=64, batch 64) vs ceilings; trainer figures: {trainer[0]['source']}",
    )
    print(
        "\ntrainer GFLOP/s: models·steps/s × 3 × 2·B·T·Nh² (forward, dL/dh, dL/dW_hh matmuls)."
    )
    payload = {
        "settings": {
            "gemm_size": GEMM_SIZE,
            "chain_length": CHAIN_LENGTH,
            "scan_steps": SCAN_STEPS,
            "seconds": seconds,
        },
        "ceilings": ceiling_rows,
        "trainer": trainer,
        "fractions": fraction_rows,
    }
    path = write_json(NAME, payload, args.out, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
