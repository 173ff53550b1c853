"""Atomic file writes and content checksums — host only.

Every file schurjax writes (tables, weights, the model cache, training checkpoints) goes through
:func:`atomic_write`: the content is written to a temporary file beside the target, under a
name no other writer can pick, and renamed over the target only once complete. A reader sees
the old file or the new one, never a half-written one, and two processes writing the same
target (e.g. SLURM jobs of one sweep sharing a model cache) never write into each other's files.
"""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# The permission bits an ordinary open() would give a new file; temporary files start as 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_args) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the block ends without an
    error; on an error it is removed and ``path`` is left as it was.

    ``mode`` and ``open_args`` (e.g. ``newline=""`` for csv) are those of :func:`open`; missing
    parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = None
    try:
        with tempfile.NamedTemporaryFile(
            mode, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, **open_args
        ) as handle:
            temporary = Path(handle.name)
            yield handle
            handle.flush()
            # on disk before the rename, so that a crash of the machine cannot leave an empty target
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise


def sha256(data: bytes) -> str:
    """The hex SHA-256 digest of ``data``: what a file's checksum is recorded as."""
    return hashlib.sha256(data).hexdigest()
