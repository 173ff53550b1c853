"""One jitted, vmapped evaluator for a stacked batch of models on one held-out set (SPEC §7)."""

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Bool, Float, Int
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
    # K matched-norm random perturbations per ablation and control family (0: no controls).
    random_controls: int = 0

    def __post_init__(self):
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 2:
            raise ValueError(
                f"eval.trials must be an integer >= 2 (FVU needs a target variance); got {self.trials!r}"
            )
        if not isinstance(self.models_per_call, int) or self.models_per_call < 1:
            raise ValueError(f"eval.models_per_call must be a positive integer; got {self.models_per_call!r}")
        if not isinstance(self.random_controls, int) or self.random_controls < 0:
            raise ValueError(f"eval.random_controls must be an integer >= 0; got {self.random_controls!r}")


def held_out_set(task: Task, config: EvalConfig):
    """(inputs, targets, mask) of the held-out trials."""
    return task(jax.random.key(config.seed), config.trials)


@eqx.filter_jit
def _outputs(models: TanhRNN, inputs: Float[Array, "B T Nx"], models_per_call: int) -> Float[Array, "M B T Ny"]:
    return jax.lax.map(lambda model: jax.vmap(model)(inputs), models, batch_size=models_per_call)


def _scores(outputs, targets, mask, variation, reference):
    """FVU, sign agreement and (against ``reference``, if given) rollout distance of one network."""
    if reference is None:
        distance = jnp.full((), jnp.nan, outputs.dtype)
    else:
        distance = squared_error(outputs, reference, mask) / target_variation(reference, mask)
    return squared_error(outputs, targets, mask) / variation, sign_agreement(outputs, targets, mask), distance


@eqx.filter_jit
def _evaluate(
    models: TanhRNN,
    reference_index: Int[Array, " M"],
    inputs: Float[Array, "B T Nx"],
    targets: Float[Array, "B T Ny"],
    mask: Bool[Array, "B T Ny"],
    references: Float[Array, "R B T Ny"] | None,
    models_per_call: int,
) -> tuple[Float[Array, " M"], Float[Array, " M"], Float[Array, " M"]]:
    variation = target_variation(targets, mask)

    def one(args):
        model, index = args
        reference = None if references is None else references[index]
        return _scores(jax.vmap(model)(inputs), targets, mask, variation, reference)

    return jax.lax.map(one, (models, reference_index), batch_size=models_per_call)


@eqx.filter_jit
def _reference_scores(outputs: Float[Array, "R B T Ny"], targets, mask):
    variation = target_variation(targets, mask)
    return jax.vmap(lambda o: _scores(o, targets, mask, variation, o))(outputs)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Per-network held-out metrics, in the order the networks were given.

    ``rollout_distance`` is the relative MSE between a network's outputs and its reference
    network's outputs (Σ||ŷ − ŷ_ref||² / Σ||ŷ_ref − mean||² over scored entries): how far an
    ablation moves the function, whatever the task targets.
    """

    fvu: Float[np.ndarray, " M"]
    sign_agreement: Float[np.ndarray, " M"]
    rollout_distance: Float[np.ndarray, " M"]
    # The reference networks' own metrics, from the same rollouts that the distances use.
    references: "Evaluation | None" = None


def evaluate_models(
    models: TanhRNN, data, models_per_call: int, references: TanhRNN | None = None, reference_index=None
) -> Evaluation:
    """Metrics of a stacked batch of models (any parametrisation) on ``(inputs, targets, mask)``.

    ``references`` (stacked) and ``reference_index`` (one per model) name the network whose
    outputs each model's rollout distance is measured against; without them it is NaN. The
    references are rolled out once, and their own metrics come back as ``.references``.
    """
    inputs, targets, mask = data
    host = lambda x: np.asarray(x, np.float64)  # noqa: E731
    if references is None:
        reference_outputs, reference_index, reference_evaluation = None, np.zeros(models.w_xh.shape[0], int), None
    else:
        reference_outputs = _outputs(references, inputs, models_per_call)
        reference_evaluation = Evaluation(*map(host, _reference_scores(reference_outputs, targets, mask)))
    fvu, agreement, distance = _evaluate(
        models, jnp.asarray(reference_index), inputs, targets, mask, reference_outputs, models_per_call
    )
    return Evaluation(host(fvu), host(agreement), host(distance), references=reference_evaluation)


def stack_weights(weights: Sequence[RNNWeights]) -> TanhRNN:
    """Dense float32 models of possibly different widths, padded and stacked into one batch."""
    width = max(w.width for w in weights)
    with_biases = any(w.b_h is not None or w.b_y is not None for w in weights)
    return stack_models([dense_model(w, width, with_biases=with_biases) for w in weights])


def evaluate_weights(
    weights: Sequence[RNNWeights],
    data,
    config: EvalConfig,
    references: Sequence[RNNWeights] | None = None,
    reference_index: Sequence[int] | None = None,
) -> Evaluation:
    """FVU, sign agreement and rollout distance of every network, in one compiled batch."""
    return evaluate_models(
        stack_weights(weights),
        data,
        config.models_per_call,
        None if references is None else stack_weights(references),
        reference_index,
    )
