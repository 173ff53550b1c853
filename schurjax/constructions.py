"""Recurrent-matrix constructions: how W_hh is initialised and parametrised.

The three ``dense_*`` constructions train W_hh itself and differ only at initialisation, so they
share one parametrisation (:class:`DenseRecurrent`) and can be trained in one vmapped program.
``cayley`` trains a skew matrix and a real block-diagonal D instead (:class:`CayleyRecurrent`),
which keeps every iterate exactly normal.

Initialisation runs eagerly (the Cayley block pattern is read off a concrete eigen-decomposition);
only :meth:`matrix` is traced during training.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Float, Int, PRNGKeyArray

CONSTRUCTIONS = ("dense_default", "dense_orthogonal", "dense_normal", "cayley")


def check_construction(name: object, width: object) -> None:
    """Raise a ValueError naming the fix for an unknown construction or a width it cannot take."""
    if name not in CONSTRUCTIONS:
        raise ValueError(
            f"unknown construction {name!r}; choose from: {', '.join(CONSTRUCTIONS)}"
        )
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}")
    if name == "dense_normal" and width % 2:
        raise ValueError(
            f"dense_normal builds W_hh from 2x2 rotation-scaling blocks and needs an even width; "
            f"got width {width}. Use an even width (e.g. {width + 1}) or another construction."
        )


def uniform_scale(width: int) -> float:
    """PyTorch's nn.RNN / nn.Linear init bound m = Nh^{-1/2}."""
    return float(width) ** -0.5


class DenseRecurrent(eqx.Module):
    """An unconstrained recurrent matrix: the trained parameter is W_hh itself."""

    weight: Float[Array, "Nh Nh"]

    def matrix(self) -> Float[Array, "Nh Nh"]:
        return self.weight


def _rotation_pattern(block_sizes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Block id of every unit, and the ±1 pattern that turns b_i into [[., -b_i], [b_i, .]]."""
    block_of_unit = np.repeat(np.arange(len(block_sizes)), block_sizes).astype(np.int32)
    starts = np.cumsum(block_sizes) - block_sizes
    pairs = starts[block_sizes == 2]
    pattern = np.zeros((width, width), np.int8)
    pattern[pairs + 1, pairs] = 1
    pattern[pairs, pairs + 1] = -1
    return block_of_unit, pattern


class CayleyRecurrent(eqx.Module):
    """W = O(A) D O(A)^T with O(A) = (I - A)(I + A)^{-1} and A = (U - U^T)/2.

    D is block-diagonal with a fixed pattern of 1×1 blocks ``[a_i]`` and 2×2 blocks
    ``[[a_i, -b_i], [b_i, a_i]]``; the trained parameters are U, a and b. Every W produced is
    exactly normal (up to round-off), whatever the parameters.
    """

    u: Float[Array, "Nh Nh"]
    block_real: Float[Array, "Nh"]
    block_imag: Float[Array, "Nh"]
    block_of_unit: Int[Array, "Nh"]
    # Integer, so that it is not a trainable (inexact) leaf.
    rotation_pattern: Int[Array, "Nh Nh"]

    def matrix(self) -> Float[Array, "Nh Nh"]:
        width = self.u.shape[0]
        skew = 0.5 * (self.u - self.u.T)
        eye = jnp.eye(width, dtype=self.u.dtype)
        # O = (I - A)(I + A)^{-1}; A and (I + A)^{-1} commute, so solve from the left.
        rotation = jnp.linalg.solve(eye + skew, eye - skew)
        pattern = self.rotation_pattern.astype(self.u.dtype)
        d = jnp.diag(self.block_real[self.block_of_unit]) + pattern * (
            self.block_imag[self.block_of_unit][None, :]
        )
        return rotation @ d @ rotation.T


def _realblock_eigenvalues(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, block sizes) of realblock(eig(w)), in a deterministic order (by modulus, then a)."""
    eig = np.linalg.eigvals(w.astype(np.float64))
    # LAPACK returns conjugate pairs exactly conjugate and real eigenvalues with Im exactly 0;
    # keep one member (Im > 0) of each pair.
    kept = eig[eig.imag >= 0]
    order = np.lexsort((-kept.real, -np.abs(kept)))
    kept = kept[order]
    sizes = np.where(kept.imag > 0, 2, 1)
    return kept.real, kept.imag, sizes


def init_recurrent(
    construction: str, width: int, key: PRNGKeyArray
) -> DenseRecurrent | CayleyRecurrent:
    """W_hh(0) for one construction, float32, at its true (unpadded) width."""
    check_construction(construction, width)
    m = uniform_scale(width)
    if construction == "dense_default":
        return DenseRecurrent(jax.random.uniform(key, (width, width), minval=-m, maxval=m))
    if construction == "dense_orthogonal":
        return DenseRecurrent(jax.random.orthogonal(key, width))
    if construction == "dense_normal":
        q_key, ab_key = jax.random.split(key)
        q = jax.random.orthogonal(q_key, width)
        a, b = jax.random.normal(ab_key, (2, width // 2)) * (1.0 / 6.0) ** 0.5
        block_sizes = np.full(width // 2, 2)
        block_of_unit, pattern = _rotation_pattern(block_sizes, width)
        d = jnp.diag(a[block_of_unit]) + jnp.asarray(pattern, a.dtype) * b[block_of_unit][None, :]
        return DenseRecurrent(q @ d @ q.T)
    u_key, d_key = jax.random.split(key)
    u = jax.random.uniform(u_key, (width, width), minval=-m, maxval=m)
    w_tilde = np.asarray(jax.random.uniform(d_key, (width, width), minval=-m, maxval=m))
    a, b, block_sizes = _realblock_eigenvalues(w_tilde)
    block_of_unit, pattern = _rotation_pattern(block_sizes, width)
    # Parameter vectors have one slot per unit so that every model of a width shares one shape;
    # slots past the number of blocks are unused and keep a zero gradient.
    block_real = np.zeros(width, np.float32)
    block_imag = np.zeros(width, np.float32)
    block_real[: len(a)] = a
    block_imag[: len(b)] = b
    return CayleyRecurrent(
        u=u,
        block_real=jnp.asarray(block_real),
        block_imag=jnp.asarray(block_imag),
        block_of_unit=jnp.asarray(block_of_unit),
        rotation_pattern=jnp.asarray(pattern),
    )


def pad_recurrent(
    recurrent: DenseRecurrent | CayleyRecurrent, width: int
) -> DenseRecurrent | CayleyRecurrent:
    """Zero-pad to ``width`` units so that models of several widths stack into one batch.

    Padded units get their own (zero) block slots, so W_hh stays exactly zero outside the
    original width and the original block keeps every value it had.
    """
    extra = width - recurrent.matrix().shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad a recurrent matrix down to a smaller width {width}")
    square = lambda x: jnp.pad(x, ((0, extra), (0, extra)))  # noqa: E731
    if isinstance(recurrent, DenseRecurrent):
        return DenseRecurrent(square(recurrent.weight))
    old = recurrent.u.shape[0]
    return CayleyRecurrent(
        u=square(recurrent.u),
        block_real=jnp.pad(recurrent.block_real, (0, extra)),
        block_imag=jnp.pad(recurrent.block_imag, (0, extra)),
        block_of_unit=jnp.concatenate(
            [recurrent.block_of_unit, jnp.arange(old, width, dtype=jnp.int32)]
        ),
        rotation_pattern=square(recurrent.rotation_pattern),
    )


def truncate_recurrent(
    recurrent: DenseRecurrent | CayleyRecurrent, width: int
) -> DenseRecurrent | CayleyRecurrent:
    """Inverse of :func:`pad_recurrent`: keep the first ``width`` units."""
    if isinstance(recurrent, DenseRecurrent):
        return DenseRecurrent(recurrent.weight[:width, :width])
    return CayleyRecurrent(
        u=recurrent.u[:width, :width],
        block_real=recurrent.block_real[:width],
        block_imag=recurrent.block_imag[:width],
        block_of_unit=recurrent.block_of_unit[:width],
        rotation_pattern=recurrent.rotation_pattern[:width, :width],
    )
