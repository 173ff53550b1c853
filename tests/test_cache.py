"""Safe writes and damaged files: atomic writes never collide, and a damaged model-cache entry or
training checkpoint is reported and retrained rather than crashing the run or being trusted."""

import json
import logging
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from schurjax.atomic import atomic_write
from schurjax.cache import CachedModel, ModelCache, training_key
from schurjax.evaluate import EvalConfig
from schurjax.model import init_model
from schurjax.pipeline import RunSpec, model_training_key, run
from schurjax.results import save_weights
from schurjax.subspace import DiagnosticsConfig
from schurjax.tasks import make_task
from schurjax.train import (
    TrainConfig,
    load_checkpoint,
    make_train,
    save_checkpoint,
    train_models,
)
from schurjax.weights import RNNWeights, export_weights

TINY = TrainConfig(steps=8, batch_size=8, chunk_steps=4)
TINY_RUN = RunSpec(
    task="flipflop", seeds=(0,), widths=(4,), train=TINY, eval=EvalConfig(trials=16, random_controls=0),
    diagnostics=DiagnosticsConfig(fixed_points=False),
)


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_two_open_writers_of_one_target_each_leave_a_complete_file(tmp_path):
    # Writer b starts while a is still writing: with a shared temporary name b would truncate a's
    # half-written file and a's rename would publish b's partial content.
    target = tmp_path / "table.csv"
    with atomic_write(target, "w") as a:
        a.write("a" * 1000)
        with atomic_write(target, "w") as b:
            b.write("b" * 500)
        assert target.read_text() == "b" * 500
        a.write("a" * 1000)
    assert target.read_text() == "a" * 2000
    assert _leftovers(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import sys
    from schurjax.atomic import atomic_write
    target, letter = sys.argv[1], sys.argv[2]
    for _ in range(30):
        with atomic_write(target) as handle:
            for _ in range(64):
                handle.write(letter.encode() * 4096)
    """
)


def test_concurrent_writer_processes_leave_one_complete_file_and_no_temporaries(tmp_path):
    target = tmp_path / "weights.npz"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(target), letter], stderr=subprocess.PIPE)
        for letter in "xy"
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr.decode()
    content = target.read_bytes()
    assert content in (b"x" * 64 * 4096, b"y" * 64 * 4096)
    assert _leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_write(target, "w") as handle:
        handle.write("new, half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def _entry(cache: ModelCache):
    """The one entry of ``cache``: its header path and the weights file it names."""
    (header,) = cache.directory.glob("*.json")
    return header, cache.directory / json.loads(header.read_text()).get("weights", header.with_suffix(".npz").name)


def test_a_truncated_cached_model_is_reported_retrained_and_gives_the_same_results(tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    run(TINY_RUN, tmp_path / "first", progress=False, cache_dir=cache_dir)
    header, weights = _entry(ModelCache(cache_dir))
    weights.write_bytes(weights.read_bytes()[:100])

    caplog.set_level(logging.INFO, logger="schurjax")
    run(TINY_RUN, tmp_path / "second", progress=False, cache_dir=cache_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(header.name in w and "damaged" in w and "retrained" in w for w in warnings), warnings
    assert not any("reusing" in r.getMessage() for r in caplog.records)  # trained again, not loaded
    assert (tmp_path / "first" / "results.csv").read_bytes() == (tmp_path / "second" / "results.csv").read_bytes()
    # the retrained model replaced the entry: a third run reuses it, without a warning
    caplog.clear()
    run(TINY_RUN, tmp_path / "third", progress=False, cache_dir=cache_dir)
    assert any("reusing 1 trained model(s)" in r.getMessage() for r in caplog.records)
    assert not any(r.name == "schurjax.cache" for r in caplog.records)


def _weights(seed: int) -> RNNWeights:
    rng = np.random.default_rng(seed)
    return RNNWeights(w_xh=rng.normal(size=(4, 3)), w_hh=rng.normal(size=(4, 4)), w_hy=rng.normal(size=(3, 4)))


KEY = training_key(task="flipflop", construction="dense_orthogonal", width=4, seed=0)


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def _damages(header, weights):
    """Ways an entry can be found damaged, each applied to a fresh entry."""
    return {
        "truncated weights": lambda: weights.write_bytes(weights.read_bytes()[:-10]),
        "a changed byte": lambda: weights.write_bytes(_flip_middle_byte(weights.read_bytes())),
        "missing weights": lambda: weights.unlink(),
        "an unreadable header": lambda: header.write_text('{"key": '),
    }


@pytest.mark.parametrize("damage", ["truncated weights", "a changed byte", "missing weights", "an unreadable header"])
def test_every_kind_of_damaged_entry_is_a_reported_miss(tmp_path, caplog, damage):
    cache = ModelCache(tmp_path)
    cache.put(KEY, CachedModel(_weights(0), train_loss=0.5, train_steps=8, diverged=False))
    assert cache.get(KEY) is not None
    _damages(*_entry(cache))[damage]()
    assert cache.get(KEY) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert cache.get(KEY) is None and len(caplog.records) == 1  # named once per cache, not per lookup
    cache.put(KEY, CachedModel(_weights(1), train_loss=0.25, train_steps=8, diverged=False))
    np.testing.assert_array_equal(ModelCache(tmp_path).get(KEY).weights.w_hh, _weights(1).w_hh)


def _legacy_entry(cache: ModelCache, key: dict, weights: RNNWeights) -> None:
    """An entry as the cache wrote it before checksums: ``<stem>.npz`` and a header without one."""
    cache.put(key, CachedModel(weights, train_loss=0.5, train_steps=8, diverged=False))
    header_path, weights_path = _entry(cache)
    header = json.loads(header_path.read_text())
    del header["weights"], header["sha256"]
    header_path.write_text(json.dumps(header, indent=1))
    weights_path.unlink()
    save_weights(header_path.with_suffix(".npz"), weights)


def test_entries_written_before_checksums_are_read_and_damaged_ones_retrained(tmp_path, caplog):
    cache = ModelCache(tmp_path)
    _legacy_entry(cache, KEY, _weights(0))
    hit = cache.get(KEY)
    np.testing.assert_array_equal(hit.weights.w_hh, _weights(0).w_hh)
    assert hit.train_steps == 8 and caplog.records == []
    legacy = tmp_path / next(p.name for p in tmp_path.glob("*.npz"))
    legacy.write_bytes(legacy.read_bytes()[:50])
    assert cache.get(KEY) is None
    assert legacy.name.removesuffix(".npz") in caplog.records[0].getMessage()


def test_pipeline_cache_entries_are_found_under_their_previous_key(tmp_path):
    """The checksum lives beside the key, not in it: entries written before it stay valid."""
    header_name = ModelCache(tmp_path)._paths(model_training_key(TINY_RUN, "dense_orthogonal", 4, 0))[1].name
    assert header_name.startswith("flipflop_dense_orthogonal_w4_s0_") and header_name.endswith(".json")


def _state():
    init, _ = make_train(make_task("flipflop"), TINY)
    return init(init_model("dense_orthogonal", 4, 3, 3, jax.random.key(0)))


def test_a_damaged_checkpoint_is_reported_and_training_starts_over(tmp_path, caplog):
    path, state = tmp_path / "group.eqx", _state()
    save_checkpoint(path, 1, state)
    chunks, loaded = load_checkpoint(path, state)
    assert chunks == 1 and caplog.records == []
    # a checkpoint written before checksums existed: the bare serialised state
    eqx.tree_serialise_leaves(path, (jnp.asarray(2, jnp.int32), state))
    assert load_checkpoint(path, state)[0] == 2 and caplog.records == []
    path.write_bytes(path.read_bytes()[:-64])
    chunks, loaded = load_checkpoint(path, state)
    assert chunks == 0 and loaded is state
    assert "group.eqx" in caplog.records[0].getMessage() and caplog.records[0].levelno == logging.WARNING


def test_training_from_a_damaged_checkpoint_ends_as_training_from_scratch(tmp_path, caplog):
    task = make_task("flipflop")
    model = init_model("dense_orthogonal", 4, task.n_in, task.n_out, jax.random.key(0))
    checkpoint = tmp_path / "group.eqx"
    checkpoint.write_bytes(b"schurjax checkpoint sha256 0123\n garbage")

    def train(path):
        return train_models(task, TINY, [model], [jax.random.key(1)], progress=False, checkpoint_path=path)

    fresh, resumed = train(None), train(lambda group: checkpoint)
    np.testing.assert_array_equal(export_weights(resumed.models[0]).w_hh, export_weights(fresh.models[0]).w_hh)
    assert any("group.eqx" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
