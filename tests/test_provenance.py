"""The commit that published numbers name."""

import shutil
import subprocess

import pytest

from schurjax.provenance import code_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(root, *args: str) -> str:
    identity = ["-c", "user.name=schurjax", "-c", "user.email=schurjax@example.invalid"]
    return subprocess.run(["git", *identity, *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path):
    for name in ("pkg/code.py", "docs/TABLE.md", "benchmarks/results/run.json", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("first\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_regenerated_documents_and_benchmark_results_keep_the_plain_commit(checkout):
    commit = _git(checkout, "rev-parse", "--short=12", "HEAD").strip()
    for name in ("docs/TABLE.md", "benchmarks/results/run.json", "README.md"):
        (checkout / name).write_text("regenerated\n")
    # asked from inside a subdirectory, as the package asks from its own
    assert code_commit(checkout / "pkg") == commit


def test_changed_code_is_marked_modified(checkout):
    commit = _git(checkout, "rev-parse", "--short=12", "HEAD").strip()
    (checkout / "pkg/code.py").write_text("changed\n")
    assert code_commit(checkout / "pkg") == commit + "+modified"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path):
    assert code_commit(tmp_path) == "unknown"
