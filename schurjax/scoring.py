"""The evaluation stage of a run: every model and its 7 ablations scored on one held-out set, and
the result columns that come of it.

W̃(∅) is W itself: the full models are the references, rolled out once (a run shares that
rollout with the subspace diagnostics and the fixed points); only the 7 nonempty ablations of each
model are evaluated against them. ΔFVU and S_ΔT = ΔFVU / removed Schur mass
follow from those metrics and the masses of the Schur stage.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from ._typing import Float
from .columns import declare
from .evaluate import EvalConfig, Evaluation, evaluate_weights
from .interventions import SUBSETS, AblationSet
from .tasks import headline_metric
from .weights import RNNWeights

EVALUATION_COLUMNS = declare(
    fvu=float, delta_fvu=float, s_delta_t=float, s_delta_t_note=str, replay_accuracy=float, rollout_distance=float
)


@dataclasses.dataclass(frozen=True)
class Scores:
    """Held-out metrics of every model × subset, model by model in SUBSETS order."""

    evaluation: Evaluation
    # FVU minus the FVU of the row's full model (exactly 0 for the full models)
    delta_fvu: Float[np.ndarray, " R"]

    @property
    def full_fvu(self) -> Float[np.ndarray, " M"]:
        return self.evaluation.fvu[:: len(SUBSETS)]


def reports_replay_accuracy(task: str) -> bool:
    """Whether ``task``'s rows carry replay accuracy: the tasks whose headline metric it is (copy)."""
    return headline_metric(task) == "replay_accuracy"


def sensitivity(delta_fvu: float, removed_mass: float, min_removed_mass: float) -> tuple[float | None, str]:
    """S_ΔT = ΔFVU / removed mass, or (None, reason) where the removed mass is numerically zero."""
    if removed_mass <= min_removed_mass:
        return None, f"removed Schur mass {removed_mass:.3g} <= {min_removed_mass:g} (numerically zero)"
    return delta_fvu / removed_mass, ""


def _per_subset(evaluation: Evaluation) -> Evaluation:
    """Interleave the references' metrics (subset ∅) with those of their 7 ablations, model by model."""
    def merge(full, ablated):
        return np.concatenate([full[:, None], ablated.reshape(len(full), -1)], axis=1).ravel()

    full = evaluation.references
    fields = ("fvu", "sign_agreement", "rollout_distance")
    return Evaluation(*(merge(getattr(full, f), getattr(evaluation, f)) for f in fields))


def score_ablations(
    weights: Sequence[RNNWeights],
    ablations: Sequence[AblationSet],
    data,
    config: EvalConfig,
    full_outputs: Float[np.ndarray, "M B T Ny"] | None = None,
) -> Scores:
    """Every model and its 7 nonempty ablations on ``data`` = (inputs, targets, mask), in one batch.

    ``full_outputs``: the models' own outputs on these inputs, where the caller has rolled them
    out already (:func:`~schurjax.subspace.held_out_rollouts`); otherwise they are rolled out here.
    """
    ablated = [w.with_recurrent(w_tilde) for w, ablation in zip(weights, ablations) for w_tilde in ablation.w_tilde[1:]]
    evaluation = _per_subset(
        evaluate_weights(
            ablated,
            data,
            config,
            references=list(weights) if full_outputs is None else full_outputs,
            reference_index=np.repeat(np.arange(len(weights)), len(SUBSETS) - 1),
        )
    )
    return Scores(evaluation, evaluation.fvu - np.repeat(evaluation.fvu[:: len(SUBSETS)], len(SUBSETS)))


def _s_delta_t(subset: tuple[str, ...], delta_fvu: float, removed: float, has_targets: bool, min_removed_mass: float):
    if not subset:
        return None, "full model"
    if not has_targets:
        return None, "no targets given"
    return sensitivity(delta_fvu, removed, min_removed_mass)


def evaluation_columns(
    scores: Scores, ablations: Sequence[AblationSet], *, task: str, has_targets: bool, min_removed_mass: float
) -> list[dict]:
    """The :data:`EVALUATION_COLUMNS` of every row; without real targets (user inputs) the
    FVU-based ones stay empty and ``rollout_distance`` carries the comparison."""
    rows = []
    evaluation = scores.evaluation
    for index, ablation in enumerate(ablations):
        for position, subset in enumerate(SUBSETS):
            flat = index * len(SUBSETS) + position
            delta = float(scores.delta_fvu[flat])
            s_delta_t, note = _s_delta_t(
                subset, delta, float(ablation.removed_mass[position]), has_targets, min_removed_mass
            )
            rows.append(
                dict(
                    fvu=float(evaluation.fvu[flat]) if has_targets else None,
                    delta_fvu=delta if has_targets else None,
                    s_delta_t=s_delta_t,
                    s_delta_t_note=note,
                    replay_accuracy=float(evaluation.sign_agreement[flat]) if reports_replay_accuracy(task) else None,
                    rollout_distance=float(evaluation.rollout_distance[flat]),
                )
            )
    return rows
