"""`<root>.readyTypes`: which of some job types have ready jobs, as a tiny live publication.

A remote worker only needs to hear "there is work" when it has none, not about every ready
job: following `<root>.jobs` for the ready jobs of its types costs an `added` and a `removed`
per job. Here each type with at least one ready job is one document (`_id` = the type, no
fields) in DDP collection `<root>.readyTypes`: it is added when the type gets a ready job and
removed when its last ready job is claimed, so a busy queue hears nothing and an idle one is
told at once. Params: ``[types]`` (a list of type names). Allowed to the admin and worker
groups (rule functions see the publication name and the params).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..core.params import check_type_count
from ..core.permissions import Caller
from ..engine.manager import JobManager
from ..errors import JobValidationError
from .mergebox import MergeBox
from .meteor_error import MeteorError, not_subscribable

BELL_GROUPS: Final = ("admin", "worker")
Message = dict[str, Any]


@dataclass(slots=True)
class ReadyNews:
    """What a batch of changes says about one job type's ready jobs."""

    gained: bool = False  # a job of the type is ready after its change
    lost: bool = False  # a job of the type is not ready after its change (or was removed)

    def note(self, status: str | None) -> None:
        if status == "ready":
            self.gained = True
        else:
            self.lost = True


@dataclass(eq=False)
class BellSub:
    """One subscription: which connection (its merge box and send), which types."""

    sub_id: str
    box: MergeBox
    send_all: Callable[[list[Message]], None]
    types: frozenset[str]


@dataclass
class ReadyBell:
    """The doorbell of one collection."""

    manager: JobManager
    subs: dict[BellSub, None] = field(default_factory=dict)
    ready: dict[str, bool] = field(default_factory=dict)  # last state told, per watched type
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

    def subscribe(self, sub: BellSub) -> None:
        self.subs[sub] = None
        self.ready.update(self._has_ready(sub.types))  # fresh: unwatched types are not tracked
        sub.send_all(
            [
                m
                for t in sorted(sub.types)
                if self.ready[t] and not self.quiet
                for m in sub.box.added(sub.sub_id, self.name, t, {})
            ]
        )

    def unsubscribe(self, sub: BellSub) -> None:
        self.subs.pop(sub, None)

    def watched(self) -> set[str]:
        return {t for sub in self.subs for t in sub.types}

    def recheck(self, news: Mapping[str, ReadyNews]) -> None:
        """Jobs of some types changed: tell subscribers the types whose state flipped.

        Storage is read only when the news cannot settle it: a type told "none ready" that
        gained a ready job (and lost none) now has one, which is the saving that matters: a
        waiting worker hears of a new job without a read in between. A type told "some
        ready" flips only by losing one, and then it takes a read to know whether any is
        left. (Changes arrive in commit order, so a type cannot gain a ready job unnoticed.)
        """
        watched = self.watched()
        flipped: dict[str, bool] = {}
        unsure: list[str] = []
        for job_type, seen in news.items():
            if job_type not in watched:
                continue
            told = self.ready.get(job_type)
            if told is None or (seen.lost and (told or seen.gained)):
                unsure.append(job_type)
            elif seen.gained and not told:
                flipped[job_type] = True
        if unsure:
            flipped.update(
                (t, now) for t, now in self._has_ready(unsure).items() if self.ready.get(t) != now
            )
        if self.quiet:  # no new work is handed out: do not wake anyone for it
            flipped = {t: now for t, now in flipped.items() if not now}
        if not flipped:
            return
        self.ready.update(flipped)
        for sub in list(self.subs):
            for job_type in sorted(flipped.keys() & sub.types):
                box = sub.box
                if flipped[job_type]:
                    sub.send_all(box.added(sub.sub_id, self.name, job_type, {}))
                else:
                    sub.send_all(box.removed(sub.sub_id, self.name, job_type))

    def _has_ready(self, types: Iterable[str]) -> dict[str, bool]:
        wanted = list(types)
        if not wanted:
            return {}
        with self.manager.storage.read(self.manager.root) as tx:
            found = tx.ready_types(wanted)
        return {t: t in found for t in wanted}
