"""A worker for `jobcollection worker examples.hello:greet --type greet`.

Submit work from another terminal:
    jobcollection submit greet --data '{"name": "Ada"}'
"""

from __future__ import annotations

from typing import Any


def greet(job: Any) -> dict[str, str]:
    """Log a greeting and complete the job with it (returning completes the job)."""
    name = job.data.get("name", "world")
    greeting = f"Hello, {name}!"
    job.log(greeting)
    return {"greeting": greeting}
