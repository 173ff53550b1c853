"""Recurrent-matrix constructions: how W_hh is initialised and parametrised.

A construction is a name in :data:`CONSTRUCTIONS`, registered with :func:`register_construction`:
a function ``init(width, key)`` that returns a :class:`Recurrent`, the module whose leaves are
trained and whose :meth:`~Recurrent.matrix` is W_hh. Models whose recurrent modules share a class
(one tree structure) and a width train together in one vmapped program.

The three ``dense_*`` constructions train W_hh itself and differ only at initialisation, so they
share one parametrisation (:class:`DenseRecurrent`). ``cayley`` trains a skew matrix and a real
block-diagonal D instead (:class:`CayleyRecurrent`), which keeps every iterate exactly normal.

Initialisation runs eagerly (the Cayley block pattern is read off a concrete eigen-decomposition);
only :meth:`~Recurrent.matrix` is traced during training.
"""

import abc
import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Float, Int, PRNGKeyArray


class Recurrent(eqx.Module):
    """A parametrisation of W_hh: its inexact-array leaves are trained, :meth:`matrix` forms W_hh.

    Leaves that must not train (index patterns, masks) should be integer or boolean arrays.
    """

    @abc.abstractmethod
    def matrix(self) -> Float[Array, "Nh Nh"]:
        """W_hh, formed from the parameters (traced during training)."""

    @abc.abstractmethod
    def pad(self, width: int) -> "Recurrent":
        """The same network zero-padded to ``width`` >= its own width, so that models of several widths
        stack into one batch: W_hh must be exactly zero outside the original block and keep every value
        inside it."""

    @abc.abstractmethod
    def truncate(self, width: int) -> "Recurrent":
        """Inverse of :meth:`pad`: keep the first ``width`` units."""


RecurrentInit = Callable[[int, PRNGKeyArray], Recurrent]


@dataclasses.dataclass(frozen=True)
class Construction:
    """A registered construction: ``init(width, key)`` builds W_hh(0) at the true width, float32;
    ``check_width(width)``, if given, raises a ValueError naming the fix for a width it cannot take."""

    init: RecurrentInit
    check_width: Callable[[int], None] | None = None


# Registered construction name -> Construction, in registration order (the built-ins first).
CONSTRUCTIONS: dict[str, Construction] = {}


def register_construction(
    name: str, *, check_width: Callable[[int], None] | None = None
) -> Callable[[RecurrentInit], RecurrentInit]:
    """Decorator registering ``init(width, key) -> Recurrent`` as the construction ``name``.

    Registering the same function again is a no-op; another function under a taken name is refused.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a construction needs a non-empty string name; got {name!r}")

    def register(init: RecurrentInit) -> RecurrentInit:
        if not callable(init):
            raise TypeError(
                f"register_construction({name!r}) decorates a function init(width, key) -> Recurrent; "
                f"got {init!r}"
            )
        entry = Construction(init, check_width)
        taken = CONSTRUCTIONS.get(name)
        if taken is not None and taken != entry:
            raise ValueError(
                f"construction {name!r} is already registered by {taken.init.__module__}."
                f"{taken.init.__qualname__}; register yours under another name"
            )
        CONSTRUCTIONS[name] = entry
        return init

    return register


def check_construction(name: object, width: object) -> None:
    """Raise a ValueError naming the fix for an unknown construction or a width it cannot take."""
    if name not in CONSTRUCTIONS:
        raise ValueError(
            f"unknown construction {name!r}; choose from: {', '.join(CONSTRUCTIONS)} "
            "(or register one with schurjax.constructions.register_construction)"
        )
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}")
    check_width = CONSTRUCTIONS[name].check_width
    if check_width is not None:
        check_width(width)


def init_recurrent(construction: str, width: int, key: PRNGKeyArray) -> Recurrent:
    """W_hh(0) for one construction, float32, at its true (unpadded) width."""
    check_construction(construction, width)
    recurrent = CONSTRUCTIONS[construction].init(width, key)
    if not isinstance(recurrent, Recurrent):
        raise TypeError(
            f"construction {construction!r} returned {type(recurrent).__name__}, not a Recurrent module; its init "
            "must return a schurjax.constructions.Recurrent (e.g. DenseRecurrent(w))"
        )
    return recurrent


def uniform_scale(width: int) -> float:
    """PyTorch's nn.RNN / nn.Linear init bound m = Nh^{-1/2}."""
    return float(width) ** -0.5


def _square_pad(x: Array, extra: int) -> Array:
    return jnp.pad(x, ((0, extra), (0, extra)))


class DenseRecurrent(Recurrent):
    """An unconstrained recurrent matrix: the trained parameter is W_hh itself."""

    weight: Float[Array, "Nh Nh"]

    def matrix(self) -> Float[Array, "Nh Nh"]:
        return self.weight

    def pad(self, width: int) -> "DenseRecurrent":
        return DenseRecurrent(_square_pad(self.weight, width - self.weight.shape[0]))

    def truncate(self, width: int) -> "DenseRecurrent":
        return DenseRecurrent(self.weight[:width, :width])


def _rotation_pattern(block_sizes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Block id of every unit, and the ±1 pattern that turns b_i into [[., -b_i], [b_i, .]]."""
    block_of_unit = np.repeat(np.arange(len(block_sizes)), block_sizes).astype(np.int32)
    starts = np.cumsum(block_sizes) - block_sizes
    pairs = starts[block_sizes == 2]
    pattern = np.zeros((width, width), np.int8)
    pattern[pairs + 1, pairs] = 1
    pattern[pairs, pairs + 1] = -1
    return block_of_unit, pattern


class CayleyRecurrent(Recurrent):
    """W = O(A) D O(A)^T with O(A) = (I - A)(I + A)^{-1} and A = (U - U^T)/2.

    D is block-diagonal with a fixed pattern of 1×1 blocks ``[a_i]`` and 2×2 blocks
    ``[[a_i, -b_i], [b_i, a_i]]``; the trained parameters are U, a and b. Every W produced is
    exactly normal (up to round-off), whatever the parameters.
    """

    u: Float[Array, "Nh Nh"]
    block_real: Float[Array, " Nh"]
    block_imag: Float[Array, " Nh"]
    block_of_unit: Int[Array, " Nh"]
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

    def pad(self, width: int) -> "CayleyRecurrent":
        # Padded units get their own (zero) block slots, so W_hh stays exactly zero outside the
        # original width and the original block keeps every value it had.
        old = self.u.shape[0]
        extra = width - old
        return CayleyRecurrent(
            u=_square_pad(self.u, extra),
            block_real=jnp.pad(self.block_real, (0, extra)),
            block_imag=jnp.pad(self.block_imag, (0, extra)),
            block_of_unit=jnp.concatenate([self.block_of_unit, jnp.arange(old, width, dtype=jnp.int32)]),
            rotation_pattern=_square_pad(self.rotation_pattern, extra),
        )

    def truncate(self, width: int) -> "CayleyRecurrent":
        return CayleyRecurrent(
            u=self.u[:width, :width],
            block_real=self.block_real[:width],
            block_imag=self.block_imag[:width],
            block_of_unit=self.block_of_unit[:width],
            rotation_pattern=self.rotation_pattern[:width, :width],
        )


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


def _uniform(key: PRNGKeyArray, width: int) -> Float[Array, "Nh Nh"]:
    m = uniform_scale(width)
    return jax.random.uniform(key, (width, width), minval=-m, maxval=m)


@register_construction("dense_default")
def _dense_default(width: int, key: PRNGKeyArray) -> DenseRecurrent:
    """PyTorch's default: W_hh ~ Unif[-m, m]."""
    return DenseRecurrent(_uniform(key, width))


@register_construction("dense_orthogonal")
def _dense_orthogonal(width: int, key: PRNGKeyArray) -> DenseRecurrent:
    """A Haar-random orthogonal W_hh."""
    return DenseRecurrent(jax.random.orthogonal(key, width))


def _even_width(width: int) -> None:
    if width % 2:
        raise ValueError(
            f"dense_normal builds W_hh from 2x2 rotation-scaling blocks and needs an even width; "
            f"got width {width}. Use an even width (e.g. {width + 1}) or another construction."
        )


@register_construction("dense_normal", check_width=_even_width)
def _dense_normal(width: int, key: PRNGKeyArray) -> DenseRecurrent:
    """A random normal W_hh = Q D Qᵀ: Q Haar-orthogonal, D of 2x2 blocks a ± ib, a, b ~ N(0, 1/6)."""
    q_key, ab_key = jax.random.split(key)
    q = jax.random.orthogonal(q_key, width)
    a, b = jax.random.normal(ab_key, (2, width // 2)) * (1.0 / 6.0) ** 0.5
    block_sizes = np.full(width // 2, 2)
    block_of_unit, pattern = _rotation_pattern(block_sizes, width)
    d = jnp.diag(a[block_of_unit]) + jnp.asarray(pattern, a.dtype) * b[block_of_unit][None, :]
    return DenseRecurrent(q @ d @ q.T)


@register_construction("cayley")
def _cayley(width: int, key: PRNGKeyArray) -> CayleyRecurrent:
    """A Cayley-parametrised normal W_hh with the spectrum of an independent Unif[-m, m] matrix."""
    u_key, d_key = jax.random.split(key)
    u = _uniform(u_key, width)
    a, b, block_sizes = _realblock_eigenvalues(np.asarray(_uniform(d_key, width)))
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
