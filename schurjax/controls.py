"""Matched-norm random controls for a structured ablation.

A structured ablation changes W by ΔW = Q ΔT Qᵀ with ||ΔW||_F = ||ΔT||_F. Whether "this ablation
is harmless" says anything depends on how a random change of the same size would do. Three
families of random ΔW, each with exactly the ablation's Frobenius norm:

- ``raw``: i.i.d. Gaussian entries in the original weight coordinates;
- ``schur``: i.i.d. Gaussian entries on the same Schur-coordinate support as ΔT (the same block
  pattern: positions where the removed coupling blocks live), mapped back with Q;
- ``rotated``: ΔT itself, placed in a Haar-random orthonormal basis instead of the Schur basis
  (R ΔT Rᵀ): the same singular values and pattern, in directions unrelated to W.

The perturbations are drawn on the host (numpy, float64), K at a time; :func:`control_rows` hands
every perturbed network of a model to the evaluator as one stack.
"""

from collections.abc import Iterator, Sequence

import numpy as np

from ._typing import Float
from .columns import declare
from .evaluate import EvalConfig, evaluate_recurrent_variants
from .interventions import SUBSETS, AblationSet, coupling_parts
from .schur import SchurCoords
from .weights import RNNWeights

CONTROLS = ("raw", "schur", "rotated")


def _scaled(directions: Float[np.ndarray, "k n n"], norm: float) -> Float[np.ndarray, "k n n"]:
    return directions * (norm / np.linalg.norm(directions, axis=(1, 2)))[:, None, None]


def haar_rotations(n: int, k: int, rng: np.random.Generator) -> Float[np.ndarray, "k n n"]:
    """K Haar-random orthogonal n × n matrices, drawn as ``scipy.stats.ortho_group`` draws them
    (the Q of a Gaussian matrix's QR, its columns' signs fixed by R's diagonal), all at once."""
    if n == 1:
        return np.ones((k, 1, 1))
    q, r = np.linalg.qr(rng.normal(size=(k, n, n)))
    diagonal = np.diagonal(r, axis1=1, axis2=2)
    return q * (diagonal / np.abs(diagonal))[:, None, :]


def random_perturbations(
    coords: SchurCoords,
    delta_t: Float[np.ndarray, "n n"],
    support: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> dict[str, Float[np.ndarray, "k n n"]]:
    """K random ΔW of each control family, all with ||ΔW||_F = ||ΔT||_F.

    ``support`` is the boolean [n, n] Schur-coordinate pattern of the removed blocks.
    """
    n = coords.n
    norm = float(np.linalg.norm(delta_t))
    raw = _scaled(rng.standard_normal((k, n, n)), norm)
    schur = coords.q @ _scaled(np.where(support, rng.standard_normal((k, n, n)), 0.0), norm) @ coords.q.T
    rotations = haar_rotations(n, k, rng)
    rotated = rotations @ delta_t @ rotations.transpose(0, 2, 1)
    return {"raw": raw, "schur": schur, "rotated": rotated}


def control_summary(structured: float, random: np.ndarray) -> dict[str, float]:
    """Median, 5th and 95th percentile of the random ΔFVUs, and the structured ablation's rank.

    ``rank`` is the fraction of random perturbations that hurt no more than the structured one
    (ΔFVU_random ≤ ΔFVU_structured): near 0 means the structured change is far more harmless
    than chance, a p-value-like statement.
    """
    random = np.asarray(random, np.float64)
    return {
        "median": float(np.median(random)),
        "p05": float(np.percentile(random, 5)),
        "p95": float(np.percentile(random, 95)),
        "rank": float(np.mean(random <= structured)),
    }


def coupling_support(coords: SchurCoords, r: int, subset: tuple[str, ...]) -> np.ndarray:
    """Boolean [n, n] Schur-coordinate pattern of the coupling blocks in ``subset``.

    Structural (where the couplings may be nonzero), not where they happen to be: strictly
    block-upper entries, split at the leading-sector boundary r.
    """
    block_of_row = np.repeat(np.arange(coords.n_blocks), coords.block_sizes)
    strictly_upper = block_of_row[:, None] < block_of_row[None, :]
    in_r = np.arange(coords.n) < r
    regions = {
        "T_RR": in_r[:, None] & in_r[None, :],
        "T_CR": in_r[:, None] & ~in_r[None, :],
        "T_CC": ~in_r[:, None] & ~in_r[None, :],
    }
    selected = np.zeros((coords.n, coords.n), bool)
    for name in subset:
        selected |= regions[name]
    return strictly_upper & selected


def perturbed_recurrent(
    w_hh: Float[np.ndarray, "n n"],
    coords: SchurCoords,
    ablation: AblationSet,
    config: EvalConfig,
    rng: np.random.Generator,
) -> tuple[Float[np.ndarray, "V n n"], list[int]]:
    """W itself, then W − ΔW for every nonempty subset (``SUBSETS[1:]`` order), control family and
    draw, and the positions in ``SUBSETS`` of the ablations that remove something.

    An ablation that removes nothing has no perturbation size to match: its slots hold W again
    (their results are to be dropped), so that every model's stack has the same shape.
    """
    n, k = coords.n, config.random_controls
    parts = coupling_parts(coords, ablation.partition)
    stack = np.repeat(w_hh[None], 1 + (len(SUBSETS) - 1) * len(CONTROLS) * k, axis=0)
    perturbed = stack[1:].reshape(len(SUBSETS) - 1, len(CONTROLS), k, n, n)
    removing = []
    for position, subset in enumerate(SUBSETS[1:], start=1):
        if ablation.removed_mass[position] <= config.min_removed_mass:
            continue
        delta_t = sum((parts[name] for name in subset), np.zeros_like(coords.t))
        support = coupling_support(coords, ablation.partition.r, subset)
        drawn = random_perturbations(coords, delta_t, support, k, rng)
        for slot, deltas in zip(perturbed[position - 1], drawn.values()):
            slot -= deltas
        removing.append(position)
    return stack, removing


# The random-control stage's columns: per control family, its ΔFVU summary (control_summary).
CONTROL_COLUMNS = declare(
    **{f"ctrl_{family}_{stat}": float for family in CONTROLS for stat in ("median", "p05", "p95", "rank")}
)


def control_rows(
    weights: Sequence[RNNWeights],
    coords: Sequence[SchurCoords],
    ablations: Sequence[AblationSet],
    data,
    config: EvalConfig,
    structured_delta: Float[np.ndarray, " R"],
) -> list[dict]:
    """Per model × subset (``SUBSETS`` order): ``ctrl_<family>_<statistic>`` of K matched-norm random
    perturbations of each ablation that removes something (empty for the others).

    Every perturbed network is rolled out on the first ``config.control_trials`` held-out trials,
    and so is the full model, whose FVU there is subtracted: a paired ΔFVU, free of the trial
    sample's own difficulty. Model i draws from ``default_rng([config.seed, i])``.
    """
    n_trials = min(config.control_trials, data[0].shape[0])
    removing: list[list[int]] = []

    def stacks() -> Iterator[np.ndarray]:
        for index, (w, coord, ablation) in enumerate(zip(weights, coords, ablations)):
            rng = np.random.default_rng([config.seed, index])
            stack, positions = perturbed_recurrent(w.w_hh, coord, ablation, config, rng)
            removing.append(positions)
            yield stack

    fvu = evaluate_recurrent_variants(weights, stacks(), tuple(x[:n_trials] for x in data), config.models_per_call)
    summaries: list[dict] = [{} for _ in range(len(weights) * len(SUBSETS))]
    for index, (model_fvu, positions) in enumerate(zip(fvu, removing)):
        deltas = (model_fvu[1:] - model_fvu[0]).reshape(len(SUBSETS) - 1, len(CONTROLS), -1)
        for position in positions:
            flat = index * len(SUBSETS) + position
            for family, random in zip(CONTROLS, deltas[position - 1]):
                summary = control_summary(structured_delta[flat], random)
                summaries[flat] |= {f"ctrl_{family}_{stat}": value for stat, value in summary.items()}
    return summaries
