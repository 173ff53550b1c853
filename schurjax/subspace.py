"""Why is an ablation harmless? Subspace diagnostics of the perturbation D = W − W̃(S).

Traced (JAX, float32): the full model's states on its held-out trials, reduced to their mean and
second moment in one jitted program for a stacked batch of models. Host (numpy, float64): the
principal axes and every projection of D.

With h the states the full model visits (every held-out trial and step, h_1..h_T), Σ = E[h hᵀ]
their uncentred second moment, P_k the projector onto the top-k principal axes of their centred
covariance (k the smallest number of axes explaining ``pc_variance`` of the variance), P_out the
projector onto the row space of W_hy and ‖·‖ the Frobenius norm:

- ``act_perturbation`` = E‖D h‖² / E‖W h‖² = tr(D Σ Dᵀ) / tr(W Σ Wᵀ): the size of the change in
  the recurrent drive the network actually receives, relative to that drive. Uncentred, because
  D acts on h itself, not on its fluctuations about the mean. 0 for D = 0.
- ``pc_overlap_row`` = ‖D P_k‖² / ‖D‖²: the share of D that reads from directions the states occupy.
- ``pc_overlap_col`` = ‖P_k D‖² / ‖D‖²: the share of D's output that lands inside the activity subspace.
- ``pc_overlap`` = ‖P_k D P_k‖² / ‖D‖²: the share of D that maps the activity subspace into itself,
  the part that can change the dynamics the task uses without first leaving the subspace.
- ``readout_overlap`` = ‖P_out D‖² / ‖D‖²: the share of D's output the readout sees directly.

For a D of random orientation the overlaps are near k/Nh, k/Nh, (k/Nh)² and Ny/Nh (chance). They
are ratios of squared norms, so they lie in [0, 1]; where D is (numerically) zero they are
undefined (NaN, written as empty cells).
"""

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.stats

from ._typing import Array, Float
from .columns import declare
from .devices import map_models, pad_models
from .evaluate import resolve_models_per_call, stack_weights
from .interventions import parse_subset
from .model import TanhRNN
from .results import is_diverged
from .weights import RNNWeights

# The result columns of the diagnostics stage (:func:`subspace_rows`); the overlaps are empty where D = 0.
DIAGNOSTIC_COLUMNS = declare(
    act_perturbation=float,
    pc_overlap=float,
    pc_overlap_col=float,
    pc_overlap_row=float,
    readout_overlap=float,
    pc_k=int,
)
# Predictors of ΔFVU compared by :func:`predictive_power`; the removed Schur mass is the baseline.
PREDICTORS = ("removed_mass", "act_perturbation", "pc_overlap", "pc_overlap_col", "pc_overlap_row", "readout_overlap")


@dataclasses.dataclass(frozen=True)
class DiagnosticsConfig:
    """Subspace-diagnostic and fixed-point settings (the ``diagnostics`` config section)."""

    # k = the fewest principal axes that explain this fraction of the state variance
    pc_variance: float = 0.9
    fixed_points: bool = True
    # ablations whose fixed points are found; "none" (the full model) is the reference
    fixed_point_subsets: tuple[str, ...] = ("none", "T_RR", "T_CR", "T_CC")
    # Newton starts per network and input: states of its own held-out rollouts (plus noise), then
    # the midpoints of up to pair_starts pairs of the stable points those reach (the closest
    # pairs): saddles lie between attractors
    n_starts: int = 96
    pair_starts: int = 256
    # Newton: at most this many steps per start; a solve has converged when every unit's last
    # step is below solver_tolerance × (1 + |h|) and its residual below solver_tolerance (float32)
    max_steps: int = 20
    solver_tolerance: float = 1e-6
    # q(h*) below this counts as a fixed point (float32 round-off puts q near 1e-13 at Nh = 64);
    # an unconverged solve that ends below it is kept as a slow point
    tolerance: float = 1e-8
    # start noise (absolute, states lie in [-1, 1]) and the held-out trials starts are drawn from
    start_noise: float = 0.05
    start_trials: int = 128
    # distances relative to the RMS norm of the full model's states
    dedup_radius: float = 0.02
    match_radius: float = 0.1
    # sine: fixed points at this many evenly spaced static cues
    input_levels: int = 3

    def __post_init__(self):
        object.__setattr__(self, "fixed_point_subsets", tuple(self.fixed_point_subsets))

        def fail(field, requirement):
            return ValueError(f"diagnostics.{field}={getattr(self, field)!r} is invalid: {requirement}")

        def real(field):
            value = getattr(self, field)
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)

        if not (real("pc_variance") and 0 < self.pc_variance <= 1):
            raise fail("pc_variance", "it must lie in (0, 1]")
        if not isinstance(self.fixed_points, bool):
            raise fail("fixed_points", "it must be true or false")
        for field, minimum in (
            ("n_starts", 1), ("pair_starts", 0), ("max_steps", 1), ("start_trials", 1), ("input_levels", 1)
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise fail(field, f"it must be an integer >= {minimum}")
        for field in ("solver_tolerance", "tolerance", "dedup_radius", "match_radius"):
            if not (real(field) and getattr(self, field) > 0):
                raise fail(field, "it must be a positive finite number")
        if not (real("start_noise") and self.start_noise >= 0):
            raise fail("start_noise", "it must be a finite number >= 0")
        for name in self.fixed_point_subsets:
            parse_subset(name)
        if "none" not in self.fixed_point_subsets:
            raise fail("fixed_point_subsets", "it must contain none (the full model every ablation is matched to)")


@dataclasses.dataclass(frozen=True)
class StateGeometry:
    """Mean, second moment and principal axes (columns, by decreasing variance) of one model's states."""

    mean: Float[np.ndarray, " Nh"]
    second_moment: Float[np.ndarray, "Nh Nh"]
    axes: Float[np.ndarray, "Nh Nh"]
    variances: Float[np.ndarray, " Nh"]

    @property
    def rms_norm(self) -> float:
        """sqrt(E‖h‖²): the length scale of the states."""
        return math.sqrt(max(float(np.trace(self.second_moment)), 0.0))

    def n_components(self, fraction: float) -> int:
        """The fewest leading axes explaining ``fraction`` of the variance (at least one)."""
        total = float(self.variances.sum())
        if total <= 0:
            return 1
        # the relative slack keeps fraction = 1 reachable despite round-off in the cumulative sum
        explained = np.cumsum(self.variances) / total
        return max(1, min(len(self.variances), int(np.searchsorted(explained, fraction * (1 - 1e-12)) + 1)))

    def project(self, points: Float[np.ndarray, "P Nh"]) -> Float[np.ndarray, "P 2"]:
        """Coordinates of ``points`` on the top two principal axes (about the mean)."""
        return (points - self.mean) @ self.axes[:, :2]


class HeldOutRollouts(NamedTuple):
    """Networks rolled out once on the held-out inputs: everything later stages need of them."""

    # the readout of every state, [M, B, T, Ny] (the evaluation's reference outputs)
    outputs: Float[np.ndarray, "M B T Ny"]
    # the state geometry, each at its network's width (the diagnostics' and the fixed points')
    geometries: list[StateGeometry]
    # the states of the first trials, [M, K, T, Nh] (the fixed points' starts; K = 0: none kept)
    states: Float[np.ndarray, "M K T Nh"]


@eqx.filter_jit
def _rollout_statistics(
    models: TanhRNN, inputs: Float[Array, "B T Nx"], models_per_call: int, kept_trials: int
) -> tuple[Float[Array, "M B T Ny"], Float[Array, "M Nh"], Float[Array, "M Nh Nh"], Float[Array, "M K T Nh"] | None]:
    def one(model, inputs):
        states = model.hidden_states(inputs)
        flat = states.reshape(-1, states.shape[-1])
        kept = states[:kept_trials] if kept_trials else None  # (an empty array cannot be split)
        return model.readout(states), flat.mean(axis=0), flat.T @ flat / flat.shape[0], kept

    return map_models(one, models_per_call, n_shared=1)(models, inputs)


def held_out_rollouts(
    weights: Sequence[RNNWeights],
    inputs: Float[np.ndarray, "B T Nx"] | Float[Array, "B T Nx"],
    models_per_call: int | Literal["auto"] = "auto",
    kept_trials: int = 0,
) -> HeldOutRollouts:
    """Every network rolled out on ``inputs`` once: its outputs, its state geometry and the states
    of the first ``kept_trials`` trials.

    The outputs are bitwise those of :func:`~schurjax.evaluate.rollout_outputs` (the same
    recurrence, read out state by state), so an evaluation may take them as its references
    instead of rolling the networks out again; the states likewise serve the fixed points' starts.
    """
    models_per_call = resolve_models_per_call(models_per_call)
    models = pad_models(stack_weights(weights), len(weights), models_per_call)
    outputs, means, moments, states = _rollout_statistics(models, jnp.asarray(inputs), models_per_call, kept_trials)
    geometries = []
    for w, mean, moment in zip(weights, np.asarray(means, np.float64), np.asarray(moments, np.float64)):
        n = w.width
        mean, moment = mean[:n], moment[:n, :n]
        variances, axes = np.linalg.eigh(moment - np.outer(mean, mean))
        order = np.argsort(variances)[::-1]
        geometries.append(StateGeometry(mean, moment, axes[:, order], np.clip(variances[order], 0.0, None)))
    if states is None:
        states = np.zeros((len(weights), 0, *inputs.shape[1:-1], models.w_xh.shape[1]), np.float32)
    # results split across devices are read on the host (see map_models)
    return HeldOutRollouts(np.asarray(outputs)[: len(weights)], geometries, np.asarray(states)[: len(weights)])


def state_geometry(
    weights: Sequence[RNNWeights],
    inputs: Float[np.ndarray, "B T Nx"] | Float[Array, "B T Nx"],
    models_per_call: int | Literal["auto"] = "auto",
) -> list[StateGeometry]:
    """The state geometry of every network rolled on ``inputs``, each at its own width."""
    return held_out_rollouts(weights, inputs, models_per_call).geometries


def _projector(basis: Float[np.ndarray, "Nh k"]) -> Float[np.ndarray, "Nh Nh"]:
    return basis @ basis.T


def perturbation_diagnostics(
    w: Float[np.ndarray, "Nh Nh"],
    d: Float[np.ndarray, "Nh Nh"],
    w_hy: Float[np.ndarray, "Ny Nh"],
    geometry: StateGeometry,
    pc_variance: float,
    min_removed_mass: float = 0.0,
) -> dict[str, float]:
    """The module's diagnostics of removing ``d`` from ``w``.

    The overlaps are NaN where ‖D‖ ≤ min_removed_mass ‖W‖.
    """
    k = geometry.n_components(pc_variance)
    drive = float(np.trace(w @ geometry.second_moment @ w.T))
    change = float(np.trace(d @ geometry.second_moment @ d.T))
    values = dict(act_perturbation=change / drive if drive > 0 else math.nan, pc_k=k)
    d_norm = float(np.sum(d * d))
    if d_norm == 0 or math.sqrt(d_norm) <= min_removed_mass * float(np.linalg.norm(w)):
        return values | dict.fromkeys(("pc_overlap", "pc_overlap_col", "pc_overlap_row", "readout_overlap"), math.nan)
    p_k = _projector(geometry.axes[:, :k])
    # an orthonormal basis of span(W_hy rows); its rank may be below Ny
    u, s, _ = np.linalg.svd(w_hy.T, full_matrices=False)
    p_out = _projector(u[:, s > s.max(initial=0.0) * max(w_hy.shape) * np.finfo(float).eps])

    def share(x):
        return float(np.sum(x * x)) / d_norm

    return values | dict(
        pc_overlap=share(p_k @ d @ p_k),
        pc_overlap_col=share(p_k @ d),
        pc_overlap_row=share(d @ p_k),
        readout_overlap=share(p_out @ d),
    )


def subspace_rows(
    weights: Sequence[RNNWeights],
    w_tilde: Sequence[Float[np.ndarray, "S Nh Nh"]],
    inputs: Float[np.ndarray, "B T Nx"] | Float[Array, "B T Nx"],
    *,
    pc_variance: float,
    min_removed_mass: float,
    models_per_call: int | Literal["auto"] = "auto",
    geometries: Sequence[StateGeometry] | None = None,
) -> list[dict]:
    """Diagnostic columns per model × subset (the order of ``w_tilde[i]``), from held-out ``inputs``
    (or from the models' ``geometries`` on them, where the caller has them already)."""
    if geometries is None:
        geometries = state_geometry(weights, inputs, models_per_call)
    rows = []
    for w, ablated, geometry in zip(weights, w_tilde, geometries):
        for matrix in ablated:
            values = perturbation_diagnostics(
                w.w_hh, w.w_hh - matrix, w.w_hy, geometry, pc_variance, min_removed_mass
            )
            rows.append({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()})
    return rows


def _number(row: Mapping, column: str) -> float:
    value = row.get(column)
    return math.nan if value is None else float(value)


def predictive_power(rows: Sequence[Mapping]) -> list[dict]:
    """Spearman rank correlation of each predictor with ΔFVU, over all tasks and per task.

    Uses every non-diverged row that removes something (a defined ``pc_overlap``): all seeds and
    nonempty subsets. ``rows`` hold typed values: from memory or schurjax.pipeline.read_results.
    """
    usable = [
        r for r in rows if r["subset"] != "none" and not is_diverged(r) and not math.isnan(_number(r, "pc_overlap"))
    ]
    tasks = dict.fromkeys(r["task"] for r in usable)
    scopes = {"all": usable} | {task: [r for r in usable if r["task"] == task] for task in tasks}
    table = []
    for scope, members in scopes.items():
        delta = np.array([_number(r, "delta_fvu") for r in members])
        for predictor in PREDICTORS:
            x = np.array([_number(r, predictor) for r in members])
            finite = np.isfinite(x) & np.isfinite(delta)
            n = int(finite.sum())
            # a constant column has no ranks to correlate
            if n >= 3 and np.ptp(x[finite]) > 0 and np.ptp(delta[finite]) > 0:
                result = scipy.stats.spearmanr(x[finite], delta[finite])
                rho, p = float(result.statistic), float(result.pvalue)
            else:
                rho, p = math.nan, math.nan
            table.append(dict(scope=scope, predictor=predictor, spearman_rho=rho, p_value=p, n=n))
    return table

