"""Training numerics are pinned: a tiny model per task and protocol, trained a few steps, must end
at stored weights. A change that moves them is a change of the trained networks, so it must bump
``TRAINING_REVISION`` (stale cached models are then retrained), regenerate the stored values
(``python tests/test_golden.py``) and regenerate the published numbers, whose documents name
the revision they were computed at (checked below)."""

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from schurjax.cache import TRAINING_REVISION
from schurjax.model import init_model
from schurjax.protocols import PROTOCOLS
from schurjax.tasks import make_task
from schurjax.train import train_models
from schurjax.weights import export_weights

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "training.npz"
# Documents whose numbers come from trained networks, each naming the revision it was made at.
PUBLISHED = ("docs/REPRODUCTION.md", "docs/PROTOCOLS.md", "README.md")
# Every distinct (task, protocol) configuration once.
CASES = list({(task, PROTOCOLS[p][task]): (task, p) for p in PROTOCOLS for task in PROTOCOLS[p]}.values())


def trained_weights(task_name: str, protocol: str) -> dict[str, np.ndarray]:
    """A width-8 model of ``task`` trained 8 steps of batch 8 under ``protocol``'s optimizer."""
    task = make_task(task_name)
    config = dataclasses.replace(
        PROTOCOLS[protocol][task_name], steps=8, batch_size=8, chunk_steps=4, until_solved=False, warmup_steps=0
    )
    init_key, data_key = jax.random.split(jax.random.key(7))
    model = init_model("dense_orthogonal", 8, task.n_in, task.n_out, init_key)
    result = train_models(task, config, [model], [data_key], progress=False)
    return export_weights(result.models[0]).arrays()


def test_the_golden_values_are_at_the_current_training_revision():
    with np.load(GOLDEN) as golden:
        assert int(golden["revision"]) == TRAINING_REVISION, (
            "TRAINING_REVISION changed: regenerate the golden values with `python tests/test_golden.py` "
            "and the published numbers (docs/REPRODUCTION.md, docs/PROTOCOLS.md)"
        )


@pytest.mark.parametrize(("task", "protocol"), CASES)
def test_training_numerics_match_the_golden_values(task, protocol):
    with np.load(GOLDEN) as golden:
        for name, value in trained_weights(task, protocol).items():
            # 8 steps move the weights by ~1e-2; float32 round-off on another CPU stays ~1e-7.
            np.testing.assert_allclose(
                value, golden[f"{task}/{protocol}/{name}"], rtol=0, atol=1e-6,
                err_msg="training numerics changed: bump TRAINING_REVISION in schurjax/cache.py, "
                "run `python tests/test_golden.py`, and regenerate the published numbers",
            )


@pytest.mark.parametrize("document", PUBLISHED)
def test_published_numbers_name_the_current_training_revision(document):
    text = (REPO / document).read_text()
    assert f"training revision {TRAINING_REVISION}" in text, (
        f"{document} was not generated at training revision {TRAINING_REVISION}: regenerate it "
        "(python -m experiments.paper seeds=10 publish=true; python -m experiments.protocols publish=true)"
    )


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    arrays = {f"{t}/{p}/{name}": v for t, p in CASES for name, v in trained_weights(t, p).items()}
    np.savez(GOLDEN, revision=TRAINING_REVISION, **arrays)
    print(f"wrote {len(arrays)} arrays at training revision {TRAINING_REVISION} to {GOLDEN}", file=sys.stderr)
