"""`python -m jobcollection.bench`: the same as `jobcollection bench` (see `report`)."""

from __future__ import annotations

import sys

from .report import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
