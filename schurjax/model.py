"""The one-layer tanh RNN of SPEC §1, as an Equinox module.

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h),   h_0 = 0
    ŷ_t = W_hy h_t + b_y

Models of several widths share one batch by zero-padding to the largest width; ``unit_mask``
keeps the padded units at exactly zero, so a padded model computes what the unpadded one does.
"""

import functools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from ._typing import Array, Bool, Float, PRNGKeyArray
from .constructions import (
    CayleyRecurrent,
    DenseRecurrent,
    init_recurrent,
    pad_recurrent,
    truncate_recurrent,
    uniform_scale,
)

# Time steps per scan iteration: fewer loop-control round trips for a little more compile time.
SCAN_UNROLL = 5


def _scan_states(w_hh, drive, mask, streams):
    # The batch runs as ``streams`` independent recurrences in one loop body: their matmuls have
    # no data dependence, so XLA can run them on different cores at the same time step.
    def step(states, drive_t):
        states = tuple(jnp.tanh(d + h @ w_hh.T) * mask[None, :] for h, d in zip(states, drive_t))
        return states, states

    parts = tuple(jnp.split(drive, streams, axis=1))
    _, states = jax.lax.scan(step, tuple(jnp.zeros_like(p[0]) for p in parts), parts, unroll=SCAN_UNROLL)
    return jnp.concatenate(states, axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def tanh_recurrence(
    w_hh: Float[Array, "Nh Nh"],
    drive: Float[Array, "T B Nh"],
    mask: Float[Array, " Nh"],
    streams: int = 1,
) -> Float[Array, "T B Nh"]:
    """States of h_t = mask ⊙ tanh(drive_t + W_hh h_{t-1}), h_0 = 0, for a time-major batch.

    The hand-written backward pass runs the reverse scan for the pre-activation gradients only
    and forms dL/dW_hh afterwards as one matmul over all stored states (a contraction over
    T·B), instead of accumulating a small outer product at every step as autodiff of the scan
    would. ``streams`` (dividing B) splits the batch into independent recurrences that XLA may
    run in parallel.
    """
    return _scan_states(w_hh, drive, mask, streams)


def _recurrence_fwd(w_hh, drive, mask, streams):
    states = _scan_states(w_hh, drive, mask, streams)
    return states, (w_hh, states, mask)


def _recurrence_bwd(streams, residuals, state_cotangents):
    w_hh, states, mask = residuals

    def step(from_future, inputs):
        pre_activations = tuple(
            (cotangent + future) * (1.0 - state * state) * mask[None, :]
            for future, (state, cotangent) in zip(from_future, zip(*inputs))
        )
        return tuple(p @ w_hh for p in pre_activations), pre_activations

    parts = tuple(jnp.split(states, streams, axis=1)), tuple(jnp.split(state_cotangents, streams, axis=1))
    _, pre_activations = jax.lax.scan(
        step, tuple(jnp.zeros_like(p[0]) for p in parts[0]), parts, reverse=True, unroll=SCAN_UNROLL
    )
    pre_activations = jnp.concatenate(pre_activations, axis=1)
    previous = jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]])
    w_grad = jnp.einsum("tbi,tbj->ij", pre_activations, previous)
    return w_grad, pre_activations, None


tanh_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


class TanhRNN(eqx.Module):
    """A tanh RNN; biases are optional (off in the paper, kept fixed for imported networks)."""

    w_xh: Float[Array, "Nh Nx"]
    recurrent: DenseRecurrent | CayleyRecurrent
    w_hy: Float[Array, "Ny Nh"]
    unit_mask: Bool[Array, "Nh"]
    b_h: Float[Array, "Nh"] | None = None
    b_y: Float[Array, "Ny"] | None = None

    @property
    def width(self) -> int:
        """Number of active (unpadded) hidden units."""
        return int(self.unit_mask.sum())

    def hidden_states(self, inputs: Float[Array, "*B T Nx"], streams: int = 1) -> Float[Array, "*B T Nh"]:
        """Roll the network over one trial ``[T, Nx]`` or a batch of trials ``[B, T, Nx]`` from h_0 = 0.

        ``streams`` (dividing B) runs the batch as that many independent recurrences, which XLA
        can spread over CPU cores; it changes nothing else.
        """
        trials = inputs if inputs.ndim == 3 else inputs[None]
        # The input drive of every step is one matmul outside the sequential scan.
        drive = jnp.swapaxes(trials, 0, 1) @ self.w_xh.T
        if self.b_h is not None:
            drive = drive + self.b_h[None, None, :]
        states = tanh_recurrence(self.recurrent.matrix(), drive, self.unit_mask.astype(drive.dtype), streams)
        states = jnp.swapaxes(states, 0, 1)
        return states if inputs.ndim == 3 else states[0]

    def readout(self, states: Float[Array, "*B T Nh"]) -> Float[Array, "*B T Ny"]:
        outputs = states @ self.w_hy.T
        return outputs if self.b_y is None else outputs + jnp.expand_dims(self.b_y, range(states.ndim - 1))

    def __call__(self, inputs: Float[Array, "*B T Nx"], streams: int = 1) -> Float[Array, "*B T Ny"]:
        """Outputs for one trial ``[T, Nx]`` or a batch ``[B, T, Nx]``; see :meth:`hidden_states`."""
        return self.readout(self.hidden_states(inputs, streams))


def init_model(
    construction: str, width: int, n_in: int, n_out: int, key: PRNGKeyArray
) -> TanhRNN:
    """A fresh bias-free model: W_xh, W_hy ~ Unif[-m, m], m = Nh^{-1/2}; W_hh per construction."""
    in_key, rec_key, out_key = jax.random.split(key, 3)
    m = uniform_scale(width)
    return TanhRNN(
        w_xh=jax.random.uniform(in_key, (width, n_in), minval=-m, maxval=m),
        recurrent=init_recurrent(construction, width, rec_key),
        w_hy=jax.random.uniform(out_key, (n_out, width), minval=-m, maxval=m),
        unit_mask=jnp.ones(width, bool),
    )


def pad_model(model: TanhRNN, width: int) -> TanhRNN:
    """Zero-pad a model to ``width`` hidden units (padded units masked off)."""
    extra = width - model.w_xh.shape[0]
    return TanhRNN(
        w_xh=jnp.pad(model.w_xh, ((0, extra), (0, 0))),
        recurrent=pad_recurrent(model.recurrent, width),
        w_hy=jnp.pad(model.w_hy, ((0, 0), (0, extra))),
        unit_mask=jnp.pad(model.unit_mask, (0, extra)),
        b_h=None if model.b_h is None else jnp.pad(model.b_h, (0, extra)),
        b_y=model.b_y,
    )


def unpad_model(model: TanhRNN) -> TanhRNN:
    """Inverse of :func:`pad_model`: keep the active units (a prefix) only."""
    width = model.width
    return TanhRNN(
        w_xh=model.w_xh[:width],
        recurrent=truncate_recurrent(model.recurrent, width),
        w_hy=model.w_hy[:, :width],
        unit_mask=model.unit_mask[:width],
        b_h=None if model.b_h is None else model.b_h[:width],
        b_y=model.b_y,
    )


def stack_models(models: Sequence[TanhRNN]) -> TanhRNN:
    """Stack models of one structure and shape along a new leading (model) axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *models)


def unstack_models(models: TanhRNN) -> list[TanhRNN]:
    """Inverse of :func:`stack_models`."""
    count = models.w_xh.shape[0]
    return [jax.tree.map(lambda leaf: leaf[i], models) for i in range(count)]
