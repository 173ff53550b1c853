"""The batched evaluator: references rolled out once give the same metrics as rolling them out again."""

import dataclasses

import jax
import numpy as np

from schurjax.evaluate import EvalConfig, evaluate_weights, held_out_set
from schurjax.model import init_model
from schurjax.tasks import make_task
from schurjax.weights import dense_model, export_weights


def test_reference_metrics_equal_a_separate_rollout_and_distances_are_relative_mse(key):
    task = make_task("flipflop")
    config = EvalConfig(trials=64, models_per_call=2)
    data = held_out_set(task, config)
    full = [export_weights(init_model("dense_default", 6, task.n_in, task.n_out, k)) for k in jax.random.split(key, 3)]
    # one variant per model: a scaled recurrent matrix; a second one identical to its reference
    variants = [w.with_recurrent(0.5 * w.w_hh) for w in full] + [full[0]]
    evaluation = evaluate_weights(variants, data, config, references=full, reference_index=[0, 1, 2, 0])
    alone = evaluate_weights(full, data, config)
    np.testing.assert_allclose(evaluation.references.fvu, alone.fvu, rtol=1e-6)
    np.testing.assert_allclose(evaluation.references.sign_agreement, alone.sign_agreement, rtol=1e-6)
    np.testing.assert_array_equal(evaluation.references.rollout_distance, 0.0)
    assert evaluation.rollout_distance[3] == 0.0 and evaluation.fvu[3] == evaluation.references.fvu[0]
    assert np.isnan(alone.rollout_distance).all()
    # the distance is Σ||ŷ − ŷ_ref||² / Σ||ŷ_ref − per-channel mean||² over scored entries, here by hand
    inputs, _, mask = data
    outputs, reference = (np.asarray(jax.vmap(dense_model(w))(inputs), np.float64) for w in (variants[1], full[1]))
    scored = np.asarray(mask)
    channel_mean = np.where(scored, reference, 0).sum(axis=(0, 1)) / scored.sum(axis=(0, 1))
    spread = np.where(scored, (reference - channel_mean) ** 2, 0).sum()
    expected = np.where(scored, (outputs - reference) ** 2, 0).sum() / spread
    np.testing.assert_allclose(evaluation.rollout_distance[1], expected, rtol=1e-4)


def test_stacked_weights_are_the_padded_dense_models(key):
    from schurjax.evaluate import stack_weights
    from schurjax.model import stack_models

    keys = jax.random.split(key, 3)
    weights = [export_weights(init_model("dense_default", w, 2, 3, k)) for w, k in zip((5, 8, 6), keys)]
    weights[1] = dataclasses.replace(weights[1], b_h=np.full(8, 0.5), b_y=np.full(3, -0.25))
    expected = stack_models([dense_model(w, 8, with_biases=True) for w in weights])
    actual = stack_weights(weights)
    for e, a in zip(jax.tree.leaves(expected), jax.tree.leaves(actual)):
        assert e.dtype == a.dtype and e.shape == a.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_outputs_without_states_are_the_models_outputs_bit_for_bit(key):
    """The evaluator reads each step out as it goes instead of keeping the states; the arithmetic is
    the model's own, so the outputs (and every reported metric) are unchanged to the last bit."""
    from schurjax.evaluate import rollout_outputs

    inputs = held_out_set(make_task("flipflop"), EvalConfig(trials=32))[0]
    weights = export_weights(init_model("dense_orthogonal", 12, 3, 3, key))
    biased = dataclasses.replace(weights, b_h=np.linspace(-0.3, 0.3, 12), b_y=np.full(3, 0.1))
    for model in (dense_model(weights), dense_model(biased, 16)):  # the second padded to 16 units
        expected = np.asarray(jax.jit(lambda m, x: m(x))(model, inputs))
        actual = np.asarray(jax.jit(rollout_outputs)(model, inputs))
        np.testing.assert_array_equal(actual, expected)
        assert np.abs(expected).max() > 0.1


def test_a_shared_held_out_rollout_gives_the_evaluation_its_references_bit_for_bit(key):
    """A run rolls each full model out once (outputs and state geometry together); the evaluation
    takes those outputs as its references and must report exactly what rolling them out itself gives."""
    from schurjax.evaluate import rollout_outputs
    from schurjax.subspace import held_out_rollouts

    task = make_task("flipflop")
    config = EvalConfig(trials=32, models_per_call=2)
    data = held_out_set(task, config)
    keys = jax.random.split(key, 3)
    full = [export_weights(init_model("dense_orthogonal", w, 3, 3, k)) for w, k in zip((6, 8, 6), keys)]
    rollouts = held_out_rollouts(full, data[0], models_per_call=2)
    assert rollouts.outputs.shape == (3, 32, task.seq_len, 3) and len(rollouts.geometries) == 3
    for w, outputs in zip(full, rollouts.outputs):
        np.testing.assert_array_equal(outputs, np.asarray(rollout_outputs(dense_model(w, 8), data[0])))
    variants = [w.with_recurrent(0.5 * w.w_hh) for w in full]
    given = evaluate_weights(variants, data, config, references=rollouts.outputs, reference_index=[0, 1, 2])
    rolled = evaluate_weights(variants, data, config, references=full, reference_index=[0, 1, 2])
    for field in ("fvu", "sign_agreement", "rollout_distance"):
        np.testing.assert_array_equal(getattr(given, field), getattr(rolled, field))
        np.testing.assert_array_equal(getattr(given.references, field), getattr(rolled.references, field))
