"""The README's quick example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)


def test_quick_example_runs(tmp_path: Path) -> None:
    example = _python_blocks()[0]
    assert "JobCollection" in example
    assert "process_jobs" in example
    script = tmp_path / "quick.py"
    script.write_text(example, "utf-8")
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "jobs.db").exists()
