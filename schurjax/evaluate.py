"""One jitted, vmapped evaluator for a stacked batch of models on one held-out set (SPEC §7)."""

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np

from ._typing import Array, Bool, Float
from .metrics import sign_agreement, squared_error, target_variation
from .model import TanhRNN, stack_models
from .tasks import Task
from .weights import RNNWeights, dense_model


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation settings."""

    trials: int = 1024
    # The held-out set is drawn from its own key, never from a training key.
    seed: int = 20_240_917
    # Models rolled out at once; bounds memory at about models × trials × T × Nh floats.
    models_per_call: int = 16
    # Removed Schur mass at or below this counts as numerically zero (S_ΔT undefined): float32
    # weights carry relative round-off near 1e-7, so smaller "removals" are noise.
    min_removed_mass: float = 1e-6

    def __post_init__(self):
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 2:
            raise ValueError(
                f"eval.trials must be an integer >= 2 (FVU needs a target variance); got {self.trials!r}"
            )
        if not isinstance(self.models_per_call, int) or self.models_per_call < 1:
            raise ValueError(f"eval.models_per_call must be a positive integer; got {self.models_per_call!r}")


def held_out_set(task: Task, config: EvalConfig):
    """(inputs, targets, mask) of the held-out trials."""
    return task(jax.random.key(config.seed), config.trials)


@eqx.filter_jit
def _evaluate(
    models: TanhRNN,
    inputs: Float[Array, "B T Nx"],
    targets: Float[Array, "B T Ny"],
    mask: Bool[Array, "B T Ny"],
    models_per_call: int,
) -> tuple[Float[Array, " M"], Float[Array, " M"]]:
    variation = target_variation(targets, mask)

    def one(model: TanhRNN):
        outputs = jax.vmap(model)(inputs)
        return squared_error(outputs, targets, mask) / variation, sign_agreement(outputs, targets, mask)

    return jax.lax.map(one, models, batch_size=models_per_call)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Per-model held-out metrics, in the order the weights were given."""

    fvu: Float[np.ndarray, " M"]
    sign_agreement: Float[np.ndarray, " M"]


def evaluate_models(models: TanhRNN, data, models_per_call: int) -> Evaluation:
    """Metrics of a stacked batch of models (any parametrisation) on ``(inputs, targets, mask)``."""
    fvu, agreement = _evaluate(models, *data, models_per_call)
    return Evaluation(fvu=np.asarray(fvu, np.float64), sign_agreement=np.asarray(agreement, np.float64))


def evaluate_weights(
    weights: Sequence[RNNWeights], task: Task, config: EvalConfig, data=None
) -> Evaluation:
    """FVU and sign agreement of every network on the held-out set, in one compiled batch."""
    width = max(w.width for w in weights)
    stacked = stack_models([dense_model(w, width) for w in weights])
    data = held_out_set(task, config) if data is None else data
    return evaluate_models(stacked, data, config.models_per_call)
