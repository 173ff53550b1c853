"""Analysis throughput: ordered Schur + 8 ablations on the host, batched evaluation on the device.

    python -m benchmarks.analysis_throughput [--quick] [--out FILE]

For each model count n the benchmark runs ``schurjax.pipeline.analyse`` on n flip-flop networks
(Nh = 64): ordered Schur, the 8 ablations, one batched evaluation (each full model rolled out once
as the reference, its 7 ablations against it) and the subspace-diagnostic columns, i.e. every
result row of a run except the random controls. It compiles anew for every n (the network count
is a static shape), so it is called twice: compile = first call − second call, and the second call
is the analysis time reported. Separately timed:

- host: ``ordered_schur`` and ``ablate_all`` (the 8 coupling subsets at α) of every W_hh, in
  float64 numpy/scipy, one model after another;
- device (and the rest): analysis time − host time.

The weights are untrained ``init_model("dense_default", ...)`` networks: Schur, ablation and
evaluation do the same work whatever the weights, so training them first would add only time.
"""

import jax

from ._common import parser, print_table, timed, use_devices, write_json

NAME = "analysis_throughput"
MODEL_COUNTS = (1, 4, 16, 64, 100, 256)
QUICK_MODEL_COUNTS = (1, 4, 16)
WIDTH = 64
ALPHA = 0.9
TARGET_MODELS, TARGET_SECONDS = 100, 10.0


def make_weights(count: int, width: int, task) -> list:
    """Host weights of ``count`` fresh dense_default networks for ``task``."""
    from schurjax.model import init_model
    from schurjax.weights import export_weights

    keys = jax.random.split(jax.random.key(0), count)
    return [
        export_weights(init_model("dense_default", width, task.n_in, task.n_out, key))
        for key in keys
    ]


def host_analysis(weights: list, alpha: float) -> list:
    """Ordered Schur and the 8 ablations of every network: the w_tilde stacks."""
    from schurjax.interventions import ablate_all
    from schurjax.schur import ordered_schur

    return [ablate_all(w.w_hh, ordered_schur(w.w_hh), alpha).w_tilde for w in weights]


def analyse_models(weights: list, data, config, alpha: float) -> list:
    """Every result row of the n networks, as a run computes them."""
    from schurjax.pipeline import TrainedModel, analyse

    trained = [
        TrainedModel("dense_default", WIDTH, seed, w, train_loss=None, train_steps=None, diverged=False)
        for seed, w in enumerate(weights)
    ]
    return analyse(trained, data, task="flipflop", alpha=alpha, config=config)


def measure(count: int, task, data, config, alpha: float) -> dict:
    """Host and total analysis seconds for ``count`` models."""
    weights = make_weights(count, WIDTH, task)
    # Small counts take milliseconds on the host: the fastest of 3 runs is the least disturbed.
    host_s = min(timed(host_analysis, weights, alpha)[1] for _ in range(3 if count < 16 else 1))
    _, first_s = timed(analyse_models, weights, data, config, alpha)
    _, total_s = timed(analyse_models, weights, data, config, alpha)
    return {
        "models": count,
        "variants": 8 * count,
        "host_s": host_s,
        "eval_compile_s": first_s - total_s,
        "eval_s": total_s - host_s,
        "total_s": total_s,
        "total_with_compile_s": first_s,
        "host_ms_per_model": 1e3 * host_s / count,
        "eval_ms_per_model": 1e3 * (total_s - host_s) / count,
        "total_ms_per_model": 1e3 * total_s / count,
    }


COLUMNS = (
    ("models", "models", "d"),
    ("host_s", "host Schur+ablate s", ".3f"),
    ("eval_compile_s", "eval compile s", ".2f"),
    ("eval_s", "device+rest s", ".3f"),
    ("total_s", "total s", ".3f"),
    ("total_with_compile_s", "total+compile s", ".2f"),
    ("host_ms_per_model", "host ms/model", ".1f"),
    ("eval_ms_per_model", "device+rest ms/model", ".1f"),
    ("total_ms_per_model", "total ms/model", ".1f"),
)


def main(argv=None) -> None:
    from schurjax.evaluate import EvalConfig, held_out_set
    from schurjax.tasks import make_task

    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--models", nargs="+", type=int, default=None, help="model counts")
    cli.add_argument(
        "--trials", type=int, default=EvalConfig().trials, help="held-out trials"
    )
    args = cli.parse_args(argv)
    use_devices(args)
    counts = args.models or (QUICK_MODEL_COUNTS if args.quick else MODEL_COUNTS)
    task = make_task("flipflop")
    config = EvalConfig(trials=args.trials, random_controls=0)
    data = held_out_set(task, config)
    rows = [measure(count, task, data, config, ALPHA) for count in counts]
    print_table(
        rows,
        COLUMNS,
        title=f"Analysis throughput (flipflop, Nh={WIDTH}, α={ALPHA}, {args.trials} trials)",
    )
    print(
        "\nhost: ordered_schur + ablate_all per model (float64, sequential); total: pipeline.analyse "
        "(Schur, 8 ablations,\nbatched evaluation, subspace columns), second call (compile = first − second); "
        "device+rest = total − host."
    )
    for row in rows:
        if row["models"] == TARGET_MODELS:
            print(
                f"{TARGET_MODELS} models: {row['total_s']:.2f} s ({row['total_with_compile_s']:.2f} s with "
                f"compile); target < {TARGET_SECONDS:.0f} s"
            )
    settings = {
        "counts": list(counts),
        "width": WIDTH,
        "alpha": ALPHA,
        "trials": args.trials,
        "models_per_call": config.models_per_call,
        "weights": "init_model('dense_default'), untrained",
    }
    path = write_json(NAME, {"settings": settings, "rows": rows}, args.out, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
