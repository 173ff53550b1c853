"""Where a published number came from: the code's commit and the training revision — host only."""

import subprocess
from pathlib import Path

from .cache import TRAINING_REVISION

# What the code writes rather than what computes: a checkout whose only changes are here (a
# benchmark's fresh JSON, a regenerated document) still computes what its commit does, so that
# benchmarks and generated documents run one after another all name the plain commit.
GENERATED = ("docs", "benchmarks/results", "*.md")


def code_commit(checkout: str | Path | None = None) -> str:
    """The git commit of the checkout holding ``checkout`` (default: this package), with
    ``+modified`` when tracked files other than :data:`GENERATED` differ from it; ``unknown``
    outside a git checkout."""
    here = Path(__file__).resolve().parent if checkout is None else Path(checkout)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        excluded = [f":(top,exclude){pattern}" for pattern in GENERATED]
        modified = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+modified" if modified else "")


def provenance() -> str:
    """One line naming the commit and the training revision, for generated documents."""
    return f"commit {code_commit()}, training revision {TRAINING_REVISION}"
