"""The original's npm clients (meteor-job, ddp, ddp-login, later) for the tests that run them.

They live in ``tests/interop/node/node_modules`` (pinned by ``package-lock.json``, not
committed). `install_if_needed` runs ``tests/interop/install.sh`` when node and npm are present
and the packages are missing or older than the lock file; the test session calls it once
(``tests/conftest.py``) when it has tests marked ``node``. `node_problem` says why they cannot
run; `require_node` and `skip_without_node` fail under ``CI`` and skip otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "interop" / "node"
INSTALL_SCRIPT = Path(__file__).parent / "interop" / "install.sh"
INSTALL = "tests/interop/install.sh"
PACKAGES = {"meteor-job": "1.5.2", "ddp": "0.12.1", "ddp-login": "1.0.10", "later": "1.2.0"}
INSTALL_TIMEOUT_S = 600


def node_problem() -> str | None:
    """Why the node clients cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    for name, version in PACKAGES.items():
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        if not manifest.is_file():
            return f"npm package {name} is not installed in {NODE_DIR}/node_modules"
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if found != version:
            return f"npm package {name} is {found}, the interop tests pin {version}"
    return None


MISSING_PREFIX = "node tests need node and the original's npm clients"


def missing_message(problem: str) -> str:
    if shutil.which("node") is None or shutil.which("npm") is None:
        remedy = "install node >= 18 and npm; the test session then installs the clients"
    else:
        remedy = f"run {INSTALL}"
    return f"{MISSING_PREFIX}: {problem} ({remedy})"


def _stale() -> bool:
    """Missing, of other versions, or installed before the lock file last changed."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # written by `npm ci`
    if node_problem() is not None or not installed.is_file():
        return True
    return installed.stat().st_mtime < (NODE_DIR / "package-lock.json").stat().st_mtime


def install_if_needed() -> str | None:
    """Install the npm clients if node and npm are here and they are missing or stale.

    Returns one line saying what was done (None: nothing to do, or no node/npm). Two test
    sessions starting together install once: the second waits for the first's lock.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    with (NODE_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _stale():
            return None
        try:
            done = subprocess.run(
                ["bash", str(INSTALL_SCRIPT)],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"{INSTALL} did not finish within {INSTALL_TIMEOUT_S} s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        last = lines[-1] if lines else "no output"
        return f"{INSTALL} failed (exit {done.returncode}): {last}"
    return f"installed the npm clients for the node tests ({INSTALL})"


def skip_without_node() -> None:
    """For fixtures: skip early without node or the npm clients, unless CI is set (then the
    test runs and fails in `require_node`, as a failure rather than a setup error)."""
    problem = node_problem()
    if problem is not None and not os.environ.get("CI"):
        pytest.skip(missing_message(problem))


def require_node() -> str:
    """The node binary; without node or the npm clients: fail under CI, else skip."""
    problem = node_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing_message(problem)}; CI is set, so this fails instead of skipping")
        pytest.skip(missing_message(problem))
    node = shutil.which("node")
    assert node is not None
    return node
