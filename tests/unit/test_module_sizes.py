"""Every module of the package stays small enough to read in one sitting: at most 500 lines.

A module that grows past that has usually taken on a second job; split it along that seam
(docs/decisions.md's map says where each job lives) rather than raising the limit.
"""

from __future__ import annotations

from pathlib import Path

import jobcollection

LIMIT = 500
PACKAGE = Path(jobcollection.__file__).parent


def _line_counts() -> dict[str, int]:
    return {
        str(path.relative_to(PACKAGE)): len(path.read_text("utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_the_package_has_modules_to_measure() -> None:
    counts = _line_counts()
    assert "engine/manager.py" in counts
    assert len(counts) > 50


def test_no_module_is_over_500_lines() -> None:
    too_long = {name: lines for name, lines in _line_counts().items() if lines > LIMIT}
    assert too_long == {}, f"split these modules (over {LIMIT} lines): {too_long}"
