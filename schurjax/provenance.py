"""Where a published number came from: the code's commit and the training revision — host only."""

import subprocess
from pathlib import Path

from .cache import TRAINING_REVISION


def code_commit() -> str:
    """The git commit of this checkout (``+modified`` when tracked files differ from it), or
    ``unknown`` outside a git checkout."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        modified = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+modified" if modified else "")


def provenance() -> str:
    """One line naming the commit and the training revision, for generated documents."""
    return f"commit {code_commit()}, training revision {TRAINING_REVISION}"
