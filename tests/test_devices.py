"""Several CPU devices: models split across them train bitwise and evaluate to round-off as on one device."""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.devices import map_models, pad_models, use_cpu_cores
from schurjax.model import init_model
from schurjax.tasks import make_task
from schurjax.train import TrainConfig, train_models

# Trains 3 models (widths 8, 6, 8: two programs, the width-8 one an odd count, so its groups
# need a padded copy) for 2 chunks, writing a checkpoint per program after each; optionally stops
# after the first chunk as a killed run would, and resumes from whatever checkpoint the directory
# holds. Prints losses and weights.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from schurjax.devices import use_cpu_cores
    devices, checkpoint, stop_early = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "stop"
    use_cpu_cores(devices)
    import jax, numpy as np
    from schurjax.evaluate import evaluate_weights, EvalConfig, held_out_set
    from schurjax.model import init_model
    from schurjax.tasks import make_task
    from schurjax.train import TrainConfig, train_models, save_checkpoint
    import schurjax.train as train

    if stop_early:  # the first checkpoint written ends the process, as a kill would
        def save_and_stop(path, chunks_done, state):
            save_checkpoint(path, chunks_done, state)
            sys.exit(0)
        train.save_checkpoint = save_and_stop
    task = make_task("flipflop")
    keys = jax.random.split(jax.random.key(0), 6)
    models = [init_model("dense_orthogonal", w, 3, 3, k) for w, k in zip((8, 6, 8), keys[:3])]
    result = train_models(
        task, TrainConfig(steps=40, batch_size=16, chunk_steps=20), models, list(keys[3:]),
        progress=False, checkpoint_path=lambda group: checkpoint.with_name(f"{checkpoint.stem}_{group[0]}.eqx"),
    )
    from schurjax.weights import export_weights
    weights = [export_weights(m) for m in result.models]
    fvu = evaluate_weights(weights, held_out_set(task, EvalConfig(trials=32)), EvalConfig(trials=32)).fvu
    print(json.dumps({
        "devices": jax.device_count(),
        "loss": result.final_loss.tolist(),
        "steps": result.steps.tolist(),
        "w_hh": [w.w_hh.tolist() for w in weights],
        "fvu": fvu.tolist(),
    }))
    """
)


def _run(tmp_path, devices: int, checkpoint: str, mode: str = "run") -> dict | None:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(devices), str(tmp_path / checkpoint), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.splitlines()[-1]) if mode == "run" else None


def test_two_cpu_devices_train_and_evaluate_like_one_and_resume_across_device_counts(tmp_path):
    one = _run(tmp_path, 1, "one.eqx")
    two = _run(tmp_path, 2, "two.eqx")
    assert (one["devices"], two["devices"]) == (1, 2)
    assert one["steps"] == two["steps"] == [40, 40, 40]
    # Training runs the same single-device program per group of models on any device count:
    # bitwise equal.
    assert two["loss"] == one["loss"]
    assert two["w_hh"] == one["w_hh"]
    # The evaluator's program is partitioned across the mesh, so it is compiled, and rounds,
    # differently on 1 and 2 devices: float32 round-off, far below the FVU's scale.
    np.testing.assert_allclose(two["fvu"], one["fvu"], rtol=1e-5)

    # A run stopped after its first chunk on 2 devices resumes on 1 and ends where uninterrupted
    # runs end: the checkpoint holds the 3 real models, not the padded copy.
    _run(tmp_path, 2, "moved.eqx", mode="stop")
    assert (tmp_path / "moved_0.eqx").exists()
    resumed = _run(tmp_path, 1, "moved.eqx")
    assert resumed["steps"] == [40, 40, 40]
    assert resumed["loss"] == one["loss"] and resumed["w_hh"] == one["w_hh"]


def test_map_models_matches_vmap_with_shared_arguments(key):
    x = jax.random.normal(key, (5, 4, 3))
    shared = jnp.arange(3.0)

    def fn(one, shared):
        return (one @ shared).sum(), one.max()

    expected = jax.vmap(fn, in_axes=(0, None))(x, shared)
    for models_per_call in (None, 1, 2):
        padded = pad_models(x, 5)
        actual = jax.jit(map_models(fn, models_per_call, n_shared=1))(padded, shared)
        for e, a in zip(expected, actual):
            np.testing.assert_allclose(np.asarray(a)[:5], np.asarray(e), rtol=1e-6)


@pytest.mark.parametrize("count", [0, -2, True])
def test_a_bad_cpu_device_count_is_refused(count):
    with pytest.raises(ValueError, match="cpu_devices"):
        use_cpu_cores(count)


@pytest.mark.parametrize("group", [0, -1, True])
def test_a_bad_group_size_is_refused(key, group):
    task = make_task("flipflop")
    with pytest.raises(ValueError, match="models_per_group"):
        model = init_model("dense_default", 4, 3, 3, key)
        train_models(task, TrainConfig(steps=1), [model], [key], models_per_group=group)
