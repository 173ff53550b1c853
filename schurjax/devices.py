"""Devices: every CPU core as a JAX device, and independent models split across devices.

XLA runs one device's small matmuls on one core, so by default a multi-core CPU trains on a
single core. Exposing every core as its own CPU device (:func:`use_cpu_cores`) lets
:func:`map_models` split the models of training and evaluation across them (measured 1.5–1.7×
faster on 2 cores). That must happen before JAX runs its first computation, which is why entry
points (``experiments/``, ``benchmarks/``) call it first thing, and the library never does it
behind a user's back. The same holds for the other process-wide setting here, the compilation
cache (:func:`use_compilation_cache`).
"""

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_cpu_cores(count: int | None = None) -> int:
    """Expose ``count`` CPU devices to JAX (default: one per available core); returns the count.

    Accelerators are unaffected: with a GPU or TPU present, JAX still computes on it.
    """
    count = available_cores() if count is None else count
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"cpu_devices must be a positive integer or null (all cores); got {count!r}")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as error:
        raise RuntimeError(
            "use_cpu_cores() must run before JAX computes anything (it sets the CPU device count "
            "of the process); call it at the top of your script or notebook"
        ) from error
    return count


def use_compilation_cache(directory: str | os.PathLike | None) -> None:
    """Keep every compiled program in ``directory`` (None: off), so that later runs load it
    instead of compiling it again.

    Compilation is a large share of a short run on a CPU (training's program alone takes ~5 s per
    device), and every job of a sweep compiles the same programs. A loaded program is the same
    machine code, so results are byte-identical with and without the cache. The least recently
    used programs are evicted beyond 1 GiB. Like :func:`use_cpu_cores`, call it before JAX
    compiles anything.
    """
    if directory is None:
        return
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # the many small programs (data generation, evaluation) add up to more than training's
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # a size limit makes JAX lock the directory, so that concurrent jobs (a sweep) share it safely
    jax.config.update("jax_compilation_cache_max_size", 1 << 30)


def on_cpu() -> bool:
    """Whether JAX computes on the CPU (no GPU or TPU in use)."""
    return jax.default_backend() == "cpu"


def model_mesh() -> jax.sharding.Mesh:
    """All devices along one axis, ``"models"``: independent models need no communication."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("models",))


def pad_models(tree, count: int, group: int = 1):
    """Repeat the last model until the leading (model) axis of every leaf is a multiple of
    ``group`` × the device count, so that it splits evenly into equal groups on every device;
    the copies' results are to be dropped.

    Equal groups are what make a model's result independent of its neighbours: every model then
    runs in a program of one fixed shape (``group`` models vmapped together), whatever the number
    of models and devices; a remainder group of another size would be compiled differently and
    round differently.
    """
    extra = -count % (group * jax.device_count())
    if extra == 0:  # leaves as they are (and where they are: already split across devices)
        return tree
    return _repeat_last(tree, extra)


def _repeat_last(tree, extra: int):
    """Every leaf with its last model repeated ``extra`` more times along the model axis."""
    return jax.tree.map(lambda leaf: jnp.concatenate([leaf, jnp.repeat(leaf[-1:], extra, axis=0)]), tree)


def split_groups(tree, count: int, group: int) -> list:
    """The ``count`` models of ``tree`` as stacks of exactly ``group`` models each, the last
    one filled with copies of the last model (whose results are to be dropped), each placed on a
    device in turn.

    A jitted function of one such stack compiles to the same single-device program whatever the
    number of models and devices, so every model's result is bitwise independent of both (see
    :func:`schurjax.train.train_models`). Unlike :func:`map_models`, whose program is partitioned
    across the whole mesh and so is compiled, and rounds, differently on 1 and on 2 devices.
    """
    padded = _repeat_last(tree, -count % group)
    n_groups, devices = -(-count // group), jax.devices()
    return [
        jax.device_put(
            jax.tree.map(lambda leaf, i=i: leaf[i * group : (i + 1) * group], padded), devices[i % len(devices)]
        )
        for i in range(n_groups)
    ]


def join_groups(groups: list, count: int):
    """Inverse of :func:`split_groups`, on the host: the first ``count`` models as numpy stacks."""
    return jax.tree.map(lambda *leaves: np.concatenate([np.asarray(leaf) for leaf in leaves])[:count], *groups)


def map_models(fn: Callable, models_per_call: int | None, n_shared: int = 0) -> Callable:
    """``fn`` over the leading (model) axis of its first arguments, on every device at once.

    The returned function takes ``(*mapped, *shared)``: the last ``n_shared`` arguments reach
    every call whole, the others are split across the devices of :func:`model_mesh` (their
    leading axis must divide evenly; see :func:`pad_models`), and each device applies ``fn`` to
    ``models_per_call`` of its models at a time (``None``: all of them in one vmap); pad with
    ``pad_models(tree, count, models_per_call)`` so that no smaller remainder group is left. Call it
    under ``jit``. The program has no cross-device communication; read its (split) results on
    the host, e.g. with ``np.asarray``, rather than reducing or slicing them in further jitted
    code, which would compile to collectives (see :func:`schurjax.train.train_models`).
    """

    def mapped_fn(*args):
        n_mapped = len(args) - n_shared

        def on_one_device(*local):
            mapped, shared = local[:n_mapped], local[n_mapped:]
            one = lambda mapped_one: fn(*mapped_one, *shared)  # noqa: E731
            if models_per_call is None:
                return jax.vmap(one)(mapped)
            return jax.lax.map(one, mapped, batch_size=models_per_call)

        split, whole = jax.sharding.PartitionSpec("models"), jax.sharding.PartitionSpec()
        run = jax.shard_map(
            on_one_device, mesh=model_mesh(), in_specs=(split,) * n_mapped + (whole,) * n_shared, out_specs=split
        )
        return run(*args)

    return mapped_fn
