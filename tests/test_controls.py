"""Matched-norm random controls: the draws, the perturbed stacks, and their batched evaluation."""

import dataclasses

import jax
import numpy as np
import pytest
from scipy.stats import ortho_group

from schurjax.controls import (
    CONTROLS,
    control_rows,
    coupling_support,
    haar_rotations,
    perturbed_recurrent,
    random_perturbations,
)
from schurjax.evaluate import (
    EvalConfig,
    evaluate_recurrent_variants,
    evaluate_weights,
    held_out_set,
)
from schurjax.interventions import SUBSETS, ablate_all, coupling_parts
from schurjax.model import init_model
from schurjax.schur import ordered_schur
from schurjax.tasks import make_task
from schurjax.weights import export_weights

FLIPFLOP = make_task("flipflop")


def _coupled(n, seed):
    """A random matrix with couplings in every block at alpha = 0.9 (a wide spread of moduli)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) / np.sqrt(n) @ np.diag(np.linspace(0.2, 1.5, n))


def test_haar_rotations_are_scipys_draws_from_the_same_stream():
    drawn = haar_rotations(5, 4, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    expected = np.stack([ortho_group.rvs(5, random_state=rng) for _ in range(4)])
    np.testing.assert_allclose(drawn, expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(drawn @ drawn.transpose(0, 2, 1), np.broadcast_to(np.eye(5), (4, 5, 5)), atol=1e-13)


def test_every_family_matches_the_norm_and_keeps_its_pattern_or_spectrum():
    w = _coupled(9, 0)
    coords = ordered_schur(w)
    ablation = ablate_all(w, coords, 0.9)
    parts = coupling_parts(coords, ablation.partition)
    subset = ("T_CR", "T_CC")
    delta_t = parts["T_CR"] + parts["T_CC"]
    support = coupling_support(coords, ablation.partition.r, subset)
    assert np.all(delta_t[~support] == 0) and np.linalg.norm(delta_t) > 0
    drawn = random_perturbations(coords, delta_t, support, 6, np.random.default_rng(1))
    assert set(drawn) == set(CONTROLS)
    for deltas in drawn.values():
        assert deltas.shape == (6, 9, 9)
        np.testing.assert_allclose(np.linalg.norm(deltas, axis=(1, 2)), np.linalg.norm(delta_t), rtol=1e-12)
    # schur: random entries on the removed blocks' pattern, in Schur coordinates
    in_schur = coords.q.T @ drawn["schur"] @ coords.q
    assert np.abs(in_schur[:, ~support]).max() < 1e-12 and np.abs(in_schur[:, support]).min() > 0
    # rotated: ΔT itself in another basis, so the same singular values
    expected = np.linalg.svd(delta_t, compute_uv=False)
    singular_values = np.linalg.svd(drawn["rotated"], compute_uv=False)
    np.testing.assert_allclose(singular_values, np.broadcast_to(expected, (6, 9)), atol=1e-12)


def test_the_stack_is_w_then_w_minus_each_draw_and_w_where_nothing_is_removed():
    w = _coupled(8, 2)
    coords = ordered_schur(w)
    ablation = ablate_all(w, coords, 0.9)
    # a threshold between the removed masses: the smallest ablations count as removing nothing
    config = EvalConfig(random_controls=3, min_removed_mass=float(np.sort(ablation.removed_mass[1:])[2]))
    stack, removing = perturbed_recurrent(w, coords, ablation, config, np.random.default_rng(5))
    assert stack.shape == (1 + 7 * 3 * 3, 8, 8)
    assert removing == [p for p in range(1, 8) if ablation.removed_mass[p] > config.min_removed_mass]
    assert 0 < len(removing) < 7
    np.testing.assert_array_equal(stack[0], w)
    slots = stack[1:].reshape(7, 3, 3, 8, 8)
    rng = np.random.default_rng(5)
    parts = coupling_parts(coords, ablation.partition)
    for position in range(1, 8):
        if position not in removing:
            np.testing.assert_array_equal(slots[position - 1], np.broadcast_to(w, (3, 3, 8, 8)))
            continue
        subset = SUBSETS[position]
        delta_t = sum(parts[name] for name in subset)
        support = coupling_support(coords, ablation.partition.r, subset)
        drawn = random_perturbations(coords, delta_t, support, 3, rng)  # the same stream, in the same order
        np.testing.assert_allclose(slots[position - 1], w - np.stack([drawn[f] for f in CONTROLS]), rtol=0, atol=1e-15)


def test_batched_variants_evaluate_as_separate_networks(key):
    """Networks of two widths (one with biases), each with three replaced recurrent matrices: the same
    FVU as evaluating each variant as a network of its own, to float32 round-off."""
    config = EvalConfig(trials=64)
    data = held_out_set(FLIPFLOP, config)
    keys = jax.random.split(key, 2)
    weights = [export_weights(init_model("dense_default", n, 3, 3, k)) for n, k in zip((6, 9), keys)]
    weights[1] = dataclasses.replace(weights[1], b_h=np.full(9, 0.1), b_y=np.full(3, -0.2))
    rng = np.random.default_rng(0)
    stacks = [w.w_hh + 0.3 * rng.normal(size=(3, w.width, w.width)) for w in weights]
    batched = evaluate_recurrent_variants(weights, iter(stacks), data)
    for w, stack, fvu in zip(weights, stacks, batched):
        alone = evaluate_weights([w.with_recurrent(m) for m in stack], data, config).fvu
        np.testing.assert_allclose(fvu, alone, rtol=2e-5)
    assert len({float(f) for f in batched[0]}) == 3  # distinct matrices, distinct FVUs


def test_control_rows_summarise_paired_differences_of_the_removing_ablations(key):
    task = make_task("sine")
    config = EvalConfig(trials=48, random_controls=5, control_trials=16)
    data = held_out_set(task, config)
    weights = [export_weights(init_model("dense_default", 10, task.n_in, task.n_out, key))]
    w = _coupled(10, 4)
    weights = [weights[0].with_recurrent(w)]
    coords = [ordered_schur(w)]
    ablations = [ablate_all(w, coords[0], 0.9)]
    structured = np.linspace(-0.1, 0.5, len(SUBSETS))
    rows = control_rows(weights, coords, ablations, data, config, structured)
    assert len(rows) == len(SUBSETS) and rows[0] == {}
    # by hand: the same stack, rolled out on the first 16 trials, less the full model's FVU there
    stack, removing = perturbed_recurrent(w, coords[0], ablations[0], config, np.random.default_rng([config.seed, 0]))
    (fvu,) = evaluate_recurrent_variants(weights, [stack], tuple(x[:16] for x in data))
    deltas = (fvu[1:] - fvu[0]).reshape(7, 3, 5)
    for position in range(1, len(SUBSETS)):
        if position not in removing:
            assert rows[position] == {}
            continue
        for family, random in zip(CONTROLS, deltas[position - 1]):
            assert rows[position][f"ctrl_{family}_median"] == pytest.approx(float(np.median(random)), abs=1e-7)
            assert rows[position][f"ctrl_{family}_rank"] == float(np.mean(random <= structured[position]))
            assert rows[position][f"ctrl_{family}_p05"] <= rows[position][f"ctrl_{family}_p95"]


def test_bad_control_trials_are_refused():
    with pytest.raises(ValueError, match="eval.control_trials"):
        EvalConfig(control_trials=1)
