"""Plain weight matrices of a network, on the host: the boundary between training and analysis.

Trained models are exported to :class:`RNNWeights` (float64 numpy, PyTorch orientation, true
width) for the host-side Schur analysis and for ``models/*.npz``; ablated matrices go back to the
traced evaluator as plain dense :class:`~schurjax.model.TanhRNN` modules.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from ._typing import Float
from .constructions import DenseRecurrent
from .model import TanhRNN, pad_model


@dataclasses.dataclass(frozen=True)
class RNNWeights:
    """W_xh [Nh, Nx], W_hh [Nh, Nh], W_hy [Ny, Nh] and optional biases b_h [Nh], b_y [Ny]."""

    w_xh: Float[np.ndarray, "Nh Nx"]
    w_hh: Float[np.ndarray, "Nh Nh"]
    w_hy: Float[np.ndarray, "Ny Nh"]
    b_h: Float[np.ndarray, "Nh"] | None = None
    b_y: Float[np.ndarray, "Ny"] | None = None

    @property
    def width(self) -> int:
        return self.w_hh.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-missing matrices by their npz key."""
        fields = dataclasses.asdict(self)
        return {name: value for name, value in fields.items() if value is not None}

    def with_recurrent(self, w_hh: Float[np.ndarray, "Nh Nh"]) -> "RNNWeights":
        return dataclasses.replace(self, w_hh=w_hh)


def export_weights(model: TanhRNN) -> RNNWeights:
    """The trained matrices of an (unpadded) model, float64 on the host."""
    host = lambda x: None if x is None else np.asarray(x, np.float64)  # noqa: E731
    return RNNWeights(
        w_xh=host(model.w_xh),
        w_hh=host(model.recurrent.matrix()),
        w_hy=host(model.w_hy),
        b_h=host(model.b_h),
        b_y=host(model.b_y),
    )


def dense_model(weights: RNNWeights, width: int | None = None, *, with_biases: bool = False) -> TanhRNN:
    """A float32 model with an unconstrained W_hh, zero-padded to ``width`` units if given.

    ``with_biases`` gives a bias-free network zero biases, so that it stacks with networks
    that have them.
    """
    device = lambda x: None if x is None else jnp.asarray(x, jnp.float32)  # noqa: E731
    b_h, b_y = weights.b_h, weights.b_y
    if with_biases:
        b_h = np.zeros(weights.width) if b_h is None else b_h
        b_y = np.zeros(weights.w_hy.shape[0]) if b_y is None else b_y
    model = TanhRNN(
        w_xh=device(weights.w_xh),
        recurrent=DenseRecurrent(device(weights.w_hh)),
        w_hy=device(weights.w_hy),
        unit_mask=jnp.ones(weights.width, bool),
        b_h=device(b_h),
        b_y=device(b_y),
    )
    return model if width is None else pad_model(model, width)
