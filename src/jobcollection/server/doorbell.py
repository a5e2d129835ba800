"""`<root>.readyTypes`: which of some job types have ready jobs, as a tiny live publication.

A remote worker only needs to hear "there is work" when it has none, not about every ready
job: following `<root>.jobs` for the ready jobs of its types costs an `added` and a `removed`
per job. Here each type with at least one ready job is one document (`_id` = the type, no
fields) in DDP collection `<root>.readyTypes`: it is added when the type gets a ready job and
removed when its last ready job is claimed, so a busy queue hears nothing and an idle one is
told at once. Params: ``[types]`` (a list of type names). Allowed to the admin and worker
groups (rule functions see the publication name and the params).

What is ready is followed by the engine (`LiveQueries.watch_ready_types`, with the read-saving
rules of `engine.ready_types`); this is only the publication's face: who may ring, and quiet
while the server stops (see `publications.py` for the delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..core.params import check_type_count
from ..core.permissions import Caller
from ..engine.manager import JobManager
from ..errors import JobValidationError
from .meteor_error import MeteorError, not_subscribable

BELL_GROUPS: Final = ("admin", "worker")


@dataclass
class ReadyBell:
    """The doorbell of one collection."""

    manager: JobManager
    quiet: bool = False  # the server is stopping: announce no ready type (see `hush`)

    @property
    def name(self) -> str:
        return f"{self.manager.root}.readyTypes"

    def check(self, caller: Caller, params: list[Any]) -> frozenset[str]:
        """The types a subscription asks for; raises `MeteorError` (403/400) otherwise."""
        permissions = self.manager.permissions
        if not permissions.permits_under(BELL_GROUPS, caller, self.name, params):
            raise not_subscribable(self.name, caller, BELL_GROUPS)
        types = params[0] if len(params) == 1 else None
        try:  # as for getWork: each type is looked up on changes, so their number is bounded
            check_type_count(len(types) if isinstance(types, list) else 0)
        except JobValidationError as error:
            raise MeteorError(400, "Match failed", str(error)) from None
        if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
            raise MeteorError(400, "Match failed", f"{self.name} takes [types], got {params!r}")
        return frozenset(types)
