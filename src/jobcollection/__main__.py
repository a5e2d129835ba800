"""`python -m jobcollection`: the command-line interface."""

from __future__ import annotations

from jobcollection.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
