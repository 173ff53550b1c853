"""Trained models keyed by everything that determines their training — host only.

An α sweep changes only the R/C partition, and a rerun after an interruption changes nothing, so
neither should retrain: every finished model is stored under a hash of its training key (task
and its parameters, training settings, construction, width, seed, and — for copy controllers
trained until solved — the check set), as ``<name>_<hash>.npz`` beside a JSON header. Files are
written under temporary names and renamed, so a killed run never leaves a half-written model.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from .results import load_weights, save_weights
from .weights import RNNWeights

# Bump when a change to training makes earlier cached models stale.
TRAINING_REVISION = 5


def training_key(**fields) -> dict:
    """A JSON-able description of one model's training; equal keys give equal models."""
    return json.loads(json.dumps({"revision": TRAINING_REVISION, **fields}, sort_keys=True, default=_plain))


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"cannot describe {value!r} in a training key")


@dataclasses.dataclass(frozen=True)
class CachedModel:
    weights: RNNWeights
    train_loss: float
    train_steps: int
    diverged: bool
    # Whether the task's solved criterion held when training ended (None: trained without one).
    solved: bool | None = None
    # Per chunk: the last training loss and the largest global gradient norm of its steps.
    loss_history: tuple[float, ...] = ()
    grad_norm_history: tuple[float, ...] = ()
    # This model's share of the wall time of the training call that produced it.
    train_seconds: float | None = None


_HEADER_FIELDS = ("train_loss", "train_steps", "diverged", "solved", "loss_history", "grad_norm_history", "train_seconds")


class ModelCache:
    """A directory of trained models; ``None`` as the directory disables caching."""

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = None if directory is None else Path(directory)

    def _paths(self, key: dict) -> tuple[Path, Path]:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        stem = f"{key['task']}_{key['construction']}_w{key['width']}_s{key['seed']}_{digest}"
        return self.directory / f"{stem}.npz", self.directory / f"{stem}.json"

    def checkpoint_path(self, keys: list[dict]) -> Path | None:
        """Where the training state of a group of models (by their keys) is checkpointed."""
        if self.directory is None:
            return None
        digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:20]
        return self.directory / "checkpoints" / f"{digest}.eqx"

    def get(self, key: dict) -> CachedModel | None:
        if self.directory is None:
            return None
        weights_path, header_path = self._paths(key)
        if not header_path.exists():
            return None
        header = json.loads(header_path.read_text())
        if header["key"] != key:  # a hash collision, however unlikely, must not load a stranger
            return None
        fields = {name: header[name] for name in _HEADER_FIELDS if name in header}
        fields = fields | {name: tuple(fields[name]) for name in ("loss_history", "grad_norm_history") if name in fields}
        return CachedModel(load_weights(weights_path), **fields)

    def put(self, key: dict, model: CachedModel) -> None:
        if self.directory is None:
            return
        weights_path, header_path = self._paths(key)
        save_weights(weights_path, model.weights)
        header = {"key": key} | {name: getattr(model, name) for name in _HEADER_FIELDS}
        # The header is written last: its presence means the weights beside it are complete.
        temporary = header_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(header, indent=1))
        os.replace(temporary, header_path)
