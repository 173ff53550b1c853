"""Trained models keyed by everything that determines their training — host only.

An α sweep changes only the R/C partition, and a rerun after an interruption changes nothing, so
neither should retrain: every finished model is stored under a hash of its training key (task
and its parameters, training settings, construction, width, seed, and — for copy controllers
trained until solved — the check set), as a JSON header ``<name>_<hash>.json`` and the weights
it names, ``<name>_<hash>.<checksum>.npz``.

Files are written atomically (:mod:`schurjax.atomic`), the weights before the header that names
them, so a killed run never leaves a half-written model. The weights file is named by its own
content and never rewritten: processes sharing the cache (the jobs of a sweep) that store the same
model at once each write a complete pair, and the header that lands last names a complete file.
The header records the SHA-256 of the weights file; an entry that fails that check or cannot be
read is reported in the log and its model retrained. Entries written before checksums existed
(weights at ``<name>_<hash>.npz``) are read as long as they load cleanly.
"""

import dataclasses
import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path

from .atomic import atomic_write, sha256
from .results import load_weights, weights_npz
from .weights import RNNWeights

log = logging.getLogger(__name__)

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


_HEADER_FIELDS = (
    "train_loss", "train_steps", "diverged", "solved", "loss_history", "grad_norm_history", "train_seconds"
)
_HISTORIES = ("loss_history", "grad_norm_history")


class ModelCache:
    """A directory of trained models; ``None`` as the directory disables caching."""

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = None if directory is None else Path(directory)
        self._reported: set[Path] = set()  # damaged entries already named in the log

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
        """The model stored under ``key``; None if there is none, or if it is damaged (then with a
        warning naming the file: the caller retrains it and :meth:`put` replaces the entry)."""
        if self.directory is None:
            return None
        weights_path, header_path = self._paths(key)
        if not header_path.exists():
            return None
        try:
            header = json.loads(header_path.read_text())
            if header["key"] != key:  # a hash collision, however unlikely, must not load a stranger
                return None
            weights = _read_weights(weights_path.with_name(header.get("weights", weights_path.name)), header)
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            if header_path not in self._reported:
                log.warning("model cache entry %s is damaged (%s); the model will be retrained", header_path, error)
                self._reported.add(header_path)
            return None
        fields = {name: header[name] for name in _HEADER_FIELDS if name in header}
        fields = fields | {name: tuple(fields[name]) for name in _HISTORIES if name in fields}
        return CachedModel(weights, **fields)

    def put(self, key: dict, model: CachedModel) -> None:
        if self.directory is None:
            return
        weights_path, header_path = self._paths(key)
        data = weights_npz(model.weights)
        digest = sha256(data)
        weights_path = weights_path.with_suffix(f".{digest[:16]}.npz")
        with atomic_write(weights_path) as handle:
            handle.write(data)
        header = {"key": key, "weights": weights_path.name, "sha256": digest}
        header |= {name: getattr(model, name) for name in _HEADER_FIELDS}
        # The header is written last: its presence means the weights it names are complete.
        with atomic_write(header_path, "w") as handle:
            handle.write(json.dumps(header, indent=1))


def _read_weights(path: Path, header: dict) -> RNNWeights:
    """The weights an entry's header names, checked against its recorded SHA-256 (entries written
    before checksums existed have none; they pass if they load)."""
    data = path.read_bytes()
    if "sha256" in header and sha256(data) != header["sha256"]:
        raise ValueError(f"{path.name} does not match the SHA-256 recorded in its header")
    return load_weights(io.BytesIO(data))
