"""Ordered real Schur coordinates — host only: numpy/scipy in float64, no JAX.

W = Q T Q^T with Q orthogonal and T quasi-upper-triangular; T's 1×1 and standardised 2×2 diagonal
blocks are ordered by nonincreasing eigenvalue modulus. scipy's ``schur`` only splits the
spectrum into two groups, so the full order is reached by LAPACK block swaps (``dtrexc``).
"""

import dataclasses

import numpy as np
import scipy.linalg
from jaxtyping import Complex
from scipy.linalg import lapack

from ._typing import Float, Int

# Moduli closer than this (relative to ρ) count as tied and are ordered by the tie rule.
TIE_RTOL = 1e-12
RECONSTRUCTION_RTOL = 1e-10
# Frobenius norm, as the method states it: Householder/Givens round-off in Q grows like n·eps, and
# measured ||QᵀQ − I||_F stays below 4e-13 up to n = 512 (random Gaussian, orthogonal, symmetric).
ORTHOGONALITY_TOL = 1e-12
_TINY = np.finfo(np.float64).tiny


class SchurError(ValueError):
    """A check of the Schur decomposition failed: the computed Schur coordinates cannot be trusted."""


@dataclasses.dataclass(frozen=True)
class SchurCoords:
    """W = q @ t @ q.T with the k diagonal blocks of t in nonincreasing modulus.

    Shapes: q, t [n, n]; block_starts, block_sizes, moduli, eigenvalues [k].
    Block i occupies rows/columns ``block_starts[i] : block_starts[i] + block_sizes[i]`` of t;
    ``moduli[i]`` is |λ| of its eigenvalue(s) and ``eigenvalues[i]`` one eigenvalue (the one with
    Im > 0 for a 2×2 block).
    """

    q: Float[np.ndarray, "n n"]
    t: Float[np.ndarray, "n n"]
    block_starts: Int[np.ndarray, " k"]
    block_sizes: Int[np.ndarray, " k"]
    moduli: Float[np.ndarray, " k"]
    eigenvalues: Complex[np.ndarray, " k"]

    @property
    def n(self) -> int:
        return self.t.shape[0]

    @property
    def n_blocks(self) -> int:
        return len(self.block_sizes)

    @property
    def rho(self) -> float:
        """Spectral radius ρ(W)."""
        return float(self.moduli[0])


def _validated(w) -> Float[np.ndarray, "n n"]:
    """W as a float64 array, or a ValueError saying what is wrong with it."""
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"W_hh must be a non-empty square matrix; got shape {w.shape}")
    if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise ValueError(f"W_hh must be a real matrix; got dtype {w.dtype}")
    w = w.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(w)))
    if bad:
        raise ValueError(f"W_hh has {bad} NaN/inf entries; a diverged model cannot be analysed")
    return w


def _block_structure(t: Float[np.ndarray, "n n"]) -> tuple[Int[np.ndarray, " k"], Int[np.ndarray, " k"]]:
    """Starts and sizes of the diagonal blocks of a quasi-triangular t: a 2×2 block starts at i
    where t[i+1, i] ≠ 0 (quasi-triangularity rules out two such entries in a row)."""
    n = len(t)
    opens_pair, second_row = np.zeros(n, bool), np.zeros(n, bool)
    opens_pair[:-1] = second_row[1:] = t[range(1, n), range(n - 1)] != 0.0
    starts = np.flatnonzero(~second_row)
    return starts, 1 + opens_pair[starts].astype(np.int64)


def _block_eigenvalues(
    t: Float[np.ndarray, "n n"], starts: Int[np.ndarray, " k"], sizes: Int[np.ndarray, " k"]
) -> Complex[np.ndarray, " k"]:
    """One eigenvalue per block; a standardised block [[a, b], [c, a]], bc < 0, has a ± i·√(−bc)."""
    last = starts + sizes - 1  # a block's last row, its start for a 1×1 block
    # √|b|·√|c| rather than √(−bc): LAPACK's dlanv2 does the same to avoid under/overflow.
    imaginary = np.sqrt(np.abs(t[starts, last])) * np.sqrt(np.abs(t[last, starts]))
    return t[starts, starts] + 1j * np.where(sizes == 2, imaginary, 0.0)


def _leading(eigenvalues: Complex[np.ndarray, " m"], tie: float) -> int:
    """Index of the block that comes first: the largest modulus; among moduli tied with it the
    largest real part; among equal real parts the first (LAPACK's order)."""
    moduli = np.abs(eigenvalues)
    tied = np.flatnonzero(moduli >= moduli.max() - tie)
    return int(tied[np.argmax(eigenvalues[tied].real)])


def _reordered(
    t: Float[np.ndarray, "n n"], q: Float[np.ndarray, "n n"], tie: float
) -> tuple[Float[np.ndarray, "n n"], Float[np.ndarray, "n n"]]:
    """Selection sort of the diagonal blocks by dtrexc swaps; t and q are updated in place."""
    starts, sizes = _block_structure(t)
    position = 0
    while position < len(starts):
        eigenvalues = _block_eigenvalues(t, starts[position:], sizes[position:])
        chosen = position + _leading(eigenvalues, tie)
        if chosen != position:
            # dtrexc moves the block starting at row ifst up to row ilst (1-based); the blocks in
            # between shift down by one block. Arrays are Fortran-ordered float64, so no copies.
            t, q, info = lapack.dtrexc(
                t, q, starts[chosen] + 1, starts[position] + 1, overwrite_a=True, overwrite_q=True
            )
            if info != 0:
                raise SchurError(
                    f"reordering check failed: LAPACK dtrexc refused to swap the Schur blocks at rows "
                    f"{starts[position]} and {starts[chosen]} (info={info}) because their eigenvalues "
                    "are too close to separate stably; W_hh is likely ill-conditioned"
                )
            # A swap can (rarely) split a 2×2 block in two, so the structure is read afresh.
            starts, sizes = _block_structure(t)
        position += 1
    return t, q


def _is_standard(block: Float[np.ndarray, "2 2"]) -> bool:
    """[[a, b], [c, a]] with b, c of opposite signs (signs, not bc < 0, which can underflow)."""
    (a, b), (c, d) = block
    return bool(a == d and (b < 0 < c or c < 0 < b))


def _equalising_rotation(block: Float[np.ndarray, "2 2"]) -> tuple[float, float]:
    """(cos θ, sin θ) with GᵀMG of equal diagonal, G = [[cos, −sin], [sin, cos]].

    The diagonal difference of GᵀMG is cos 2θ·(a − d) + sin 2θ·(b + c), zero for tan 2θ = (d − a)/(b + c).
    """
    (a, b), (c, d) = block
    theta = 0.5 * np.arctan2(d - a, b + c)
    return float(np.cos(theta)), float(np.sin(theta))


def _standardised(
    t: Float[np.ndarray, "n n"], q: Float[np.ndarray, "n n"]
) -> tuple[Float[np.ndarray, "n n"], Float[np.ndarray, "n n"]]:
    """Bring every 2×2 block to LAPACK's standard form [[a, b], [c, a]], bc < 0.

    dgees and dtrexc already return this form, so normally nothing changes; a block that is not
    standard is rotated (T ← GᵀTG on its two rows/columns, Q ← QG), keeping W = Q T Qᵀ.
    """
    t, q = t.copy(order="F"), q.copy(order="F")
    starts, sizes = _block_structure(t)
    for i in starts[sizes == 2]:
        rows = slice(i, i + 2)
        if _is_standard(t[rows, rows]):
            continue
        cos, sin = _equalising_rotation(t[rows, rows])
        g = np.array([[cos, -sin], [sin, cos]])
        t[rows, :] = g.T @ t[rows, :]
        t[:, rows] = t[:, rows] @ g
        q[:, rows] = q[:, rows] @ g
        # The rotation equalises the diagonal up to one rounding; make it exact.
        t[i, i] = t[i + 1, i + 1] = 0.5 * (t[i, i] + t[i + 1, i + 1])
        if not _is_standard(t[rows, rows]):
            raise SchurError(
                f"standard-form check failed: the 2x2 Schur block at row {i} has real eigenvalues "
                f"(off-diagonal entries {t[i, i + 1]:.3g} and {t[i + 1, i]:.3g} of equal sign); LAPACK "
                "should have split it, so W_hh is likely ill-conditioned"
            )
    return t, q


def ordered_schur(w) -> SchurCoords:
    """Ordered real Schur form of a real square matrix W [n, n], checked.

    Blocks are ordered by nonincreasing |λ|. Moduli within ``TIE_RTOL``·ρ(W) of the largest
    remaining one count as tied; among tied blocks the one with the larger real part comes first,
    so +r precedes −r and a real eigenvalue r precedes a complex pair of modulus r. Blocks with
    equal eigenvalues keep LAPACK's order. The result is deterministic: the same W gives
    bitwise-identical Q and T.

    Raises ValueError for a non-square, empty, non-real or non-finite W, and SchurError when
    LAPACK cannot reorder the blocks or a check of :func:`check_schur` fails.
    """
    w = _validated(w)
    # LAPACK's block swaps lose all accuracy for |W| ~ 1e-300, so the work is done on W/2^e with
    # max|W/2^e| in [0.5, 1) and T is scaled back; scaling by a power of two is exact.
    exponent = int(np.frexp(np.abs(w).max())[1])
    t, q = scipy.linalg.schur(np.ldexp(w, -exponent), output="real")
    starts, sizes = _block_structure(t)
    tie = TIE_RTOL * max(float(np.abs(_block_eigenvalues(t, starts, sizes)).max()), _TINY)
    t, q = _standardised(*_reordered(t, q, tie))
    with np.errstate(over="ignore"):
        t = np.ldexp(t, exponent)
    if not np.isfinite(t).all():
        raise SchurError(
            f"finiteness check failed: the Schur form T of W_hh overflows float64 (entries beyond "
            f"{np.finfo(np.float64).max:.3g}); W_hh's entries are too large to analyse, rescale it"
        )
    starts, sizes = _block_structure(t)
    eigenvalues = _block_eigenvalues(t, starts, sizes)
    coords = SchurCoords(
        q=q, t=t, block_starts=starts, block_sizes=sizes, moduli=np.abs(eigenvalues), eigenvalues=eigenvalues
    )
    check_schur(w, coords)
    return coords


def check_schur(w, coords: SchurCoords) -> None:
    """Raise SchurError unless coords are valid Schur coordinates of W.

    Checks ||W − Q T Qᵀ||_F ≤ 1e-10·||W||_F, ||QᵀQ − I||_F ≤ 1e-12, that the blocks tile the
    diagonal with nothing else below it, that 2×2 blocks are standardised, and that the moduli
    are nonincreasing up to the tie tolerance.
    """
    w = _validated(w)
    q, t = coords.q, coords.t
    if q.shape != w.shape or t.shape != w.shape:
        raise SchurError(f"Schur coordinates of shape {t.shape} do not belong to W_hh of shape {w.shape}")
    hint = "W_hh is likely ill-conditioned, or so badly scaled that Q/T under/overflowed to non-finite entries"
    # Norms of W/max|W| neither overflow nor underflow, whatever the scale of W.
    scale = max(float(np.abs(w).max()), _TINY)
    residual = np.linalg.norm(w / scale - q @ (t / scale) @ q.T) / max(np.linalg.norm(w / scale), _TINY)
    if not residual <= RECONSTRUCTION_RTOL:
        raise SchurError(
            f"reconstruction check failed: ||W - Q T Q^T||_F / ||W||_F = {residual:.3g} > "
            f"{RECONSTRUCTION_RTOL:g}; {hint}"
        )
    orthogonality = np.linalg.norm(q.T @ q - np.eye(len(q)))
    if not orthogonality <= ORTHOGONALITY_TOL:
        raise SchurError(
            f"orthogonality check failed: ||Q^T Q - I||_F = {orthogonality:.3g} > {ORTHOGONALITY_TOL:g}; {hint}"
        )
    starts, sizes = coords.block_starts, coords.block_sizes
    if not np.array_equal(starts, np.cumsum(sizes) - sizes) or sizes.sum() != len(t):
        raise SchurError(f"block check failed: blocks of sizes {sizes} at rows {starts} do not tile T")
    below = np.tril(t, -1)
    below[starts[sizes == 2] + 1, starts[sizes == 2]] = 0.0
    if below.any():
        raise SchurError(
            f"quasi-triangularity check failed: T has {np.count_nonzero(below)} nonzero entries below "
            "its diagonal blocks"
        )
    for i in starts[sizes == 2]:
        if not _is_standard(t[i : i + 2, i : i + 2]):
            raise SchurError(
                f"standard-form check failed: the 2x2 block at row {i} is {t[i : i + 2, i : i + 2].tolist()}, "
                "not [[a, b], [c, a]] with b, c of opposite signs"
            )
    tie = TIE_RTOL * max(coords.rho, _TINY)
    rise = float(np.max(np.diff(coords.moduli), initial=0.0))
    if not rise <= tie:
        raise SchurError(
            f"ordering check failed: a block modulus exceeds its predecessor's by {rise:.3g} > {tie:.3g} "
            f"(= {TIE_RTOL:g}·rho); block swaps move the eigenvalues of an ill-conditioned W_hh by more "
            "than the tie tolerance"
        )
