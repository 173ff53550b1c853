"""Fixed points of full and ablated networks (Sussillo & Barak 2013; Golub's fixed-point-finder).

For a constant input x*, a fixed point solves G(h) = F(h, x*) − h = 0 with
F(h, x*) = tanh(W_xh x* + W_hh h + b_h). The finder runs Newton's method on G with its exact
Jacobian diag(1 − F²) W_hh − I (``optimistix.Newton``, iterates clipped to the cube [−1, 1]^Nh
that holds every fixed point) from states sampled on the network's own held-out trajectories plus
Gaussian noise, then from the midpoints of pairs of the stable points those reach. Newton
converges to whichever root is near, stable or not, so it reaches the saddles between attractors,
which minimising the speed q(h) = ½‖G(h)‖² from the same states mostly misses; trajectories seldom
pass near saddles, midpoints of attractors lie close to them (on the 32 trained flip-flop networks
of benchmarks.end_to_end, 96 trajectory starts and the midpoints find every point that 256
trajectory starts find, and 167 more, in about 60 % of the time). Every start, input and network
(stacked, padded to one width; padded units stay at 0) is one problem of a jitted Newton step;
the host advances the problems still running one step per round, so that each costs the steps it
needs (a median of about 6) rather than the steps of the slowest problem batched with it. Many
starts funnel into the same few points: a solve whose iterate comes within a tenth of the merge
radius of another running solve's (or of its mirror where the drive is zero) stops and ends where
that one ends (a third fewer Newton steps on those networks, the same points).

Host code (numpy, float64) then keeps the end points with q below ``tolerance``, adds each
point's mirror −h where the drive W_xh x* + b_h is zero (F is odd there, so −h is a fixed point
too, with the same eigenvalues: one point of each pair is classified), merges duplicates,
classifies each point by the eigenvalues λ of its Jacobian
diag(1 − F²) W_hh (``stable``: max |λ| < 1; ``n_unstable``: the number of |λ| > 1, 1 for the
saddle between two attractors) and matches the fixed points of each ablated network to those of
its full network. ``converged`` says whether the solve that ended there converged: an end point
kept although its solve did not (it ran out of steps) is a slow point, where q is small but
Newton's steps are not. The slow points of a continuous attractor (cdi's integrator) can pass,
so there a count measures how finely the attractor is sampled, not a number of isolated points.

``fixed_points.npz`` (:func:`save_fixed_points`) holds the state of every fixed point, one entry
per row of fixed_points.csv and in the same order: ``states`` [P, Nh_max] (float64, zero beyond
each network's width) and the key columns ``task``, ``construction``, ``width``, ``seed``,
``alpha``, ``subset``, ``input_level``, ``fp_index`` as arrays of length P.
:func:`load_fixed_points` reads it back as {(construction, width, seed, alpha, subset,
input_level): states [K, width] in ``fp_index`` order}, e.g. to simulate a network from its saddles.
"""

import itertools
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ._typing import Array, Bool, Float, Int, PRNGKeyArray
from .atomic import atomic_write
from .devices import available_cores, on_cpu
from .evaluate import stack_weights
from .interventions import SUBSETS, ablate_all, parse_subset
from .model import TanhRNN
from .schur import ordered_schur
from .subspace import DiagnosticsConfig, HeldOutRollouts, StateGeometry, held_out_rollouts
from .tasks import Task
from .weights import RNNWeights

FIXED_POINT_COLUMNS = (
    "task", "construction", "width", "seed", "alpha", "subset", "input_level", "fp_index", "q", "pc1", "pc2",
    "max_abs_eig", "stable", "matched_full_index", "displacement", "stability_changed", "n_unstable",
    "converged",
)
FIXED_POINT_SUMMARY_COLUMNS = (
    "task", "construction", "width", "seed", "alpha", "subset", "input_level", "n_fixed_points", "n_stable",
    "n_full", "n_full_survived", "mean_displacement", "n_stability_changed", "delta_fvu", "n_saddles",
)
# the columns of fixed_points.csv that identify a row in fixed_points.npz
STATE_KEYS = ("task", "construction", "width", "seed", "alpha", "subset", "input_level", "fp_index")


class FixedPoints(NamedTuple):
    """What :func:`find_fixed_points` finds: CSV rows, summary rows, and the state of each point row."""

    points: list[dict]
    summary: list[dict]
    # states[i] is the fixed point of points[i], zero beyond its network's width
    states: Float[np.ndarray, "P Nh"]


def draw_starts(
    key: PRNGKeyArray, widths: Sequence[int], n_states: int, n_starts: int, noise: float
) -> tuple[Int[np.ndarray, "M S"], Float[np.ndarray, "M S Nh"]]:
    """Per model, which of its ``n_states`` rollout states to start from and the noise to add.

    Drawn on the host: compiling a jax.random program takes seconds on a CPU (measured 3-4 s
    on a loaded 2-core machine), longer than the whole solve. Model i's draws depend only on
    ``key``, i and its width (``widths[i]``); the noise is zero on the units that pad it to the
    widest model.
    """
    seed = [int(word) for word in np.asarray(jax.random.key_data(key)).ravel()]
    picks = np.zeros((len(widths), n_starts), np.int64)
    jitter = np.zeros((len(widths), n_starts, max(widths)), np.float32)
    for i, width in enumerate(widths):
        rng = np.random.default_rng([*seed, i])
        picks[i] = rng.integers(0, n_states, n_starts)
        jitter[i, :, :width] = noise * rng.standard_normal((n_starts, width))
    return picks, jitter


@eqx.filter_jit
def sample_starts(
    models: TanhRNN, inputs: Float[Array, "B T Nx"], picks: Int[Array, "M S"], noise: Float[Array, "M S Nh"]
) -> Float[Array, "M S Nh"]:
    """Per model, its own rollout states on ``inputs`` at ``picks`` (indices into trials × steps), plus ``noise``.

    Models given the same picks and noise start from corresponding states, so the starts of an
    ablated network are paired with those of its full network.
    """

    def one(model, pick, jitter):
        states = model.hidden_states(inputs)
        states = states.reshape(-1, states.shape[-1])
        # padded units stay exactly zero, as in the network itself
        return jnp.where(model.unit_mask[None, :], states[pick] + jitter, 0.0)

    return jax.vmap(one)(models, picks, noise)


def _starts(
    models: TanhRNN,
    n_subsets: int,
    trials: Float[Array, "B T Nx"],
    picks: Int[np.ndarray, "M S"],
    noise: Float[np.ndarray, "M S Nh"],
    full_states: Float[np.ndarray, "M K T Nh"] | None,
) -> Float[np.ndarray, "V S Nh"]:
    """:func:`sample_starts` of every variant (model-major, the full network first), the full
    networks' taken from their ``full_states`` on the first trials where the run has them already:
    the same states to the last bit (one recurrence), without rolling those networks out again."""
    if full_states is None or full_states.shape[1] < trials.shape[0]:
        paired = [jnp.asarray(np.repeat(draws, n_subsets, axis=0)) for draws in (picks, noise)]
        return np.asarray(sample_starts(models, trials, *paired))
    flat = full_states[:, : trials.shape[0]].reshape(len(picks), -1, full_states.shape[-1])
    full = np.take_along_axis(flat, picks[:, :, None], axis=1) + noise
    starts = np.repeat(np.where(np.asarray(models.unit_mask[::n_subsets])[:, None, :], full, 0.0), n_subsets, axis=0)
    ablated = np.arange(len(starts)) % n_subsets != 0
    if ablated.any():
        variants = jax.tree.map(lambda leaf: leaf[ablated], models)
        paired = [jnp.asarray(np.repeat(draws, n_subsets - 1, axis=0)) for draws in (picks, noise)]
        starts[ablated] = np.asarray(sample_starts(variants, trials, *paired))
    return starts


def _residual(h: Float[Array, " Nh"], args: tuple[Float[Array, "Nh Nh"], Float[Array, " Nh"]]) -> Float[Array, " Nh"]:
    w_hh, drive = args
    return jnp.tanh(drive + w_hh @ h) - h


def _problems_per_call() -> int | None:
    """Solves advanced side by side in one call: 256 on CPU, all of them on GPU and TPU.

    On CPU the LU factorisations of a call run one after another anyway, so a modest batch costs
    what its problems cost, and larger ones only spill the per-problem Jacobians out of cache
    (measured before steps came in blocks, one network gathered per problem: 2048 per call 1.9×
    slower than 256); accelerators need the whole batch to fill the chip.
    """
    return 256 if on_cpu() else None


def _solver_options(config: DiagnosticsConfig, rms_norm: float) -> dict:
    """The settings of :func:`newton_rounds` beyond the iteration count, from the diagnostics
    config and the smallest RMS state norm of the networks.

    Solves merge within a tenth of the radius within which distinct points are merged anyway:
    iterates that close after the same number of steps end at the same point (measured on the
    128 networks of benchmarks.end_to_end: the same 3432 points with a third fewer Newton steps).
    """
    merge_radius = config.dedup_radius * rms_norm / 10
    return dict(solver_tolerance=config.solver_tolerance, batch=_problems_per_call(), merge_radius=merge_radius)


# Problems of one network and input solved as one block: the network's weights are read, and the
# Newton step's Jacobian of W_hh h formed, once per block rather than once per problem (measured
# on a call of 256 problems: a step 1.5× cheaper); small, because a block whose
# problems have mostly converged still takes a whole block's work.
BLOCK = 8


@eqx.filter_jit
def newton_step(
    w_hh: Float[Array, "M Nh Nh"],
    drives: Float[Array, "M L Nh"],
    model: Int[Array, " K"],
    level: Int[Array, " K"],
    h: Float[Array, "K B Nh"],
    solver_tolerance: float,
) -> tuple[Float[Array, "K B Nh"], Bool[Array, "K B"], Bool[Array, "K B"]]:
    """One Newton step on G(h) = tanh(drive + W_hh h) − h for each iterate of each block
    (a network ``model`` at the input ``level`` and B iterates).

    Returns the next iterates, whether each solve has converged, and whether it may go on
    (neither converged nor failed, e.g. on a singular Jacobian).
    """
    solver = optx.Newton(rtol=solver_tolerance, atol=solver_tolerance)

    def block(m, level, hs):
        args = (w_hh[m], drives[m, level])

        def one(h):
            solution = optx.root_find(
                _residual, solver, h, args, options={"lower": -1.0, "upper": 1.0}, max_steps=1, throw=False
            )
            result = solution.result
            return solution.value, result == optx.RESULTS.successful, result == optx.RESULTS.nonlinear_max_steps_reached

        return jax.vmap(one)(hs)

    return jax.vmap(block)(model, level, h)


def newton_solve(
    w_hh: Float[Array, "M Nh Nh"],
    drives: Float[Array, "M L Nh"],
    starts: Float[np.ndarray, "M S Nh"] | Float[Array, "M S Nh"],
    max_steps: int,
    solver_tolerance: float,
    batch: int | None = None,
    merge_radius: float = 0.0,
) -> tuple[Float[np.ndarray, "M L S Nh"], Bool[np.ndarray, "M L S"]]:
    """Newton's method on G(h) = tanh(drive + W_hh h) − h from every start, input and model.

    Returns the end points and whether each solve converged (``optimistix.RESULTS.successful``);
    a solve that hits ``max_steps`` or a singular Jacobian ends at its last iterate. See
    :func:`newton_rounds` for how the solves are run (``batch``: problems per call, None: all;
    ``merge_radius``: when one solve follows another).
    """
    (n_models, n_levels, width), n_starts = drives.shape, starts.shape[1]
    model, level, start = np.unravel_index(np.arange(n_models * n_levels * n_starts), (n_models, n_levels, n_starts))
    h = np.asarray(starts)[model, start]
    ends, converged = newton_rounds(w_hh, drives, model, level, h, max_steps, solver_tolerance, batch, merge_radius)
    return ends.reshape(n_models, n_levels, n_starts, width), converged.reshape(n_models, n_levels, n_starts)


def newton_rounds(
    w_hh: Float[Array, "M Nh Nh"],
    drives: Float[Array, "M L Nh"],
    model: Int[np.ndarray, " P"],
    level: Int[np.ndarray, " P"],
    starts: Float[np.ndarray, "P Nh"],
    max_steps: int,
    solver_tolerance: float,
    batch: int | None = None,
    merge_radius: float = 0.0,
) -> tuple[Float[np.ndarray, "P Nh"], Bool[np.ndarray, " P"]]:
    """Newton from each of the problems ``starts[p]`` on network ``model[p]`` at input ``level[p]``
    (sorted by network, then input): the end points and whether each solve converged.

    Newton's step depends on the current iterate alone, so the host advances the solves one step
    per round, each round only those still running, in blocks of one network and input, about
    ``batch`` problems at a time (None: all), on the default device: the work is the steps each
    solve needs, not ``max_steps`` or the slowest solve of a batch.

    Many starts of a network funnel into the same few points. Before each round, a running solve
    whose iterate lies within ``merge_radius`` of an earlier running solve's of the same network
    and input (or of its mirror −h where the drive is zero, F odd: Newton from −h is the mirror
    image of Newton from h) stops there and ends where that solve ends (0: no merging).
    """
    group = np.asarray(model) * drives.shape[1] + np.asarray(level)
    if np.any(np.diff(group) < 0):
        raise ValueError("newton_rounds needs its problems sorted by network, then input")
    h, converged = np.array(starts, np.float32), np.zeros(len(group), bool)
    # without a batch size, every block of the first round (the most there are) in one call
    most_blocks = -(-len(group) // BLOCK) + drives.shape[0] * drives.shape[1]
    blocks_per_call = most_blocks if batch is None else max(1, batch // BLOCK)
    # One device: LU calls (LAPACK, on CPU) from two CPU devices at once were no faster than from
    # one (measured: 65 vs 52-61 µs per problem step), and jaxlib 0.10's batched LU, run on two
    # CPU devices at once, deadlocked in its thread pool in 4 of 6 tries.
    shared = jax.device_put((w_hh, drives))
    running = np.arange(len(group))
    merged = _Merged(np.arange(len(group)), np.ones(len(group), np.float32))
    odd = ~np.asarray(drives).any(axis=-1).ravel()
    for _ in range(max_steps):
        running = _merge(running, group, h, odd, merge_radius, merged)
        if running.size == 0:
            break
        calls = []
        for chunk in _padded_chunks(_blocks(running, group), blocks_per_call):
            arrays = (model[chunk[:, 0]], level[chunk[:, 0]], h[chunk])
            calls.append((chunk, newton_step(*shared, *arrays, solver_tolerance)))
        going = []
        for chunk, (ends, done, still) in calls:
            h[chunk], converged[chunk] = np.asarray(ends), np.asarray(done)
            going.append(chunk[np.asarray(still)])
        running = np.unique(np.concatenate(going))
    leader, sign = merged.resolved()
    return h[leader] * sign[:, None], converged[leader]


class _Merged(NamedTuple):
    """Which solve each solve follows (itself if none), and with which sign: h = sign × h[leader]."""

    leader: Int[np.ndarray, " P"]
    sign: Float[np.ndarray, " P"]

    def resolved(self) -> tuple[Int[np.ndarray, " P"], Float[np.ndarray, " P"]]:
        leader, sign = self.leader.copy(), self.sign.copy()
        while np.any(leader[leader] != leader):
            leader, sign = leader[leader], sign * sign[leader]
        return leader, sign


def _merge(
    running: Int[np.ndarray, " R"],
    group: Int[np.ndarray, " P"],
    h: Float[np.ndarray, "P Nh"],
    odd: Bool[np.ndarray, " G"],
    radius: float,
    merged: _Merged,
) -> Int[np.ndarray, " K"]:
    """The running solves less those whose iterate lies within ``radius`` of an earlier running
    one's (or of its mirror, where F is odd), which are recorded in ``merged`` as following it."""
    if radius <= 0 or running.size == 0:
        return running
    follows = np.zeros(running.size, bool)
    for members in np.split(np.arange(running.size), np.flatnonzero(np.diff(group[running])) + 1):
        points = h[running[members]].astype(np.float64)
        signs = np.array([1.0, -1.0] if odd[group[running[members[0]]]] else [1.0])
        # near[s, i, j]: solve i's iterate lies within radius of sign s × solve j's, for j before i
        squares, products = np.sum(points * points, axis=1), points @ points.T
        distances = squares[:, None] + squares[None] - 2 * signs[:, None, None] * products
        near = (distances <= radius * radius) & np.tri(len(members), k=-1, dtype=bool)
        flat = near.transpose(1, 0, 2).reshape(len(members), -1)
        first = flat.argmax(axis=1)
        mine = flat.any(axis=1)
        merged.leader[running[members[mine]]] = running[members[first[mine] % len(members)]]
        merged.sign[running[members[mine]]] = signs[first[mine] // len(members)]
        follows[members] = mine
    return running[~follows]


def _blocks(running: Int[np.ndarray, " R"], group: Int[np.ndarray, " P"]) -> Int[np.ndarray, "K BLOCK"]:
    """The (sorted) problems ``running`` as blocks of one network and input each, i.e. of one
    ``group`` value."""
    groups = np.split(running, np.flatnonzero(np.diff(group[running])) + 1)
    return np.concatenate([_padded_chunks(members, BLOCK) for members in groups])


def _padded_chunks(rows: Int[np.ndarray, "P ..."], size: int) -> Int[np.ndarray, "C size ..."]:
    """``rows`` in chunks of exactly ``size`` (one compiled shape), the last one filled with its last row."""
    padded = np.concatenate([rows, np.repeat(rows[-1:], -len(rows) % size, axis=0)])
    return padded.reshape(-1, size, *rows.shape[1:])


def deduplicate(
    points: Float[np.ndarray, "P Nh"], speeds: Float[np.ndarray, " P"], radius: float, mirrored: bool = False
) -> Int[np.ndarray, " K"]:
    """Indices of distinct points: slowest first, each farther than ``radius`` from all kept
    before it (and, if ``mirrored``, from their mirrors −h)."""
    kept: list[int] = []
    # most points lie near a few fixed points: mark each kept point's neighbourhood once instead
    # of measuring every point against everything kept
    covered = np.zeros(len(points), bool)
    for i in np.argsort(speeds, kind="stable"):
        if not covered[i]:
            kept.append(int(i))
            covered |= np.sum((points - points[i]) ** 2, axis=1) <= radius * radius
            if mirrored:
                covered |= np.sum((points + points[i]) ** 2, axis=1) <= radius * radius
    return np.array(kept, dtype=np.int64)


def host_speed(
    points: Float[np.ndarray, "P Nh"], w_hh: Float[np.ndarray, "Nh Nh"], drive: Float[np.ndarray, " Nh"]
) -> Float[np.ndarray, " P"]:
    """q of each point in float64, so the tolerance does not depend on the finder's precision."""
    residual = np.tanh(drive + points @ w_hh.T) - points
    return 0.5 * np.sum(residual * residual, axis=1)


def linear_stability(
    points: Float[np.ndarray, "P Nh"], w_hh: Float[np.ndarray, "Nh Nh"], drive: Float[np.ndarray, " Nh"]
) -> tuple[Float[np.ndarray, " P"], Int[np.ndarray, " P"]]:
    """Spectral radius of the Jacobian dF/dh = diag(1 − F²) W_hh at each point, and its number of |λ| > 1."""
    if len(points) == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    f = np.tanh(drive + points @ w_hh.T)
    moduli = np.abs(np.linalg.eigvals((1 - f * f)[:, :, None] * w_hh[None]))
    return moduli.max(axis=1), (moduli > 1).sum(axis=1)


def _match_to_full(
    found: Float[np.ndarray, "K Nh"], reference: Float[np.ndarray, "R Nh"], radius: float
) -> list[tuple[int | None, float | None]]:
    """Per point, (index of the nearest reference point if within ``radius``, distance to the nearest)."""
    matches = []
    for h in found:
        if len(reference) == 0:
            matches.append((None, None))
            continue
        distances = np.linalg.norm(reference - h, axis=1)
        nearest = int(distances.argmin())
        distance = float(distances[nearest])
        matches.append((nearest if distance <= radius else None, distance))
    return matches


def _variants(weights: Sequence[RNNWeights], alpha: float, subsets: Sequence[str]) -> list[RNNWeights]:
    """W̃(S) of every model for every subset named, model-major."""
    positions = [SUBSETS.index(parse_subset(name)) for name in subsets]
    variants = []
    for w in weights:
        ablation = ablate_all(w.w_hh, ordered_schur(w.w_hh), alpha)
        variants += [w.with_recurrent(ablation.w_tilde[p]) for p in positions]
    return variants


class _Networks(NamedTuple):
    """Every variant (model-major), stacked and zero-padded to the widest, as the solver takes them."""

    models: TanhRNN
    w_hh: Float[Array, "V Nh Nh"]
    drives: Float[Array, "V L Nh"]


def _networks(variants: Sequence[RNNWeights], levels: Float[np.ndarray, "L Nx"]) -> _Networks:
    models = stack_weights(variants)
    drives = jnp.einsum("mnx,lx->mln", models.w_xh, jnp.asarray(levels, jnp.float32))
    if models.b_h is not None:
        drives = drives + models.b_h[:, None, :]
    return _Networks(models, jax.vmap(lambda r: r.matrix())(models.recurrent), drives)


def _trajectory_solves(
    networks: _Networks,
    widths: Sequence[int],
    inputs: Float[np.ndarray, "B T Nx"] | Float[Array, "B T Nx"],
    key: PRNGKeyArray,
    config: DiagnosticsConfig,
    options: Mapping,
    full_states: Float[np.ndarray, "M K T Nh"] | None = None,
) -> tuple[Float[np.ndarray, "V L S Nh"], Bool[np.ndarray, "V L S"]]:
    """Newton from ``config.n_starts`` states of every variant's own rollouts of ``inputs``; the
    variants of one model (``widths``: one per model) start from corresponding states."""
    trials = jnp.asarray(inputs)[: config.start_trials]
    picks, noise = draw_starts(key, widths, trials.shape[0] * trials.shape[1], config.n_starts, config.start_noise)
    n_subsets = networks.w_hh.shape[0] // len(widths)
    starts = _starts(networks.models, n_subsets, trials, picks, noise, full_states)
    ends, converged = newton_solve(networks.w_hh, networks.drives, starts, config.max_steps, **options)
    return ends.astype(np.float64), converged


def pair_midpoints(stable: Float[np.ndarray, "K Nh"], limit: int) -> Float[np.ndarray, "P Nh"]:
    """Midpoints of the ``limit`` closest pairs of the points ``stable`` (every pair if fewer)."""
    first, second = np.triu_indices(len(stable), k=1)
    closest = np.argsort(np.linalg.norm(stable[first] - stable[second], axis=1), kind="stable")[:limit]
    return (stable[first[closest]] + stable[second[closest]]) / 2


def _pair_solves(
    networks: _Networks, found: Mapping[tuple[int, int], "_Found"], config: DiagnosticsConfig, options: Mapping
) -> dict[tuple[int, int], tuple[Float[np.ndarray, "P Nh"], Bool[np.ndarray, " P"]]]:
    """Newton from the midpoints of pairs of the stable points ``found`` per variant and input:
    saddles lie between attractors, where trajectories seldom pass."""
    width = networks.w_hh.shape[-1]
    jobs = sorted(found)  # by variant, then input: the order newton_rounds needs
    midpoints = [pair_midpoints(found[job].states[found[job].stable], config.pair_starts) for job in jobs]
    counts = [len(points) for points in midpoints]
    model, level = (np.repeat([job[axis] for job in jobs], counts).astype(np.int64) for axis in (0, 1))
    starts = np.zeros((sum(counts), width), np.float32)
    for row, points in zip(np.cumsum([0, *counts]), midpoints):
        starts[row : row + len(points), : points.shape[1]] = points
    ends, converged = newton_rounds(networks.w_hh, networks.drives, model, level, starts, config.max_steps, **options)
    split = np.cumsum(counts)[:-1]
    return dict(zip(jobs, zip(np.split(ends.astype(np.float64), split), np.split(converged, split))))


class _Found(NamedTuple):
    """The distinct fixed points of one network at one input, slowest first."""

    states: Float[np.ndarray, "K Nh"]
    q: Float[np.ndarray, " K"]
    converged: Bool[np.ndarray, " K"]
    max_abs_eig: Float[np.ndarray, " K"]
    n_unstable: Int[np.ndarray, " K"]

    @property
    def stable(self) -> Bool[np.ndarray, " K"]:
        return self.max_abs_eig < 1


def network_fixed_points(
    ends: Float[np.ndarray, "S Nh"],
    converged: Bool[np.ndarray, " S"],
    w_hh: Float[np.ndarray, "Nh Nh"],
    drive: Float[np.ndarray, " Nh"],
    tolerance: float,
    radius: float,
    known: _Found | None = None,
) -> _Found:
    """Host stage for one network and input: accept (q < ``tolerance``), merge within ``radius``,
    classify. ``known``: points found before, kept as they are; an end point within ``radius`` of
    one of them is that point again."""
    q = host_speed(ends, w_hh, drive)
    slow = np.flatnonzero(q < tolerance)
    if known is not None and len(known.states):
        nearest = np.min(np.linalg.norm(ends[slow, None, :] - known.states[None], axis=2), axis=1)
        slow = slow[nearest > radius]
    odd = not drive.any()
    # A zero drive makes F odd, F(−h) = −F(h): each point's mirror is a fixed point too, with the
    # same Jacobian diag(1 − F²) W_hh, so one of each pair is classified (the finder reaches
    # both of a pair for about 40 % of its points) and the other added after.
    kept = slow[deduplicate(ends[slow], q[slow], radius, mirrored=odd)]
    found = _Found(ends[kept], q[kept], converged[kept], *linear_stability(ends[kept], w_hh, drive))
    if known is not None:
        both = [np.concatenate(columns) for columns in zip(known, found)]
        found = _Found(*(column[np.argsort(both[1], kind="stable")] for column in both))
    if not odd or len(found.states) == 0:
        return found
    both = np.concatenate([found.states, -found.states])
    merged = deduplicate(both, np.concatenate([found.q, found.q]), radius)
    source = merged % len(found.states)
    return _Found(both[merged], *(column[source] for column in found[1:]))


def _rows(
    prefix: Mapping, found: _Found, reference: _Found, geometry: StateGeometry, radius: float
) -> tuple[list[dict], dict]:
    """The fixed_points.csv rows of one network and input, and its summary row (without ΔFVU)."""
    matches = _match_to_full(found.states, reference.states, radius)
    coordinates = geometry.project(found.states) if len(found.states) else np.zeros((0, 2))
    changed = [None if m is None else bool(s != reference.stable[m]) for s, (m, _) in zip(found.stable, matches)]
    points = [
        dict(prefix)
        | {
            "fp_index": index,
            "q": float(found.q[index]),
            "pc1": float(pc1),
            "pc2": float(pc2),
            "max_abs_eig": float(found.max_abs_eig[index]),
            "stable": bool(found.stable[index]),
            "matched_full_index": matched,
            "displacement": distance,
            "stability_changed": changed[index],
            "n_unstable": int(found.n_unstable[index]),
            "converged": bool(found.converged[index]),
        }
        for index, ((pc1, pc2), (matched, distance)) in enumerate(zip(coordinates, matches))
    ]
    distances = [d for m, d in matches if m is not None]
    summary = dict(prefix) | {
        "n_fixed_points": len(found.states),
        "n_stable": int(found.stable.sum()),
        "n_full": len(reference.states),
        "n_full_survived": len({m for m, _ in matches if m is not None}),
        "mean_displacement": float(np.mean(distances)) if distances else None,
        "n_stability_changed": sum(bool(c) for c in changed),
        # unstable in some directions, stable in others (a point unstable in every one is a repeller)
        "n_saddles": int(np.sum((found.n_unstable > 0) & (found.n_unstable < found.states.shape[1]))),
    }
    return points, summary


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
    rollouts: HeldOutRollouts | None = None,
) -> FixedPoints:
    """Fixed points of every model and its ablations in ``config.fixed_point_subsets``.

    ``identities[i]`` (task, construction, width, seed, alpha) prefixes the rows of model i;
    ``inputs`` are its held-out trials (the state geometry uses all, the starts the first
    ``config.start_trials``; ``rollouts``: the models' rollouts on them, where the caller has them
    already: their state geometries, and their states on the starts' trials if kept). Returns
    one row per fixed point with its state, and one summary row per model × subset × input
    level. Distances are Euclidean in state space; a fixed point of an ablated network is matched
    to the nearest fixed point of its full network at the same input when they lie within
    ``match_radius`` × the RMS state norm; ``displacement`` is that nearest distance whether
    matched or not.
    """
    subsets = ["none", *(name for name in config.fixed_point_subsets if name != "none")]
    variants = _variants(weights, alpha, subsets)
    if rollouts is None:
        rollouts = held_out_rollouts(weights, inputs, models_per_call, kept_trials=config.start_trials)
    geometries = rollouts.geometries
    labels, levels = task.rest_inputs(config.input_levels)
    networks = _networks(variants, levels)
    options = _solver_options(config, min(geometry.rms_norm for geometry in geometries))
    widths = [w.width for w in weights]
    ends, converged = _trajectory_solves(networks, widths, inputs, key, config, options, rollouts.states)

    def classify(job: tuple[int, int], ends, converged, known: _Found | None = None) -> _Found:
        v, level = job
        w, geometry = weights[v // len(subsets)], geometries[v // len(subsets)]
        drive = w.w_xh @ levels[level] + (0.0 if w.b_h is None else w.b_h)
        radius = config.dedup_radius * geometry.rms_norm
        return network_fixed_points(
            ends[:, : w.width], converged, variants[v].w_hh, drive, config.tolerance, radius, known
        )

    jobs = list(itertools.product(range(len(variants)), range(len(levels))))
    # numpy's eigenvalue routines release the GIL: the networks are classified on every core
    with ThreadPoolExecutor(available_cores()) as pool:
        first = dict(zip(jobs, pool.map(lambda job: classify(job, ends[job], converged[job]), jobs)))
        found = first
        if config.pair_starts:
            more = _pair_solves(networks, first, config, options)
            found = dict(zip(jobs, pool.map(lambda job: classify(job, *more[job], first[job]), jobs)))
    points, summaries, states = [], [], []
    for (v, level), here in found.items():
        i, subset = divmod(v, len(subsets))
        geometry = geometries[i]
        prefix = dict(identities[i]) | {"subset": subsets[subset], "input_level": labels[level]}
        reference = found[i * len(subsets), level]
        rows, summary = _rows(prefix, here, reference, geometry, config.match_radius * geometry.rms_norm)
        points += rows
        summaries.append(summary)
        states += [np.pad(h, (0, ends.shape[-1] - h.shape[0])) for h in here.states]
    return FixedPoints(points, summaries, np.array(states, np.float64).reshape(len(points), ends.shape[-1]))


def save_fixed_points(path: str | os.PathLike, points: Sequence[Mapping], states: Float[np.ndarray, "P Nh"]) -> None:
    """Write ``fixed_points.npz``: the ``states`` of the fixed-point rows ``points`` and their key columns."""
    keys = {column: np.array([row[column] for row in points]) for column in STATE_KEYS}
    with atomic_write(path) as handle:
        np.savez(handle, states=states, **keys)


def load_fixed_points(
    path: str | os.PathLike,
) -> dict[tuple[str, int, int, float, str, str], Float[np.ndarray, "K Nh"]]:
    """Read ``fixed_points.npz``: {(construction, width, seed, alpha, subset, input_level): states [K, width]}.

    Row k of each array is the fixed point with ``fp_index`` k in fixed_points.csv.
    """
    with np.load(path) as archive:
        data = {name: archive[name] for name in archive.files}
    groups: dict[tuple[str, int, int, float, str, str], list[tuple[int, np.ndarray]]] = {}
    for p, state in enumerate(data["states"]):
        key = (str(data["construction"][p]), int(data["width"][p]), int(data["seed"][p]), float(data["alpha"][p]),
               str(data["subset"][p]), str(data["input_level"][p]))
        groups.setdefault(key, []).append((int(data["fp_index"][p]), state[: key[1]]))
    return {key: np.array([state for _, state in sorted(rows, key=lambda r: r[0])]) for key, rows in groups.items()}
