"""Shared helpers of the benchmarks: timing, FLOP counting, machine info, JSON, tables, isolation.

JAX and torch are imported inside the functions that need them, so that the PyTorch reference
runs in a subprocess without the JAX runtime in its memory.

Every benchmark script builds on the same pieces: a command line with ``--quick`` and ``--out``,
a table printed to stdout, a JSON file under ``benchmarks/results/`` that records the machine
beside the numbers, and (where peak memory matters) one fresh subprocess per configuration.
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from schurjax.provenance import code_commit

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Prefix of the one stdout line that carries a subprocess's result, so that library output
# (warnings, progress) printed by the child cannot be mistaken for it.
RESULT_MARKER = "BENCHMARK_RESULT "


# ---------------------------------------------------------------- timing and counting


def timed(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """``(result, seconds)`` of one call; JAX results are waited for, so the time is the work's."""
    import jax

    start = time.perf_counter()
    result = jax.block_until_ready(fn(*args, **kwargs))
    return result, time.perf_counter() - start


def best_time(fn: Callable, *args, repeats: int = 5, min_seconds: float = 0.0) -> float:
    """Fastest of ``repeats`` calls (at least as many as fill ``min_seconds``), after one warm-up.

    The minimum is the least disturbed by other processes on a shared machine; the warm-up call
    absorbs compilation.
    """
    timed(fn, *args)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_seconds:
        times.append(timed(fn, *args)[1])
    return min(times)


def recurrent_gflop_per_model_step(batch: int, seq_len: int, width: int) -> float:
    """GFLOP of the recurrent matmuls in one training step of one model: 3 × 2·B·T·Nh².

    One forward product W_hh h_{t-1} and, in the backward pass, one for dL/dh_{t-1} and one for
    dL/dW_hh, each 2·B·Nh² multiply-adds per time step. Input and readout projections, tanh,
    the loss and Adam are not counted, so this understates the work actually done.
    """
    return 3 * 2 * batch * seq_len * width**2 / 1e9


def bracketed_reference(measure: Callable[[], dict], between: Callable[[], object]) -> tuple[object, dict]:
    """``between()``'s result, and the reference ``measure()`` taken just before and just after it:
    the first measurement with its rate replaced by the mean of both (both kept as
    ``torch_rates_before_after``). This machine's speed drifts within minutes; a ratio against a
    reference measured only once, before or after, moves with it."""
    before = measure()
    result = between()
    after = measure()
    rates = [reference["torch_models_steps_per_s"] for reference in (before, after)]
    return result, before | {"torch_models_steps_per_s": float(np.mean(rates)), "torch_rates_before_after": rates}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_peak_mb() -> float | None:
    """Peak memory the first accelerator has held for this process, in MiB; None on the CPU.

    On the CPU JAX's buffers live in the process, so peak RSS already counts them.
    """
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**20


# ---------------------------------------------------------------- machine description


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What the numbers depend on: CPU, cores, library versions, JAX backend and devices."""
    import jax

    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        # Cores this process may actually run on (containers and taskset restrict it).
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(device) for device in jax.devices()],
        "jax_device_kind": jax.devices()[0].device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        import torch

        info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    except ImportError:
        info |= {"torch": None, "torch_threads": None}
    return info


# ---------------------------------------------------------------- command line and output


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark shares; scripts add their own."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that the script runs"
    )
    result.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (default benchmarks/results/<name>.json)",
    )
    result.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="JAX CPU devices, models split across them (default: one per core; 1: one core)",
    )
    # Internal: run one configuration (a JSON dict) in this process and print its result.
    result.add_argument("--one", default=None, help=argparse.SUPPRESS)
    return result


def use_devices(args: argparse.Namespace) -> None:
    """Give JAX ``args.cpu_devices`` CPU devices, as the experiments do; before any JAX work."""
    from schurjax.devices import use_cpu_cores

    args.cpu_devices = use_cpu_cores(args.cpu_devices)


def write_json(
    name: str, payload: dict, out: Path | None = None, quick: bool = False
) -> Path:
    """Write ``payload`` with the machine description to ``out`` or results/<name>[.quick].json.

    Quick runs go to their own file by default so that they never overwrite a full measurement.
    """
    path = (
        out
        if out is not None
        else RESULTS_DIR / (f"{name}.quick.json" if quick else f"{name}.json")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"benchmark": name, "quick": quick, "commit": code_commit(), "machine": machine_info()}
    path.write_text(json.dumps(_strict(header | payload), indent=2) + "\n")
    return path


def _strict(tree):
    """``tree`` with NaN and infinities as None: JSON has no non-finite numbers."""
    if isinstance(tree, dict):
        return {key: _strict(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [_strict(value) for value in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def _formatted(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return format(value, fmt)


def print_table(
    rows: Sequence[dict], columns: Sequence[tuple[str, str, str]], title: str = ""
) -> None:
    """Print ``rows`` as an aligned text table; ``columns`` are (key, header, format spec)."""
    cells = [[header for _, header, _ in columns]]
    cells += [
        [_formatted(row.get(key), fmt) for key, _, fmt in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    if title:
        print(f"\n{title}")
    for index, line in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


# ---------------------------------------------------------------- subprocess isolation


def run_isolated(module: str, spec: dict, cpu_devices: int | None = None) -> dict:
    """Run one configuration as ``python -m <module> --one <spec>`` in a fresh process.

    A fresh process gives each configuration its own peak RSS and no compilation caches or
    allocations left over from an earlier one. ``cpu_devices`` is passed on to a JAX child.
    """
    devices = [] if cpu_devices is None else ["--cpu-devices", str(cpu_devices)]
    completed = subprocess.run(
        [sys.executable, "-m", module, "--one", json.dumps(spec), *devices],
        check=False,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    raise RuntimeError(
        f"{module} --one {spec} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}"
    )


def serve_one(spec_json: str, measure: Callable[..., dict]) -> None:
    """The child side of :func:`run_isolated`: measure one configuration, print it with its peak RSS."""
    result = measure(**json.loads(spec_json))
    result["peak_rss_mb"] = peak_rss_mb()
    if "jax" in sys.modules:
        result["device_peak_mb"] = device_peak_mb()
    print(RESULT_MARKER + json.dumps(result), flush=True)
