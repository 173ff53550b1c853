"""Matched-norm random controls for a structured ablation — host only (numpy, float64).

A structured ablation changes W by ΔW = Q ΔT Qᵀ with ||ΔW||_F = ||ΔT||_F. Whether "this ablation
is harmless" says anything depends on how a random change of the same size would do. Three
families of random ΔW, each with exactly the ablation's Frobenius norm:

- ``raw``: i.i.d. Gaussian entries in the original weight coordinates;
- ``schur``: i.i.d. Gaussian entries on the same Schur-coordinate support as ΔT (the same block
  pattern: positions where the removed coupling blocks live), mapped back with Q;
- ``rotated``: ΔT itself, placed in a Haar-random orthonormal basis instead of the Schur basis
  (R ΔT Rᵀ): the same singular values and pattern, in directions unrelated to W.
"""

import numpy as np
from scipy.stats import ortho_group

from ._typing import Float
from .schur import SchurCoords

CONTROLS = ("raw", "schur", "rotated")


def _scaled(direction: np.ndarray, norm: float) -> np.ndarray:
    return direction * (norm / np.linalg.norm(direction))


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
    raw = np.stack([_scaled(rng.standard_normal((n, n)), norm) for _ in range(k)])
    schur = []
    for _ in range(k):
        entries = np.where(support, rng.standard_normal((n, n)), 0.0)
        schur.append(coords.q @ _scaled(entries, norm) @ coords.q.T)
    rotations = [ortho_group.rvs(n, random_state=rng) if n > 1 else np.ones((1, 1)) for _ in range(k)]
    rotated = np.stack([r @ delta_t @ r.T for r in rotations])
    return {"raw": raw, "schur": np.stack(schur), "rotated": rotated}


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
