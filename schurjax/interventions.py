"""Leading-sector partition and the 8 coupling ablations (SPEC §5–6) — host only, float64.

T = B + N with B the Schur eigenvalue blocks and N the strictly block-upper-triangular nonnormal
couplings. The leading sector R is the prefix of blocks with |λ| ≥ α ρ(W), C the rest, and N
splits into T_RR (inside R), T_CR (SPEC's T_C→R: rows in R, columns in C) and T_CC (inside C).
An ablation zeros the parts in a subset S and maps back: W̃(S) = Q T̃(S) Qᵀ.
"""

import dataclasses
import itertools
import math
import numbers

import numpy as np

from ._typing import Float
from .schur import SchurCoords

BLOCKS = ("T_RR", "T_CR", "T_CC")
SUBSETS: tuple[tuple[str, ...], ...] = tuple(
    subset for size in range(len(BLOCKS) + 1) for subset in itertools.combinations(BLOCKS, size)
)
# α·ρ thresholds are compared with this relative slack, so α = 1 keeps every block tied with ρ.
PARTITION_RTOL = 1e-12


def subset_name(subset: tuple[str, ...]) -> str:
    """``()`` → ``"none"``; otherwise the block names in BLOCKS order joined by ``+``."""
    return "+".join(b for b in BLOCKS if b in subset) or "none"


def parse_subset(name: str) -> tuple[str, ...]:
    """Inverse of :func:`subset_name`."""
    for subset in SUBSETS:
        if subset_name(subset) == name:
            return subset
    raise ValueError(f"unknown subset {name!r}; valid: {', '.join(subset_name(s) for s in SUBSETS)}")


def check_alpha(alpha: object) -> float:
    """α must be a real number in (0, 1]."""
    valid = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0 < alpha <= 1
    if not valid or math.isnan(alpha):
        raise ValueError(
            f"alpha must lie in (0, 1] (the leading-sector threshold, paper: 0.9); got {alpha!r}"
        )
    return float(alpha)


@dataclasses.dataclass(frozen=True)
class Partition:
    """The leading sector R: the first ``n_r`` blocks, covering the first ``r`` rows of T."""

    alpha: float
    rho: float
    n_blocks: int
    n_r: int
    r: int


def partition(coords: SchurCoords, alpha: float) -> Partition:
    """R = blocks with |λ| ≥ α ρ(W) — a prefix, since the blocks are ordered by modulus."""
    alpha = check_alpha(alpha)
    threshold = alpha * coords.rho * (1 - PARTITION_RTOL)
    n_r = int(np.count_nonzero(coords.moduli >= threshold))
    return Partition(
        alpha=alpha,
        rho=coords.rho,
        n_blocks=coords.n_blocks,
        n_r=n_r,
        r=int(coords.block_sizes[:n_r].sum()),
    )


def coupling_parts(coords: SchurCoords, part: Partition) -> dict[str, Float[np.ndarray, "n n"]]:
    """T_RR, T_CR and T_CC as full n×n arrays (zeros elsewhere); they sum to N."""
    couplings = np.triu(coords.t)
    for start, size in zip(coords.block_starts, coords.block_sizes):
        couplings[start : start + size, start : start + size] = 0.0
    r = part.r
    parts = {name: np.zeros_like(couplings) for name in BLOCKS}
    parts["T_RR"][:r, :r] = couplings[:r, :r]
    parts["T_CR"][:r, r:] = couplings[:r, r:]
    parts["T_CC"][r:, r:] = couplings[r:, r:]
    return parts


def ablate(
    w: Float[np.ndarray, "n n"], coords: SchurCoords, parts: dict[str, np.ndarray], subset: tuple[str, ...]
) -> tuple[Float[np.ndarray, "n n"], Float[np.ndarray, "n n"]]:
    """(W̃(S), ΔT) for one subset S of BLOCKS.

    W̃ is formed as W − Q ΔT Qᵀ, equal to Q T̃ Qᵀ but exact for S = ∅ (W itself, bit for bit)
    and free of the reconstruction round-off for small removals.
    """
    delta_t = sum((parts[name] for name in subset), np.zeros_like(coords.t))
    if not subset:
        return np.array(w, np.float64), delta_t
    return w - coords.q @ delta_t @ coords.q.T, delta_t


@dataclasses.dataclass(frozen=True)
class AblationSet:
    """All 8 ablations of one matrix at one α, with the masses SPEC §6 reports beside them."""

    partition: Partition
    subsets: tuple[tuple[str, ...], ...]
    w_tilde: Float[np.ndarray, "8 n n"]
    removed_mass: Float[np.ndarray, " 8"]
    mass_rr: float
    mass_cr: float
    mass_cc: float
    nonnormal_fraction: float


def ablate_all(w, coords: SchurCoords, alpha: float) -> AblationSet:
    """W̃(S), ||ΔT||_F/||T||_F for every S in SUBSETS, block masses and ||N||_F/||T||_F."""
    w = np.asarray(w, np.float64)
    part = partition(coords, alpha)
    parts = coupling_parts(coords, part)
    t_norm = np.linalg.norm(coords.t)
    relative = (lambda x: float(np.linalg.norm(x) / t_norm)) if t_norm > 0 else (lambda x: 0.0)
    ablations = [ablate(w, coords, parts, subset) for subset in SUBSETS]
    return AblationSet(
        partition=part,
        subsets=SUBSETS,
        w_tilde=np.stack([w_tilde for w_tilde, _ in ablations]),
        removed_mass=np.array([relative(delta_t) for _, delta_t in ablations]),
        mass_rr=relative(parts["T_RR"]),
        mass_cr=relative(parts["T_CR"]),
        mass_cc=relative(parts["T_CC"]),
        nonnormal_fraction=relative(sum(parts.values())),
    )
