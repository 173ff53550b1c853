import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.model import init_model
from schurjax.tasks import make_task
from schurjax.train import TrainConfig, train_models
from schurjax.weights import export_weights

SINE = make_task("sine")
FLIPFLOP = make_task("flipflop")
SHORT = TrainConfig(steps=40, batch_size=8, lr=1e-2, chunk_steps=16)


def _models(key, specs):
    return [init_model(c, w, SINE.n_in, SINE.n_out, jax.random.fold_in(key, i)) for i, (c, w) in enumerate(specs)]


def test_chunks_cover_the_steps_exactly():
    assert TrainConfig(steps=40, chunk_steps=16).chunk_length == 14  # 3 chunks of 14 >= 40
    assert TrainConfig(steps=3840, chunk_steps=256).chunk_length == 256


def test_a_model_trains_bitwise_alike_beside_models_of_another_width(key):
    """A width-8 model trained beside a width-12 one ends exactly where it ends alone: each width
    trains in a program of its own."""
    small, wide = _models(key, [("dense_default", 8), ("dense_orthogonal", 12)])
    data_keys = list(jax.random.split(jax.random.fold_in(key, 99), 2))
    alone = train_models(SINE, SHORT, [small], data_keys[:1], progress=False)
    together = train_models(SINE, SHORT, [small, wide], data_keys, progress=False)
    a, b = export_weights(alone.models[0]), export_weights(together.models[0])
    assert b.w_hh.shape == (8, 8)
    change = np.abs(a.w_hh - np.asarray(small.recurrent.weight)).max()
    assert change > 1e-2  # it did train
    for name in ("w_xh", "w_hh", "w_hy"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name))
    assert together.final_loss[0] == alone.final_loss[0]


def test_training_reduces_the_loss(key):
    models = [init_model("dense_orthogonal", 32, FLIPFLOP.n_in, FLIPFLOP.n_out, key)]
    config = TrainConfig(steps=300, batch_size=32, lr=1e-2, chunk_steps=100)
    before = train_models(FLIPFLOP, TrainConfig(steps=1, batch_size=32, lr=1e-12), models, [key], progress=False)
    after = train_models(FLIPFLOP, config, models, [key], progress=False)
    # Untrained, the loss is about the target variance (~1); 300 steps reach ~1e-3 here.
    assert after.final_loss[0] < 0.05 * before.final_loss[0]


def test_cayley_iterates_stay_normal(key):
    (model,) = _models(key, [("cayley", 12)])
    result = train_models(SINE, SHORT, [model], [key], progress=False)
    w = export_weights(result.models[0]).w_hh
    w0 = np.asarray(model.recurrent.matrix(), np.float64)
    assert np.abs(w - w0).max() > 1e-3  # it did train
    commutator = np.linalg.norm(w @ w.T - w.T @ w) / np.linalg.norm(w) ** 2
    assert commutator < 1e-6  # float32 round-off of O D Oᵀ; a generic matrix sits near 1


def test_a_diverging_model_is_frozen_flagged_and_isolated(key):
    good, bad = _models(key, [("dense_default", 8), ("dense_default", 8)])
    bad = eqx.tree_at(lambda m: m.w_xh, bad, bad.w_xh.at[0, 0].set(jnp.nan))
    data_keys = list(jax.random.split(key, 2))
    together = train_models(SINE, SHORT, [good, bad], data_keys, progress=False)
    alone = train_models(SINE, SHORT, [good], data_keys[:1], progress=False)
    assert list(together.diverged) == [False, True]
    # frozen at its last finite (here: initial) recurrent weights
    np.testing.assert_array_equal(np.asarray(together.models[1].recurrent.weight), np.asarray(bad.recurrent.weight))
    # The healthy model trains as if alone (batch composition only reorders float32 sums).
    np.testing.assert_allclose(
        np.asarray(together.models[0].recurrent.weight), np.asarray(alone.models[0].recurrent.weight), atol=1e-6
    )


def test_mismatched_keys_are_refused(key):
    with pytest.raises(ValueError, match="2 models but 1 data keys"):
        train_models(SINE, SHORT, _models(key, [("dense_default", 4)] * 2), [key], progress=False)


@pytest.mark.parametrize(
    "field, value", [("steps", 0), ("batch_size", 0), ("chunk_steps", -1), ("lr", 0.0), ("lr", float("nan"))]
)
def test_bad_train_config(field, value):
    with pytest.raises(ValueError, match=f"train.{field}"):
        TrainConfig(**{field: value})


def test_until_solved_freezes_models_as_they_meet_the_criterion(key):
    models = _models(key, [("dense_default", 6), ("dense_default", 6)])
    config = TrainConfig(steps=40, batch_size=8, lr=1e-2, chunk_steps=10, until_solved=True)
    calls = []

    def first_solves_after_two_chunks(stacked):
        calls.append(1)
        return np.array([len(calls) >= 2, False])

    result = train_models(SINE, config, models, list(jax.random.split(key, 2)), progress=False,
                          stop_when=first_solves_after_two_chunks)
    assert list(result.steps) == [20, 40] and list(result.stopped) == [True, False]
    alone = train_models(SINE, TrainConfig(steps=20, batch_size=8, lr=1e-2, chunk_steps=10), models[:1],
                         list(jax.random.split(key, 2))[:1], progress=False)
    np.testing.assert_allclose(
        np.asarray(result.models[0].recurrent.weight), np.asarray(alone.models[0].recurrent.weight), atol=1e-6
    )


def test_until_solved_needs_a_criterion(key):
    config = TrainConfig(steps=4, until_solved=True)
    with pytest.raises(ValueError, match="until_solved"):
        train_models(SINE, config, _models(key, [("dense_default", 4)]), [key], progress=False)
