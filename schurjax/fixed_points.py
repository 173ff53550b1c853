"""Fixed points of full and ablated networks (Sussillo & Barak 2013; Golub's fixed-point-finder).

For a constant input x*, a fixed point solves h = F(h, x*) = tanh(W_xh x* + W_hh h + b_h). The
finder minimises the speed q(h) = ½‖F(h, x*) − h‖² with Adam from many states sampled on the
network's own held-out trajectories (plus a little noise), for a fixed number of steps; one
jitted program covers every start, input and network (stacked, padded to one width). Host code
(numpy, float64) then keeps the points with q below a tolerance, merges duplicates, classifies
each by the eigenvalues of its Jacobian diag(1 − F²) W_hh (stable: max |λ| < 1), and matches the
fixed points of each ablated network to those of its full network.

Minimising q also finds saddles and unstable points, which a forward simulation never reaches;
the slow points of a continuous attractor (cdi's integrator) pass the tolerance too, so there a
count measures how finely the attractor is sampled, not a number of isolated points.
"""

from collections.abc import Mapping, Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._typing import Array, Float, Int, Key, PRNGKeyArray
from .evaluate import stack_weights
from .interventions import SUBSETS, ablate_all, parse_subset
from .model import TanhRNN
from .schur import ordered_schur
from .subspace import DiagnosticsConfig, state_geometry
from .tasks import CdiTask, SineTask, Task
from .weights import RNNWeights

FIXED_POINT_COLUMNS = (
    "task", "construction", "width", "seed", "alpha", "subset", "input_level", "fp_index", "q", "pc1", "pc2",
    "max_abs_eig", "stable", "matched_full_index", "displacement", "stability_changed",
)
FIXED_POINT_SUMMARY_COLUMNS = (
    "task", "construction", "width", "seed", "alpha", "subset", "input_level", "n_fixed_points", "n_stable",
    "n_full", "n_full_survived", "mean_displacement", "n_stability_changed", "delta_fvu",
)


def rest_inputs(task: Task, levels: int) -> tuple[list[str], Float[np.ndarray, "L Nx"]]:
    """The constant inputs x* whose fixed points are sought, with a label for each.

    - flipflop, copy: zero, the input between pulses and during replay, where the memories
      (flip-flop: up to 2³ = 8 attractors) must persist on their own;
    - sine: the static cue at ``levels`` evenly spaced x in [0, 1] (input x + cue_offset), where
      Sussillo & Barak find one input-dependent fixed point the oscillation turns around;
    - cdi: zero (fixation, delay and decision: the integrator must hold its value) and each
      context cue with silent sensory channels, the linearisation points of Mante et al. 2013.
    """
    if isinstance(task, SineTask):
        cues = np.linspace(0.0, 1.0, levels) if levels > 1 else np.array([0.5])
        return [f"cue={x:.3g}" for x in cues], (cues + task.cue_offset)[:, None]
    if isinstance(task, CdiTask):
        return ["zero", "context0", "context1"], np.array([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
    return ["zero"], np.zeros((1, task.n_in))


def speed(h: Float[Array, " Nh"], w_hh: Float[Array, "Nh Nh"], drive: Float[Array, " Nh"]) -> Float[Array, ""]:
    """q(h) = ½‖tanh(drive + W_hh h) − h‖², drive = W_xh x* + b_h."""
    residual = jnp.tanh(drive + w_hh @ h) - h
    return 0.5 * jnp.sum(residual * residual)


@eqx.filter_jit
def sample_starts(
    models: TanhRNN, inputs: Float[Array, "B T Nx"], keys: Key[Array, " M"], n_starts: int, noise: float
) -> Float[Array, "M S Nh"]:
    """Per model, ``n_starts`` states drawn from its own rollouts on ``inputs``, plus Gaussian noise.

    ``keys`` holds one key per model; models given the same key draw the same trials, steps and
    noise, so the starts of an ablated network are paired with those of its full network.
    """

    def one(model, key):
        states = model.hidden_states(inputs)
        states = states.reshape(-1, states.shape[-1])
        pick_key, noise_key = jax.random.split(key)
        picked = states[jax.random.randint(pick_key, (n_starts,), 0, states.shape[0])]
        jittered = picked + noise * jax.random.normal(noise_key, picked.shape)
        # padded units stay exactly zero, as in the network itself
        return jnp.where(model.unit_mask[None, :], jittered, 0.0)

    return jax.vmap(one)(models, keys)


@eqx.filter_jit
def minimise_speed(
    w_hh: Float[Array, "M Nh Nh"],
    drives: Float[Array, "M L Nh"],
    starts: Float[Array, "M S Nh"],
    iterations: int,
    learning_rate: float,
) -> tuple[Float[Array, "M L S Nh"], Float[Array, "M L S"]]:
    """Adam on q from every start, for every input level and model: (end points, their speeds)."""
    # A decaying step lets Adam, whose steps do not shrink with the gradient, settle into q ≈ 0.
    optimiser = optax.adam(optax.exponential_decay(learning_rate, iterations, decay_rate=1e-3))

    def descend(w, drive, h0):
        speeds = jax.vmap(speed, (0, None, None))

        def step(carry, _):
            h, state = carry
            # starts are independent: the gradient of the summed speed is each start's own
            gradient = jax.grad(lambda x: speeds(x, w, drive).sum())(h)
            # optax mixes Python floats with its int32 step count, which strict promotion refuses
            with jax.numpy_dtype_promotion("standard"):
                updates, state = optimiser.update(gradient, state)
            return (optax.apply_updates(h, updates), state), None

        (h, _), _ = jax.lax.scan(step, (h0, optimiser.init(h0)), length=iterations)
        return h, speeds(h, w, drive)

    return jax.vmap(jax.vmap(descend, (None, 0, None)))(w_hh, drives, starts)


def deduplicate(points: Float[np.ndarray, "P Nh"], speeds: Float[np.ndarray, " P"], radius: float) -> Int[np.ndarray, " K"]:
    """Indices of distinct points: slowest first, each farther than ``radius`` from all kept before it."""
    kept: list[int] = []
    for i in np.argsort(speeds, kind="stable"):
        if not kept or np.linalg.norm(points[kept] - points[i], axis=1).min() > radius:
            kept.append(int(i))
    return np.array(kept, dtype=np.int64)


def host_speed(points: Float[np.ndarray, "P Nh"], w_hh: Float[np.ndarray, "Nh Nh"], drive: Float[np.ndarray, " Nh"]) -> Float[np.ndarray, " P"]:
    """q of each point in float64, so the tolerance does not depend on the finder's precision."""
    residual = np.tanh(drive + points @ w_hh.T) - points
    return 0.5 * np.sum(residual * residual, axis=1)


def max_abs_eigenvalue(h: Float[np.ndarray, " Nh"], w_hh: Float[np.ndarray, "Nh Nh"], drive: Float[np.ndarray, " Nh"]) -> float:
    """Spectral radius of the Jacobian dF/dh = diag(1 − F²) W_hh at ``h``."""
    f = np.tanh(drive + w_hh @ h)
    return float(np.abs(np.linalg.eigvals((1 - f * f)[:, None] * w_hh)).max())


def _variants(weights: Sequence[RNNWeights], alpha: float, subsets: Sequence[str]) -> list[RNNWeights]:
    """W̃(S) of every model for every subset named, model-major."""
    positions = [SUBSETS.index(parse_subset(name)) for name in subsets]
    variants = []
    for w in weights:
        ablation = ablate_all(w.w_hh, ordered_schur(w.w_hh), alpha)
        variants += [w.with_recurrent(ablation.w_tilde[p]) for p in positions]
    return variants


def find_fixed_points(
    weights: Sequence[RNNWeights],
    identities: Sequence[Mapping],
    task: Task,
    inputs: Float[np.ndarray, "B T Nx"] | Float[Array, "B T Nx"],
    key: PRNGKeyArray,
    *,
    alpha: float,
    config: DiagnosticsConfig,
    models_per_call: int | Literal["auto"] = "auto",
) -> tuple[list[dict], list[dict]]:
    """Fixed points of every model and its ablations in ``config.fixed_point_subsets``.

    ``identities[i]`` (task, construction, width, seed, alpha) prefixes the rows of model i;
    ``inputs`` are its held-out trials (the state geometry uses all, the starts the first
    ``config.start_trials``). Returns (one row per fixed point, one summary row per model ×
    subset × input level). Distances are Euclidean in state space; a fixed point of an ablated
    network is matched to the nearest fixed point of its full network at the same input when
    they lie within ``match_radius`` × the RMS state norm; ``displacement`` is that nearest
    distance whether matched or not.
    """
    subsets = ["none", *(name for name in config.fixed_point_subsets if name != "none")]
    variants = _variants(weights, alpha, subsets)
    geometries = state_geometry(weights, inputs, models_per_call)
    labels, levels = rest_inputs(task, config.input_levels)

    # traced: every start of every variant at every input level in one program
    models = stack_weights(variants)
    keys = jax.random.split(key, len(weights))[np.repeat(np.arange(len(weights)), len(subsets))]
    starts = sample_starts(models, jnp.asarray(inputs)[: config.start_trials], keys, config.n_starts, config.start_noise)
    drives = jnp.einsum("mnx,lx->mln", models.w_xh, jnp.asarray(levels, jnp.float32))
    if models.b_h is not None:
        drives = drives + models.b_h[:, None, :]
    ends, _ = minimise_speed(jax.vmap(lambda r: r.matrix())(models.recurrent), drives, starts, config.iterations, config.learning_rate)
    ends = np.asarray(ends, np.float64)

    # host, float64: filter, merge, classify, match
    points, summaries = [], []
    for i, (w, identity, geometry) in enumerate(zip(weights, identities, geometries)):
        n, scale = w.width, geometry.rms_norm
        full: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j, subset in enumerate(subsets):
            variant = variants[i * len(subsets) + j]
            for level, (label, x) in enumerate(zip(labels, levels)):
                drive = w.w_xh @ x + (0.0 if w.b_h is None else w.b_h)
                candidates = ends[i * len(subsets) + j, level, :, :n]
                q = host_speed(candidates, variant.w_hh, drive)
                slow = np.flatnonzero(q < config.tolerance)
                kept = slow[deduplicate(candidates[slow], q[slow], config.dedup_radius * scale)]
                found = candidates[kept]
                stable = np.array([max_abs_eigenvalue(h, variant.w_hh, drive) for h in found])
                if subset == "none":
                    full[level] = (found, stable < 1)
                reference, reference_stable = full[level]
                matches = []
                for h in found:
                    distances = np.linalg.norm(reference - h, axis=1)
                    nearest = int(distances.argmin()) if len(distances) else None
                    distance = None if nearest is None else float(distances[nearest])
                    matched = nearest if distance is not None and distance <= config.match_radius * scale else None
                    matches.append((matched, distance))
                coordinates = geometry.project(found) if len(found) else np.zeros((0, 2))
                for index, (h, eig, (pc1, pc2), (matched, distance)) in enumerate(zip(found, stable, coordinates, matches)):
                    points.append(
                        dict(identity)
                        | dict(
                            subset=subset,
                            input_level=label,
                            fp_index=index,
                            q=float(q[kept[index]]),
                            pc1=float(pc1),
                            pc2=float(pc2),
                            max_abs_eig=float(eig),
                            stable=bool(eig < 1),
                            matched_full_index=matched,
                            displacement=distance,
                            stability_changed=None if matched is None else bool((eig < 1) != reference_stable[matched]),
                        )
                    )
                matched_rows = [(m, d) for m, d in matches if m is not None]
                summaries.append(
                    dict(identity)
                    | dict(
                        subset=subset,
                        input_level=label,
                        n_fixed_points=len(found),
                        n_stable=int(np.sum(stable < 1)),
                        n_full=len(reference),
                        n_full_survived=len({m for m, _ in matched_rows}),
                        mean_displacement=float(np.mean([d for _, d in matched_rows])) if matched_rows else None,
                        n_stability_changed=sum(
                            bool((eig < 1) != reference_stable[m]) for eig, (m, _) in zip(stable, matches) if m is not None
                        ),
                    )
                )
    return points, summaries
