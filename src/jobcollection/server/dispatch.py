"""Remote calls of job methods: `<root>_<method>` names, permission checks, error mapping.

One dispatcher serves every transport (DDP sessions and the HTTP API), so both check the
same rules and report errors the same way. Job methods run inline on the caller's thread (an
operation takes microseconds; a thread hop would cost as much as the work).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..core.constants import DDP_METHODS
from ..core.permissions import Caller
from ..core.wire import result_to_wire
from ..engine.manager import JobManager
from .meteor_error import MeteorError, as_meteor_error, not_authorized


@dataclass(frozen=True, slots=True)
class Route:
    manager: JobManager
    method: str  # the bare method name, e.g. "jobSave"


class Dispatcher:
    """The job methods of the served collections, by their DDP names."""

    def __init__(self, managers: Iterable[JobManager]) -> None:
        self.managers: dict[str, JobManager] = {}
        self.routes: dict[str, Route] = {}
        for manager in managers:
            if manager.root in self.managers:
                raise ValueError(f"collection {manager.root!r} is served twice")
            self.managers[manager.root] = manager
            for method in DDP_METHODS:
                self.routes[f"{manager.root}_{method}"] = Route(manager, method)

    def knows(self, name: str) -> bool:
        return name in self.routes

    def call(
        self, name: str, params: list[object], caller: Caller, connection: object | None = None
    ) -> object:
        """Run a remote call; the result is wire-ready (times as EJSON dates) and every failure
        comes out as a :class:`MeteorError`.

        Permissions are checked before the params are looked at (SPEC 4); a refusal writes
        nothing.
        """
        route = self.routes.get(name)
        if route is None:
            raise MeteorError(404, f"Method '{name}' not found")
        if not route.manager.permissions.permits(caller, route.method, params):
            raise not_authorized()
        try:
            result = route.manager.call(
                route.method, params, user_id=caller.user_id, connection=connection
            )
        except Exception as error:
            raise as_meteor_error(error) from error
        return result_to_wire(route.method, result)
