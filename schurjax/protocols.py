"""Named training protocols per task: the paper's, and the defaults that train every seed.

A protocol is a :class:`~schurjax.train.TrainConfig`. ``"paper"`` is the paper's protocol
(Adam 1e-3, batch 64, no clipping, no schedule; 3840 steps, or for the copy task a budget of
8000 steps that stops each controller once it is solved). ``"default"`` is what runs use unless
told otherwise, chosen per task by the protocol study (``python -m experiments.protocols``,
docs/PROTOCOLS.md): the protocol closest to the paper's under which (nearly) every seed learns.
conf/train/ mirrors this table for the command line; a test keeps the two equal.
"""

import dataclasses

from .train import TrainConfig

PAPER = TrainConfig()
PAPER_COPY = TrainConfig(steps=8000, until_solved=True)

PROTOCOLS: dict[str, dict[str, TrainConfig]] = {
    "paper": {"flipflop": PAPER, "sine": PAPER, "cdi": PAPER, "copy": PAPER_COPY},
    "default": {
        "flipflop": PAPER,
        "sine": PAPER,
        "cdi": PAPER,
        "copy": PAPER_COPY,
    },
}

# Why each task's default is what it is (rendered into docs/PROTOCOLS.md).
RATIONALE: dict[str, str] = {}


def training_protocol(task: str, name: str = "default", **changes) -> TrainConfig:
    """The ``name`` protocol of ``task`` (tasks without their own entry get the neuro tasks'
    paper protocol), with ``changes`` (TrainConfig fields) on top."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown training protocol {name!r}; choose one of: {', '.join(PROTOCOLS)} (train.protocol={name})")
    return dataclasses.replace(PROTOCOLS[name].get(task, PAPER), **changes)


def describe_protocol(task: str, name: str, config: TrainConfig) -> str:
    """``config`` as the ``name`` protocol of ``task`` and the settings changed from it."""
    base = training_protocol(task, name)
    changed = [
        f"{field.name}={getattr(config, field.name)!r}"
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(base, field.name)
    ]
    return f"{name} ({config.describe()})" + (f"; changed from {name}: {', '.join(changed)}" if changed else "")
