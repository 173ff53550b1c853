"""Ordered real Schur coordinates (SPEC §5) — host only: numpy/scipy in float64, no JAX.

W = Q T Q^T with Q orthogonal and T quasi-upper-triangular; T's 1×1 and standardised 2×2 diagonal
blocks are ordered by nonincreasing eigenvalue modulus. scipy's ``schur`` only splits the
spectrum into two groups, so the full order is reached by LAPACK block swaps (``dtrexc``).
"""

import dataclasses

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from ._typing import Float, Int

# Moduli closer than this (relative to ρ) count as tied and are ordered by the tie rule.
TIE_RTOL = 1e-12
RECONSTRUCTION_RTOL = 1e-10
ORTHOGONALITY_TOL = 1e-12


class SchurError(ValueError):
    """A check of SPEC §5 failed for this matrix."""


@dataclasses.dataclass(frozen=True)
class SchurCoords:
    """W = q @ t @ q.T with the diagonal blocks of t in nonincreasing modulus.

    ``block_starts[i]``/``block_sizes[i]`` locate block i on the diagonal of t; ``moduli[i]`` is
    |λ| of its eigenvalue(s) and ``eigenvalues[i]`` one eigenvalue (Im ≥ 0 for a 2×2 block).
    """

    q: Float[np.ndarray, "n n"]
    t: Float[np.ndarray, "n n"]
    block_starts: Int[np.ndarray, " k"]
    block_sizes: Int[np.ndarray, " k"]
    moduli: Float[np.ndarray, " k"]
    eigenvalues: np.ndarray

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


def _blocks(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts, sizes and eigenvalues (Im ≥ 0) of the diagonal blocks of a quasi-triangular t."""
    starts, sizes, eigenvalues, i = [], [], [], 0
    while i < len(t):
        if i + 1 < len(t) and t[i + 1, i] != 0.0:
            # A standardised block [[a, b], [c, a]] with bc < 0 has eigenvalues a ± i·sqrt(-bc).
            a, b, c = t[i, i], t[i, i + 1], t[i + 1, i]
            size, eigenvalue = 2, complex(a, np.sqrt(max(-b * c, 0.0)))
        else:
            size, eigenvalue = 1, complex(t[i, i])
        starts.append(i)
        sizes.append(size)
        eigenvalues.append(eigenvalue)
        i += size
    return np.array(starts, int), np.array(sizes, int), np.array(eigenvalues, complex)


def _leading(eigenvalues: np.ndarray, tie: float) -> int:
    """Index of the block that comes first: largest modulus; among ties the largest real part."""
    moduli = np.abs(eigenvalues)
    tied = np.flatnonzero(moduli >= moduli.max() - tie)
    return int(tied[np.argmax(eigenvalues[tied].real)])


def _validated(w) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"W_hh must be a non-empty square matrix; got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise ValueError(f"W_hh must be real; got dtype {w.dtype}")
    w = w.astype(np.float64)
    bad = int((~np.isfinite(w)).sum())
    if bad:
        raise ValueError(
            f"W_hh has {bad} NaN/inf entries; a diverged or corrupted model cannot be analysed"
        )
    return w


def ordered_schur(w) -> SchurCoords:
    """Ordered real Schur form of a real square matrix, checked (SPEC §5).

    Blocks are ordered by nonincreasing |λ|. Ties (moduli within ``TIE_RTOL``·ρ) are broken
    deterministically by the larger real part, so +r precedes -r and a real eigenvalue r precedes
    a complex pair of the same modulus; equal eigenvalues keep LAPACK's order.
    """
    w = _validated(w)
    t, q = scipy.linalg.schur(w, output="real")
    tie = TIE_RTOL * max(float(np.abs(_blocks(t)[2]).max()), np.finfo(float).tiny)
    position = 0
    while True:
        # A swap can (rarely) split or merge blocks, so the structure is read afresh each time.
        starts, _, eigenvalues = _blocks(t)
        if position >= len(starts):
            break
        chosen = position + _leading(eigenvalues[position:], tie)
        if chosen != position:
            # dtrexc moves the block starting at row ifst to row ilst (1-based).
            t, q, info = lapack.dtrexc(t, q, starts[chosen] + 1, starts[position] + 1)
            if info != 0:
                raise SchurError(
                    f"LAPACK refused to reorder Schur blocks (dtrexc info={info}): two eigenvalues "
                    "are too close to swap stably; the matrix is ill-conditioned"
                )
        position += 1
    starts, sizes, eigenvalues = _blocks(t)
    coords = SchurCoords(
        q=q, t=t, block_starts=starts, block_sizes=sizes, moduli=np.abs(eigenvalues), eigenvalues=eigenvalues
    )
    check_schur(w, coords)
    return coords


def check_schur(w, coords: SchurCoords) -> None:
    """Raise SchurError unless reconstruction, orthogonality, block form and order hold."""
    w = np.asarray(w, np.float64)
    q, t = coords.q, coords.t
    scale = max(np.linalg.norm(w), np.finfo(float).tiny)
    residual = np.linalg.norm(w - q @ t @ q.T) / scale
    if not residual <= RECONSTRUCTION_RTOL:
        raise SchurError(f"||W - Q T Q^T||_F / ||W||_F = {residual:.3g} exceeds {RECONSTRUCTION_RTOL:g}")
    # Spectral norm: the Frobenius norm of Householder round-off grows like n·eps and would
    # reject well-computed Q at widths of a few hundred.
    orthogonality = np.linalg.norm(q.T @ q - np.eye(len(q)), 2)
    if not orthogonality <= ORTHOGONALITY_TOL:
        raise SchurError(f"||Q^T Q - I||_2 = {orthogonality:.3g} exceeds {ORTHOGONALITY_TOL:g}")
    below = np.tril(t, -1)
    for start, size in zip(coords.block_starts, coords.block_sizes):
        if size == 2:
            below[start + 1, start] = 0.0
            a, b, c, d = t[start, start], t[start, start + 1], t[start + 1, start], t[start + 1, start + 1]
            if a != d or b * c >= 0:
                raise SchurError(f"the 2x2 block at row {start} is not in standard form [[a, b], [c, a]], bc < 0")
    if below.any():
        raise SchurError("T is not quasi-upper-triangular")
    tie = TIE_RTOL * max(coords.rho, np.finfo(float).tiny)
    if np.any(np.diff(coords.moduli) > tie):
        raise SchurError(f"block moduli are not nonincreasing: {coords.moduli}")
