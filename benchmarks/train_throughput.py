"""Training throughput of the vmapped trainer vs a sequential PyTorch reference.

    python -m benchmarks.train_throughput [--quick] [--out FILE]

For every task, width set and seed count the JAX trainer runs through its public entry point
``schurjax.train.train_models`` (which compiles anew on every call), in a fresh subprocess:

- a throwaway call on one tiny model absorbs the process's one-off costs (backend start-up,
  first tracing of optax and equinox code), which would otherwise land in t_short alone;
- t_short: a call with ``steps = chunk`` (tracing + compilation + host set-up + 1 chunk);
- t_long:  a call with ``steps = (k+1)·chunk`` (the same, + k more chunks); k starts at
  ``--chunks`` and grows (new calls) until the k chunks take at least ``--min-seconds``, since
  compile times vary by a second or more and the difference must dwarf that;
- throughput = k·chunk·models / (t_long − t_short) model·steps/s, the steady state;
- compile    = t_short − (t_long − t_short)/k, i.e. t_short less one chunk of training: tracing,
  XLA compilation and the host work around it (stacking, padding, unstacking the models).

A width set such as 56,64,72 trains ``seeds`` models at each width, zero-padded to the largest,
in one program. The PyTorch reference (``_torch_reference``) trains one model per width in turn;
its rate does not depend on the seed count, so it is measured per (task, width set), just before
and just after the JAX seed counts, and their mean is the reference (both are in the JSON): this
machine's speed drifts within minutes.

GFLOP/s count only the recurrent matmuls, 3 × 2·B·T·Nh² per model step at each model's true
width (padding not counted), so the JAX/PyTorch ratio is the same in both units. Peak RSS is
each subprocess's ``ru_maxrss``; the PyTorch process holds no JAX runtime.
"""

import functools
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from ._common import (
    bracketed_reference,
    parser,
    print_table,
    recurrent_gflop_per_model_step,
    run_isolated,
    serve_one,
    timed,
    use_devices,
    write_json,
)

NAME = "train_throughput"
TASKS = {"flipflop": {}, "copy": {}}
SEEDS = (1, 3, 8, 32, 128)
WIDTH_SETS = ((64,), (56, 64, 72))
QUICK_SEEDS = (1, 3)
QUICK_TASKS = ("flipflop",)
CONSTRUCTION = "dense_orthogonal"


def model_widths(widths: list[int], seeds: int) -> list[int]:
    """The width of every model: ``seeds`` models at each width of the set."""
    return [width for width in widths for _ in range(seeds)]


def mean_gflop_per_model_step(task, widths: list[int], batch_size: int) -> float:
    return statistics.fmean(
        recurrent_gflop_per_model_step(batch_size, task.seq_len, w) for w in widths
    )


def _train(
    task, widths: list[int], steps: int, chunk_steps: int, batch_size: int
):
    """One timed ``train_models`` call on fresh models; (result, seconds)."""
    from schurjax.model import init_model
    from schurjax.train import TrainConfig, train_models

    keys = jax.random.split(jax.random.key(0), 2 * len(widths))
    models = [
        init_model(CONSTRUCTION, width, task.n_in, task.n_out, key)
        for width, key in zip(widths, keys[: len(widths)])
    ]
    config = TrainConfig(
        steps=steps, batch_size=batch_size, chunk_steps=chunk_steps
    )
    return timed(
        train_models, task, config, models, list(keys[len(widths) :]), progress=False
    )


def _long_call(
    task,
    widths,
    chunk_steps,
    chunks,
    batch_size,
    t_short,
    min_seconds,
    max_chunks,
):
    """(result, t_long, k): the first k >= ``chunks`` whose k extra chunks take >= ``min_seconds``."""
    while True:
        steps = (chunks + 1) * chunk_steps
        result, t_long = _train(task, widths, steps, chunk_steps, batch_size)
        extra = t_long - t_short
        if extra >= min_seconds or chunks >= max_chunks:
            return result, t_long, chunks
        # Aim 20% past the target; never more than 8× at once, since a noisy small difference
        # (even a negative one) says little about the chunk time.
        growth = 1.2 * min_seconds / extra if extra > 0 else 8.0
        chunks = min(max_chunks, max(chunks + 1, math.ceil(chunks * min(growth, 8.0))))


def measure_jax(
    task: str,
    task_params: dict,
    widths: list[int],
    seeds: int,
    chunk_steps: int,
    chunks: int,
    min_seconds: float,
    max_chunks: int,
    batch_size: int,
) -> dict:
    """Steady-state model·steps/s and compile time of ``train_models`` for one configuration."""
    from schurjax.tasks import make_task

    task_object = make_task(task, **task_params)
    widths_all = model_widths(widths, seeds)
    _train(
        task_object, [8], 1, 1, batch_size
    )  # absorbs one-off costs; see module doc
    _, t_short = _train(
        task_object, widths_all, chunk_steps, chunk_steps, batch_size
    )
    result, t_long, chunks = _long_call(
        task_object,
        widths_all,
        chunk_steps,
        chunks,
        batch_size,
        t_short,
        min_seconds,
        max_chunks,
    )
    # A difference that never grew past zero (a machine too busy to measure) gives no rate.
    extra = t_long - t_short if t_long > t_short else math.nan
    rate = chunks * chunk_steps * len(widths_all) / extra
    return {
        "models": len(widths_all),
        "seq_len": task_object.seq_len,
        "jax_models_steps_per_s": rate,
        "jax_gflop_per_s": rate
        * mean_gflop_per_model_step(task_object, widths_all, batch_size),
        "compile_s": t_short - extra / chunks,
        "t_short_s": t_short,
        "t_long_s": t_long,
        "chunk_steps": chunk_steps,
        "chunks_timed": chunks,
        "final_loss_median": float(np.nanmedian(result.final_loss)),
        "diverged": int(result.diverged.sum()),
    }


def run_jax(spec: dict, cpu_devices: int) -> dict:
    """:func:`measure_jax` in a fresh process (its own peak RSS, no caches from earlier runs)."""
    return run_isolated(f"benchmarks.{NAME}", spec, cpu_devices)


def _write_pool(task, batch_size: int, pool_size: int, path: Path) -> None:
    """Pre-generate the PyTorch reference's batches with the same schurjax task generator."""
    keys = jax.random.split(jax.random.key(1), pool_size)
    # One vmapped call rather than pool_size calls of op-by-op dispatches.
    inputs, targets, mask = jax.vmap(lambda key: task(key, batch_size))(keys)
    np.savez(
        path,
        inputs=np.asarray(inputs, np.float32),
        targets=np.asarray(targets, np.float32),
        mask=np.asarray(mask),
    )


def run_torch(task: str, task_params: dict, widths: list[int], args) -> dict:
    """The sequential PyTorch reference for one (task, width set), in its own process."""
    from schurjax.tasks import make_task

    task_object = make_task(task, **task_params)
    with tempfile.TemporaryDirectory() as directory:
        pool = Path(directory) / "pool.npz"
        _write_pool(task_object, args.batch_size, args.pool_size, pool)
        result = run_isolated(
            "benchmarks._torch_reference",
            {
                "pool": str(pool),
                "widths": list(widths),
                "n_in": task_object.n_in,
                "n_out": task_object.n_out,
                "lr": 1e-3,
                "min_seconds": args.torch_seconds,
                "warmup_steps": 5,
                "threads": args.torch_threads,
            },
        )
    gflop = mean_gflop_per_model_step(task_object, list(widths), args.batch_size)
    return result | {
        "torch_gflop_per_s": result["torch_models_steps_per_s"] * gflop,
        "torch_peak_rss_mb": result.pop("peak_rss_mb"),
    }


def _log(message: str) -> None:
    # Progress goes to stderr, so that stdout holds the table only.
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _measure_jax(task: str, widths: list[int], args) -> list[tuple[int, dict]]:
    """(seed count, JAX result) for one (task, width set), one per seed count."""
    measured = []
    for seeds in args.seeds:
        _log(f"jax: {task} widths {','.join(map(str, widths))} seeds {seeds}")
        spec = {
            "task": task,
            "task_params": TASKS[task],
            "widths": list(widths),
            "seeds": seeds,
            "chunk_steps": args.chunk_steps,
            "chunks": args.chunks,
            "min_seconds": args.min_seconds,
            "max_chunks": args.max_chunks,
            "batch_size": args.batch_size,
        }
        measured.append((seeds, run_jax(spec, args.cpu_devices)))
    return measured


def measure_all(args) -> list[dict]:
    """One row per (task, width set, seed count): JAX, and PyTorch measured just before and after it."""
    rows = []
    for task in args.tasks:
        for widths in args.widths:
            _log(f"torch, before and after jax: {task} widths {','.join(map(str, widths))}")
            measured, reference = bracketed_reference(
                functools.partial(run_torch, task, TASKS[task], widths, args),
                functools.partial(_measure_jax, task, widths, args),
            )
            for seeds, jax_result in measured:
                rows.append(
                    {"task": task, "widths": ",".join(map(str, widths)), "seeds": seeds}
                    | jax_result
                    | {"jax_peak_rss_mb": jax_result.pop("peak_rss_mb")}
                    | reference
                    | {"ratio": jax_result["jax_models_steps_per_s"] / reference["torch_models_steps_per_s"]}
                )
    return rows


COLUMNS = (
    ("task", "task", ""),
    ("widths", "widths", ""),
    ("seeds", "seeds", "d"),
    ("models", "models", "d"),
    ("jax_models_steps_per_s", "JAX m·steps/s", ".0f"),
    ("compile_s", "compile s", ".1f"),
    ("jax_gflop_per_s", "JAX GFLOP/s", ".1f"),
    ("jax_peak_rss_mb", "JAX RSS MiB", ".0f"),
    ("device_peak_mb", "GPU MiB", ".0f"),
    ("torch_models_steps_per_s", "torch m·steps/s", ".0f"),
    ("torch_gflop_per_s", "torch GFLOP/s", ".1f"),
    ("torch_peak_rss_mb", "torch RSS MiB", ".0f"),
    ("ratio", "JAX/torch", ".2f"),
)


def _width_set(text: str) -> tuple[int, ...]:
    return tuple(int(width) for width in text.split(","))


def arguments(argv=None):
    from schurjax.train import TrainConfig

    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=None)
    cli.add_argument("--seeds", nargs="+", type=int, default=None)
    cli.add_argument("--widths", nargs="+", type=_width_set, default=list(WIDTH_SETS), help="e.g. 64 56,64,72")
    cli.add_argument("--batch-size", type=int, default=64)
    cli.add_argument("--chunk-steps", type=int, default=None, help="default: TrainConfig's (quick: 32)")
    cli.add_argument("--chunks", type=int, default=2, help="chunks timed beyond the first, at least")
    cli.add_argument(
        "--min-seconds", type=float, default=None, help="time of the timed chunks, at least (default 10, quick 2)"
    )
    cli.add_argument("--max-chunks", type=int, default=None, help="cap on the timed chunks (default 256, quick 8)")
    cli.add_argument("--torch-seconds", type=float, default=None, help="PyTorch timing per width set (default 4)")
    cli.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the reference (default: torch's own, all cores)",
    )
    cli.add_argument("--pool-size", type=int, default=64, help="pre-generated batches cycled by PyTorch")
    args = cli.parse_args(argv)
    use_devices(args)
    quick = args.quick
    args.tasks = args.tasks or list(QUICK_TASKS if quick else TASKS)
    args.seeds = args.seeds or list(QUICK_SEEDS if quick else SEEDS)
    args.chunk_steps = args.chunk_steps or (32 if quick else TrainConfig().chunk_steps)
    args.min_seconds = args.min_seconds or (2.0 if quick else 10.0)
    args.max_chunks = args.max_chunks or (8 if quick else 256)
    args.torch_seconds = args.torch_seconds or (1.0 if quick else 4.0)
    return args


def main(argv=None) -> None:
    args = arguments(argv)
    if args.one is not None:
        serve_one(args.one, measure_jax)
        return
    rows = measure_all(args)
    print_table(
        rows,
        COLUMNS,
        title=f"Training throughput (batch {args.batch_size})",
    )
    print(
        "\nJAX: k·chunk·models / (t_long − t_short), compile = t_short − one chunk (see the module "
        f"docstring); torch: sequential, {rows[0]['torch_threads']} thread(s), "
        "batches pre-generated (not timed).\nGFLOP/s: 3 × 2·B·T·Nh² per model step (recurrent matmuls "
        "only, true widths)."
    )
    settings = {
        name: getattr(args, name)
        for name in (
            "tasks",
            "seeds",
            "widths",
            "batch_size",
            "chunk_steps",
            "chunks",
            "min_seconds",
            "max_chunks",
            "torch_seconds",
            "torch_threads",
            "pool_size",
        )
    }
    path = write_json(
        NAME,
        {"settings": settings, "construction": CONSTRUCTION, "rows": rows},
        args.out,
        args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
