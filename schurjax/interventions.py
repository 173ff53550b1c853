"""Leading-sector partition and the 8 coupling ablations — host only, float64.

T = B + N with B the Schur eigenvalue blocks and N the strictly block-upper-triangular nonnormal
couplings. The leading sector R is the prefix of blocks with |λ| ≥ α ρ(W), C the rest, and N
splits into T_RR (inside R), T_CR (the paper's T_C→R: rows in R, columns in C) and T_CC (inside C).
An ablation removes the parts in a subset S: W̃(S) = Q T̃(S) Qᵀ = W − Q ΔT(S) Qᵀ.
"""

import dataclasses
import numbers

import numpy as np

from ._typing import Float
from .columns import declare
from .schur import SchurCoords

BLOCKS = ("T_RR", "T_CR", "T_CC")
# Canonical order: by size, then in BLOCKS order within a size.
SUBSETS: tuple[tuple[str, ...], ...] = (
    (),
    ("T_RR",),
    ("T_CR",),
    ("T_CC",),
    ("T_RR", "T_CR"),
    ("T_RR", "T_CC"),
    ("T_CR", "T_CC"),
    ("T_RR", "T_CR", "T_CC"),
)
# α·ρ thresholds are compared with this relative slack, so α = 1 keeps every block tied with ρ
# (the ordering itself treats moduli within 1e-12·ρ as tied).
PARTITION_RTOL = 1e-12


def subset_name(subset: tuple[str, ...]) -> str:
    """``()`` → ``"none"``; otherwise the block names in BLOCKS order joined by ``+``."""
    subset = _checked_subset(subset)
    return "+".join(name for name in BLOCKS if name in subset) or "none"


def parse_subset(name: str) -> tuple[str, ...]:
    """Inverse of :func:`subset_name`: ``"T_RR+T_CC"`` → ``("T_RR", "T_CC")``."""
    for subset in SUBSETS:
        if subset_name(subset) == name:
            return subset
    raise ValueError(f"unknown subset {name!r}; valid names: {', '.join(subset_name(s) for s in SUBSETS)}")


def _checked_subset(subset: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in subset if name not in BLOCKS]
    if unknown:
        raise ValueError(f"unknown coupling block(s) {unknown} in subset {subset!r}; valid blocks: {BLOCKS}")
    return subset


def check_alpha(alpha: object) -> float:
    """α as a float, or a ValueError unless it is a real number in (0, 1].

    Annotated ``object`` so that a string or None reaches this check (and its message) rather
    than a type-checker error.
    """
    # NaN fails both comparisons; bool is a numbers.Real but never a meaningful threshold.
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha <= 1:
        raise ValueError(f"alpha must lie in (0, 1] (the leading-sector threshold, paper: 0.9); got {alpha!r}")
    return float(alpha)


@dataclasses.dataclass(frozen=True)
class Partition:
    """The leading sector R: the first ``n_r`` of ``n_blocks`` blocks, covering the first ``r``
    rows/columns of T (``r`` = the sum of their block sizes)."""

    alpha: float
    rho: float
    n_blocks: int
    n_r: int
    r: int


def partition(coords: SchurCoords, alpha: numbers.Real) -> Partition:
    """R = blocks with |λ| ≥ α ρ(W): a prefix, since the blocks are ordered by modulus.

    The comparison is |λ| ≥ α ρ (1 − 1e-12), so α = 1 takes every block tied with ρ. For
    ρ = 0 (nilpotent or zero W) every block is in R.
    """
    alpha = check_alpha(alpha)
    threshold = alpha * coords.rho * (1 - PARTITION_RTOL)
    n_r = int(np.count_nonzero(coords.moduli >= threshold))
    return Partition(
        alpha=alpha, rho=coords.rho, n_blocks=coords.n_blocks, n_r=n_r, r=int(coords.block_sizes[:n_r].sum())
    )


def coupling_parts(coords: SchurCoords, part: Partition) -> dict[str, Float[np.ndarray, "n n"]]:
    """T_RR, T_CR and T_CC, each a full [n, n] array, zero outside its rows/columns; they sum to N.

    N is T with its diagonal blocks (and so everything below them) set to zero.
    """
    couplings = np.triu(coords.t)
    for start, size in zip(coords.block_starts, coords.block_sizes):
        couplings[start : start + size, start : start + size] = 0.0
    r = part.r
    parts = {name: np.zeros_like(couplings) for name in BLOCKS}
    parts["T_RR"][:r, :r] = couplings[:r, :r]
    parts["T_CR"][:r, r:] = couplings[:r, r:]
    parts["T_CC"][r:, r:] = couplings[r:, r:]
    return parts


def _removed(parts: dict[str, np.ndarray], subset: tuple[str, ...]) -> Float[np.ndarray, "n n"]:
    """ΔT(S): the sum of the parts in S (exactly zero for S = ∅)."""
    delta_t = np.zeros_like(parts["T_RR"])
    for name in _checked_subset(subset):
        delta_t += parts[name]
    return delta_t


def _float64_matching(w, coords: SchurCoords) -> Float[np.ndarray, "n n"]:
    w = np.asarray(w, np.float64)
    if w.shape != coords.t.shape:
        raise ValueError(
            f"W_hh of shape {w.shape} does not match Schur coordinates of shape {coords.t.shape}; "
            "pass the matrix that ordered_schur was computed from"
        )
    return w


def ablate(
    w, coords: SchurCoords, part: Partition, subset: tuple[str, ...]
) -> tuple[Float[np.ndarray, "n n"], Float[np.ndarray, "n n"]]:
    """(W̃(S), ΔT(S)) for one subset S of BLOCKS, both [n, n] float64.

    ``w`` must be the matrix ``coords`` came from; W̃(S) = W − Q ΔT(S) Qᵀ equals Q T̃(S) Qᵀ.
    """
    w = _float64_matching(w, coords)
    delta_t = _removed(coupling_parts(coords, part), subset)
    # W − Q ΔT Qᵀ rather than Q T̃ Qᵀ: for S = ∅ it is W bit for bit (Q·0·Qᵀ is exactly 0), and
    # for small removals it carries no reconstruction round-off of the kept part.
    return w - coords.q @ delta_t @ coords.q.T, delta_t


# The result columns of the Schur stage: the partition, the coupling masses, and the mass each subset removes.
ABLATION_COLUMNS = declare(
    n_R=int, n_blocks=int, rho=float, mass_RR=float, mass_CR=float, mass_CC=float, nonnormal_fraction=float,
    removed_mass=float,
)


@dataclasses.dataclass(frozen=True)
class AblationSet:
    """All 8 ablations of one matrix at one α, with the masses reported beside them.

    ``w_tilde[i]`` [n, n] and ``removed_mass[i]`` = ||ΔT||_F / ||T||_F belong to ``subsets[i]``;
    ``mass_rr`` etc. are ||T_X||_F / ||T||_F and ``nonnormal_fraction`` is ||N||_F / ||T||_F
    (all 0.0 when T = 0).
    """

    partition: Partition
    subsets: tuple[tuple[str, ...], ...]
    w_tilde: Float[np.ndarray, "8 n n"]
    removed_mass: Float[np.ndarray, "8"]
    mass_rr: float
    mass_cr: float
    mass_cc: float
    nonnormal_fraction: float


def ablate_all(w, coords: SchurCoords, alpha: numbers.Real) -> AblationSet:
    """W̃(S) and ||ΔT(S)||_F/||T||_F for every S in SUBSETS, block masses and ||N||_F/||T||_F.

    ``w`` [n, n] must be the matrix ``coords`` came from.
    """
    part = partition(coords, alpha)
    parts = coupling_parts(coords, part)
    # Norms of x/max|T| neither overflow nor underflow, whatever the scale of W.
    scale = float(np.abs(coords.t).max())
    t_norm = float(np.linalg.norm(coords.t / scale)) if scale > 0 else 0.0

    def relative(x: np.ndarray) -> float:
        return float(np.linalg.norm(x / scale)) / t_norm if t_norm > 0 else 0.0

    ablations = [ablate(w, coords, part, subset) for subset in SUBSETS]
    return AblationSet(
        partition=part,
        subsets=SUBSETS,
        w_tilde=np.stack([w_tilde for w_tilde, _ in ablations]),
        removed_mass=np.array([relative(delta_t) for _, delta_t in ablations]),
        mass_rr=relative(parts["T_RR"]),
        mass_cr=relative(parts["T_CR"]),
        mass_cc=relative(parts["T_CC"]),
        nonnormal_fraction=relative(_removed(parts, BLOCKS)),
    )


def ablation_columns(ablation: AblationSet) -> list[dict]:
    """The :data:`ABLATION_COLUMNS` of each of the 8 result rows of one matrix (SUBSETS order)."""
    shared = dict(
        n_R=ablation.partition.n_r,
        n_blocks=ablation.partition.n_blocks,
        rho=ablation.partition.rho,
        mass_RR=ablation.mass_rr,
        mass_CR=ablation.mass_cr,
        mass_CC=ablation.mass_cc,
        nonnormal_fraction=ablation.nonnormal_fraction,
    )
    return [shared | dict(removed_mass=float(mass)) for mass in ablation.removed_mass]
