"""Settings shared by the whole suite.

Hypothesis: the default profile ("repeatable") draws the same examples on every machine and
every run, and keeps no example database, so a local run and CI agree, and an example that
failed once (in a `.hypothesis/` folder) cannot make later runs differ from a fresh clone.
To look for new failures, draw fresh examples: ``HYPOTHESIS_PROFILE=explore python -m pytest
--hypothesis-seed=N`` (a failure prints the `@reproduce_failure` blob to replay it).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
