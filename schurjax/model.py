"""The one-layer tanh RNN, as an Equinox module.

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h),   h_0 = 0
    ŷ_t = W_hy h_t + b_y

Models of several widths share one batch by zero-padding to the largest width; ``unit_mask``
keeps the padded units at exactly zero, so a padded model computes what the unpadded one does.
"""

import operator
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from ._typing import Array, Bool, Float, PRNGKeyArray
from .constructions import Recurrent, init_recurrent, uniform_scale

# Iterations per loop trip: fewer trips cut the fixed per-iteration cost of the loop on CPU; the
# measured optimum for T = 25..40 (5 beat 1, 2 and a full unroll).
_UNROLL = 5


def _forward(
    w_hh: Float[Array, "Nh Nh"], drive: Float[Array, "B T Nh"], mask: Float[Array, " Nh"]
) -> Float[Array, "B T Nh"]:
    # Batch-major throughout: the drive comes from the input projection, and the states go to the
    # readout and the W_hh gradient, without a transpose; each step reads and writes column t.
    w_t = w_hh.T

    def step(t, carry):
        state, states = carry
        drive_t = jax.lax.dynamic_index_in_dim(drive, t, axis=1, keepdims=False)
        state = jnp.tanh(drive_t + state @ w_t) * mask[None, :]
        return state, jax.lax.dynamic_update_index_in_dim(states, state, t, axis=1)

    start = (jnp.zeros_like(drive[:, 0]), jnp.zeros_like(drive))
    return jax.lax.fori_loop(0, drive.shape[1], step, start, unroll=_UNROLL)[1]


@jax.custom_vjp
def tanh_recurrence(
    w_hh: Float[Array, "Nh Nh"], drive: Float[Array, "B T Nh"], mask: Float[Array, " Nh"]
) -> Float[Array, "B T Nh"]:
    """States of h_t = mask ⊙ tanh(drive_t + W_hh h_{t-1}), h_0 = 0, for a batch of trials.

    The hand-written backward pass runs the reverse loop for the pre-activation gradients only
    and forms dL/dW_hh afterwards as ONE matmul over all trials and steps, instead of
    accumulating a small outer product at every step as autodiff of the loop would.
    """
    return _forward(w_hh, drive, mask)


def _recurrence_fwd(w_hh, drive, mask):
    states = _forward(w_hh, drive, mask)
    return states, (w_hh, states, mask)


def _recurrence_bwd(residuals, state_cotangents):
    w_hh, states, mask = residuals
    steps = states.shape[1]

    def step(i, carry):
        from_future, pre_activations = carry
        t = steps - 1 - i
        state = jax.lax.dynamic_index_in_dim(states, t, axis=1, keepdims=False)
        cotangent = jax.lax.dynamic_index_in_dim(state_cotangents, t, axis=1, keepdims=False)
        pre_activation = (cotangent + from_future) * (1.0 - state * state) * mask[None, :]
        return pre_activation @ w_hh, jax.lax.dynamic_update_index_in_dim(
            pre_activations, pre_activation, t, axis=1
        )

    start = (jnp.zeros_like(states[:, 0]), jnp.zeros_like(states))
    pre_activations = jax.lax.fori_loop(0, steps, step, start, unroll=_UNROLL)[1]
    # Σ_{b, t ≥ 1} δ_{b,t} h_{b,t-1}ᵀ as a plain 2-D matmul: a single contraction axis is
    # markedly faster on CPU than contracting the trial and time axes separately.
    width = states.shape[-1]
    flat_pre = pre_activations[:, 1:].reshape(-1, width)
    flat_previous = states[:, :-1].reshape(-1, width)
    return flat_pre.T @ flat_previous, pre_activations, None


tanh_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


class TanhRNN(eqx.Module):
    """A tanh RNN; biases are optional (off in the paper, kept fixed for imported networks)."""

    w_xh: Float[Array, "Nh Nx"]
    recurrent: Recurrent
    w_hy: Float[Array, "Ny Nh"]
    unit_mask: Bool[Array, " Nh"]
    b_h: Float[Array, " Nh"] | None = None
    b_y: Float[Array, " Ny"] | None = None

    @property
    def width(self) -> int:
        """Number of active (unpadded) hidden units."""
        return int(self.unit_mask.sum())

    def hidden_states(self, inputs: Float[Array, "*trials T Nx"]) -> Float[Array, "*trials T Nh"]:
        """Roll the network over one trial ``[T, Nx]``, or a batch ``[..., T, Nx]``, from h_0 = 0.

        Pass a batch directly rather than ``jax.vmap`` over trials: the batch then shares every
        matmul, which is how training and evaluation run fast.
        """
        if inputs.ndim < 2:
            raise ValueError(f"inputs must be [T, Nx] or [..., T, Nx]; got shape {inputs.shape}")
        leading = inputs.shape[:-2]
        trials = inputs.reshape(-1, *inputs.shape[-2:])
        # The input drive of every step is one matmul outside the sequential loop.
        drive = trials @ self.w_xh.T
        if self.b_h is not None:
            drive = drive + self.b_h[None, None, :]
        states = tanh_recurrence(self.recurrent.matrix(), drive, self.unit_mask.astype(drive.dtype))
        return states.reshape(*leading, *states.shape[1:])

    def readout(self, states: Float[Array, "*trials T Nh"]) -> Float[Array, "*trials T Ny"]:
        outputs = states @ self.w_hy.T
        return outputs if self.b_y is None else outputs + jnp.broadcast_to(self.b_y, outputs.shape)

    def __call__(self, inputs: Float[Array, "*trials T Nx"]) -> Float[Array, "*trials T Ny"]:
        return self.readout(self.hidden_states(inputs))


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
    if extra < 0:
        raise ValueError(f"cannot pad a model of {model.w_xh.shape[0]} units down to a smaller width {width}")
    return TanhRNN(
        w_xh=jnp.pad(model.w_xh, ((0, extra), (0, 0))),
        recurrent=model.recurrent.pad(width),
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
        recurrent=model.recurrent.truncate(width),
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
    return [jax.tree.map(operator.itemgetter(i), models) for i in range(count)]
