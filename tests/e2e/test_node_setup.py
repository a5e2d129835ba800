"""The README's test command installs the npm clients the node tests need, by itself.

Each test runs `python -m pytest` as a subprocess on a scratch copy of the test setup
(``tests/conftest.py``, ``tests/node_clients.py``, ``tests/pg_support.py`` and
``tests/storage_support.py`` (which the conftest imports), ``tests/interop/install.sh`` and the
pinned ``package.json``/``package-lock.json``) with two small node tests, so that the real
``tests/interop/node/node_modules`` is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node_clients import require_node

TESTS = Path(__file__).resolve().parents[1]
NODE_TEST = """
import pytest
from node_clients import NODE_DIR, require_node

pytestmark = pytest.mark.node


def test_meteor_job_loads():
    import subprocess
    done = subprocess.run([require_node(), "-e", "require('meteor-job')"], cwd=NODE_DIR)
    assert done.returncode == 0
"""


def _scratch(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "tests" / "interop" / "node").mkdir(parents=True)
    setup = ("conftest.py", "node_clients.py", "pg_support.py", "storage_support.py")
    for name in (*setup, "interop/install.sh"):
        shutil.copy2(TESTS / name, root / "tests" / name)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(TESTS / "interop" / "node" / name, root / "tests" / "interop" / "node" / name)
    (root / "tests" / "interop" / "test_one.py").write_text(NODE_TEST, "utf-8")
    (root / "tests" / "test_two.py").write_text(NODE_TEST, "utf-8")
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = -ra -p no:cacheprovider\nmarkers =\n    node: npm clients\n", "utf-8"
    )
    return root


def _pytest(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests"],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.node
@pytest.mark.slow
def test_pytest_installs_the_npm_clients_when_node_is_present(tmp_path: Path) -> None:
    require_node()
    root = _scratch(tmp_path)
    first = _pytest(root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "node tests: installed the npm clients" in first.stdout
    assert "2 passed" in first.stdout
    modules = root / "tests" / "interop" / "node" / "node_modules"
    assert (modules / "meteor-job" / "package.json").is_file()

    again = _pytest(root)  # up to date: nothing installed, nothing said
    assert again.returncode == 0, again.stdout + again.stderr
    assert "node tests:" not in again.stdout
    assert "2 passed" in again.stdout

    (root / "tests" / "interop" / "node" / "package-lock.json").touch()  # stale: newer lock
    os.utime(modules / ".package-lock.json", (1, 1))
    stale = _pytest(root)
    assert "node tests: installed the npm clients" in stale.stdout, stale.stdout


def test_without_node_the_node_tests_skip_with_one_line(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    without_node = str(Path(sys.executable).parent)  # the venv's bin: python, no node
    if shutil.which("node", path=without_node) is not None:
        pytest.fail(f"{without_node} holds node; this test needs a PATH without it")
    done = _pytest(root, PATH=without_node)
    assert done.returncode == 0, done.stdout + done.stderr
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, done.stdout
    assert skipped[0].startswith("SKIPPED [2] ")
    assert "node is not installed" in skipped[0]
    assert "install node >= 18 and npm" in skipped[0]
    assert not (root / "tests" / "interop" / "node" / "node_modules").exists()

    under_ci = _pytest(root, PATH=without_node, CI="1")
    assert under_ci.returncode == 1, under_ci.stdout + under_ci.stderr
    assert "2 failed" in under_ci.stdout
    assert "CI is set, so this fails instead of skipping" in under_ci.stdout
