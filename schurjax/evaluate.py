"""Held-out evaluation, outputs only: a stacked batch of networks, each rolled out once
(:func:`evaluate_weights`), and many recurrent matrices of each network in one call per network
(:func:`evaluate_recurrent_variants`, for the random controls)."""

import dataclasses
import functools
import operator
from collections.abc import Iterable, Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Bool, Float, Int
from .constructions import DenseRecurrent
from .devices import map_models, on_cpu, pad_models
from .metrics import sign_agreement, squared_error, target_variation
from .model import _UNROLL, TanhRNN
from .tasks import Task
from .weights import RNNWeights, dense_model


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation settings."""

    trials: int = 1024
    # The held-out set is drawn from its own key, never from a training key.
    seed: int = 20_240_917
    # Models rolled out at once per device; bounds memory at about models × trials × T × Nh
    # floats. "auto": see default_models_per_call.
    models_per_call: int | Literal["auto"] = "auto"
    # Removed Schur mass at or below this counts as numerically zero (S_ΔT undefined): float32
    # weights carry relative round-off near 1e-7, so smaller "removals" are noise.
    min_removed_mass: float = 1e-6
    # K matched-norm random perturbations per ablation and control family (0: no controls).
    random_controls: int = 20
    # The random controls are rolled out on the first this many held-out trials (all of them if
    # there are fewer); docs/RANDOM_CONTROLS.md gives the Monte Carlo error this adds.
    control_trials: int = 128

    def __post_init__(self):
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 2:
            raise ValueError(
                f"eval.trials must be an integer >= 2 (FVU needs a target variance); got {self.trials!r}"
            )
        per_call = self.models_per_call
        if per_call != "auto" and (isinstance(per_call, bool) or not isinstance(per_call, int) or per_call < 1):
            raise ValueError(f"eval.models_per_call must be a positive integer or auto; got {self.models_per_call!r}")
        if not isinstance(self.random_controls, int) or self.random_controls < 0:
            raise ValueError(f"eval.random_controls must be an integer >= 0; got {self.random_controls!r}")
        if isinstance(self.control_trials, bool) or not isinstance(self.control_trials, int) or self.control_trials < 2:
            raise ValueError(f"eval.control_trials must be an integer >= 2; got {self.control_trials!r}")


def held_out_set(task: Task, config: EvalConfig):
    """(inputs, targets, mask) of the held-out trials."""
    return task(jax.random.key(config.seed), config.trials)


def default_models_per_call() -> int:
    """Networks one device rolls out at once: 1 on CPU, 64 on GPU and TPU.

    On CPU a single network's 1024-trial rollout already runs its matmuls near the core's
    small-matmul peak, and each further network only adds ~6 MB of states that push the working
    set out of cache (measured: 1 network at a time is 1.9× faster than 16). Accelerators need
    many networks at once to fill the chip.
    """
    return 1 if on_cpu() else 64


def variant_trials_per_call() -> int:
    """Trials per network in :func:`evaluate_recurrent_variants`' calls: 512 on CPU, 1024 elsewhere.

    On CPU, perturbed networks rolled out 4 at a time on 128 trials each ran ~18 % faster than 8
    at a time (the 13 472 random controls of the default 32-seed run: 3.1 vs 3.8 s, six paired
    runs with compiled programs, the same FVUs to the last bit).
    """
    return 512 if on_cpu() else 1024


def resolve_models_per_call(models_per_call: int | Literal["auto"]) -> int:
    return default_models_per_call() if models_per_call == "auto" else models_per_call


def rollout_outputs(model: TanhRNN, inputs: Float[Array, "B T Nx"]) -> Float[Array, "B T Ny"]:
    """``model(inputs)`` without its states: each step is read out as soon as it is computed.

    Evaluation needs the outputs only, so the [B, T, Nh] states that ``model(inputs)`` keeps for
    training's backward pass are never stored: Nh / Ny times less memory per network (21× for a
    flip-flop network of 64 units). The arithmetic is the model's own, step for step.
    """
    drive = inputs @ model.w_xh.T
    if model.b_h is not None:
        drive = drive + model.b_h[None, None, :]
    w_t, unit_mask = model.recurrent.matrix().T, model.unit_mask.astype(drive.dtype)

    def step(t, carry):
        state, read = carry
        drive_t = jax.lax.dynamic_index_in_dim(drive, t, axis=1, keepdims=False)
        state = jnp.tanh(drive_t + state @ w_t) * unit_mask[None, :]
        return state, jax.lax.dynamic_update_index_in_dim(read, model.readout(state), t, axis=1)

    start = (jnp.zeros_like(drive[:, 0]), jnp.zeros_like(drive, shape=(*drive.shape[:2], model.w_hy.shape[0])))
    return jax.lax.fori_loop(0, drive.shape[1], step, start, unroll=_UNROLL)[1]


@eqx.filter_jit
def _outputs(models: TanhRNN, inputs: Float[Array, "B T Nx"], models_per_call: int) -> Float[Array, "M B T Ny"]:
    return map_models(rollout_outputs, models_per_call, n_shared=1)(models, inputs)


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
    def one(model, index, inputs, targets, mask, references):
        reference = None if references is None else references[index]
        return _scores(rollout_outputs(model, inputs), targets, mask, target_variation(targets, mask), reference)

    shared = (inputs, targets, mask, references)
    return map_models(one, models_per_call, n_shared=len(shared))(models, reference_index, *shared)


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
    models: TanhRNN,
    data,
    models_per_call: int | Literal["auto"] = "auto",
    references: TanhRNN | Float[np.ndarray, "R B T Ny"] | None = None,
    reference_index=None,
) -> Evaluation:
    """Metrics of a stacked batch of models (any parametrisation) on ``(inputs, targets, mask)``.

    ``references`` (stacked networks, or their outputs on these inputs where the caller has
    rolled them out already) and ``reference_index`` (one per model) name the network whose
    outputs each model's rollout distance is measured against; without them it is NaN. The
    references are rolled out once, and their own metrics come back as ``.references``.
    """
    inputs, targets, mask = data
    models_per_call = resolve_models_per_call(models_per_call)
    count = models.w_xh.shape[0]
    # Results split across devices are read on the host (see map_models).
    host = lambda x, n=count: np.asarray(x, np.float64)[:n]  # noqa: E731
    if references is None:
        reference_outputs, reference_index, reference_evaluation = None, np.zeros(count, int), None
    else:
        # Every device needs every reference's outputs; gathered through the host, not by a
        # collective.
        outputs = _reference_outputs(references, inputs, models_per_call)
        # padded as the networks are (the last one repeated), so the programs keep their shapes
        reference_outputs = pad_models(jnp.asarray(outputs), len(outputs), models_per_call)
        scores = _reference_scores(reference_outputs, targets, mask)
        reference_evaluation = Evaluation(*(host(x, len(outputs)) for x in scores))
    fvu, agreement, distance = _evaluate(
        pad_models(models, count, models_per_call),
        pad_models(jnp.asarray(reference_index), count, models_per_call),
        inputs,
        targets,
        mask,
        reference_outputs,
        models_per_call,
    )
    return Evaluation(host(fvu), host(agreement), host(distance), references=reference_evaluation)


def _reference_outputs(
    references: TanhRNN | Float[np.ndarray, "R B T Ny"], inputs: Float[Array, "B T Nx"], models_per_call: int
) -> Float[np.ndarray, "R B T Ny"]:
    if not isinstance(references, TanhRNN):
        return np.asarray(references)
    count = references.w_xh.shape[0]
    return np.asarray(_outputs(pad_models(references, count, models_per_call), inputs, models_per_call))[:count]


def stack_weights(weights: Sequence[RNNWeights]) -> TanhRNN:
    """Dense float32 models of possibly different widths, padded and stacked into one batch.

    The same models as stacking :func:`~schurjax.weights.dense_model` of each, built in numpy and
    moved to the device once: per-network device calls cost ~2 ms each, seconds for a few
    thousand ablated networks.
    """
    return jax.tree.map(jnp.asarray, _host_stack(weights))


def _host_stack(weights: Sequence[RNNWeights]) -> TanhRNN:
    """:func:`stack_weights` with its leaves still numpy arrays on the host."""
    width = max(w.width for w in weights)
    with_biases = any(w.b_h is not None or w.b_y is not None for w in weights)

    def stacked(arrays, shape):
        out = np.zeros((len(arrays), *shape), np.float32)
        for slot, array in zip(out, arrays):
            if array is not None:
                slot[tuple(slice(0, n) for n in array.shape)] = array
        return out

    n_in, n_out = weights[0].w_xh.shape[1], weights[0].w_hy.shape[0]
    stacks = [
        stacked([w.w_xh for w in weights], (width, n_in)),
        stacked([w.w_hh for w in weights], (width, width)),
        stacked([w.w_hy for w in weights], (n_out, width)),
        np.arange(width)[None, :] < np.array([w.width for w in weights])[:, None],
    ]
    if with_biases:
        stacks += [stacked([w.b_h for w in weights], (width,)), stacked([w.b_y for w in weights], (n_out,))]
    # One network's module, its leaves swapped for the stacks (a stacked module, as stack_models
    # would build, not a call of the constructor with batched shapes).
    template = dense_model(weights[0], width, with_biases=with_biases)
    return jax.tree.unflatten(jax.tree.structure(template), stacks)


def evaluate_weights(
    weights: Sequence[RNNWeights],
    data,
    config: EvalConfig,
    references: Sequence[RNNWeights] | Float[np.ndarray, "R B T Ny"] | None = None,
    reference_index: Sequence[int] | Int[np.ndarray, " M"] | None = None,
) -> Evaluation:
    """FVU, sign agreement and rollout distance of every network, in one compiled batch
    (``references``: networks, or their outputs on ``data``'s inputs; see :func:`evaluate_models`)."""
    if references is not None and not isinstance(references, np.ndarray):
        references = stack_weights(references)
    return evaluate_models(stack_weights(weights), data, config.models_per_call, references, reference_index)


# jax.jit, not eqx.filter_jit: the latter waits for every call's result, and the per-network calls
# must be dispatched asynchronously for the devices to run at once and for the host to draw the
# next network's variants meanwhile.
@functools.partial(jax.jit, static_argnames="variants_per_call")
def _variant_fvu(
    base: TanhRNN,
    w_hh: Float[Array, "V Nh Nh"],
    inputs: Float[Array, "B T Nx"],
    targets: Float[Array, "B T Ny"],
    mask: Bool[Array, "B T Ny"],
    variants_per_call: int,
) -> Float[Array, " V"]:
    variation = target_variation(targets, mask)

    def one(matrix):
        model = eqx.tree_at(lambda m: m.recurrent, base, DenseRecurrent(matrix))
        return squared_error(rollout_outputs(model, inputs), targets, mask) / variation

    return jax.lax.map(one, w_hh, batch_size=variants_per_call)


def evaluate_recurrent_variants(
    weights: Sequence[RNNWeights],
    variants: Iterable[Float[np.ndarray, "V Nh Nh"]],
    data,
    models_per_call: int | Literal["auto"] = "auto",
) -> list[Float[np.ndarray, " V"]]:
    """Held-out FVU of network ``weights[i]`` with its W_hh replaced by each matrix of ``variants[i]``.

    Every network's variants are one call on one device, the devices taking networks in turn,
    and each call is dispatched as soon as its variants are drawn, so the host draws the next
    network's while the devices roll out the last. Networks are zero-padded to the widest, so that
    stacks of one size share one program per device. A device rolls out as many trials at once
    as ``models_per_call`` networks on :func:`variant_trials_per_call` trials each.
    """
    per_call = max(1, resolve_models_per_call(models_per_call) * variant_trials_per_call() // data[0].shape[0])
    # Everything is placed from the host: an eager device op would queue behind the rollouts
    # already dispatched to its device and hold up the host until they finish.
    networks, devices = _host_stack(weights), jax.devices()
    width = networks.w_xh.shape[1]
    placed = [jax.device_put(tuple(data), device) for device in devices]
    results = []
    for index, (network, stack) in enumerate(zip(weights, variants, strict=True)):
        padded = np.zeros((len(stack), width, width), np.float32)
        padded[:, : network.width, : network.width] = stack
        device = devices[index % len(devices)]
        base = jax.device_put(jax.tree.map(operator.itemgetter(index), networks), device)
        data_there = placed[index % len(devices)]
        results.append(_variant_fvu(base, jax.device_put(padded, device), *data_there, variants_per_call=per_call))
    return [np.asarray(fvu, np.float64) for fvu in results]
