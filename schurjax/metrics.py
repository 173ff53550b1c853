"""Task metrics as pure array functions over scored (masked) entries.

Every function takes predictions and targets ``[B, T, Ny]`` and a boolean mask of the same shape;
unscored entries never contribute. FVU is split into its numerator (per model) and denominator
(per evaluation set) so that a batch of models shares one denominator.
"""

import jax.numpy as jnp

from ._typing import Array, Bool, Float


def _count(mask: Bool[Array, "..."], dtype) -> Float[Array, ""]:
    return jnp.maximum(mask.sum(), 1).astype(dtype)


def masked_mse(
    outputs: Float[Array, "B T Ny"], targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]
) -> Float[Array, ""]:
    """Mean squared error over scored entries: the training loss."""
    return squared_error(outputs, targets, mask) / _count(mask, outputs.dtype)


def squared_error(
    outputs: Float[Array, "B T Ny"], targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]
) -> Float[Array, ""]:
    """E||ŷ - y||² summed over scored entries (FVU's numerator)."""
    return jnp.where(mask, (outputs - targets) ** 2, 0.0).sum()


def target_variation(targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]) -> Float[Array, ""]:
    """Σ||y - ȳ||² over scored entries, ȳ the per-channel mean scored target (FVU's denominator)."""
    counts = jnp.maximum(mask.sum(axis=(0, 1), keepdims=True), 1).astype(targets.dtype)
    mean = jnp.where(mask, targets, 0.0).sum(axis=(0, 1), keepdims=True) / counts
    return jnp.where(mask, (targets - mean) ** 2, 0.0).sum()


def fvu(
    outputs: Float[Array, "B T Ny"], targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]
) -> Float[Array, ""]:
    """Fraction of variance unexplained on one evaluation set."""
    return squared_error(outputs, targets, mask) / target_variation(targets, mask)


def sign_agreement(
    outputs: Float[Array, "B T Ny"], targets: Float[Array, "B T Ny"], mask: Bool[Array, "B T Ny"]
) -> Float[Array, ""]:
    """Fraction of scored entries with sgn(ŷ) = y: replay accuracy for the ±1 copy targets."""
    agree = jnp.where(mask, jnp.sign(outputs) == targets, False)
    return agree.sum().astype(outputs.dtype) / _count(mask, outputs.dtype)
