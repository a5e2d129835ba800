"""Which job types have ready jobs, followed from the change feed with as few reads as may be.

The state behind the server's `<root>.readyTypes` doorbell (see `server/doorbell.py`): a
waiting worker only needs to hear "there is work" when a type gets its first ready job, and
"none left" when its last one goes. Run by `LiveQueries` on its thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..storage.port import Storage


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


@dataclass
class ReadyTypes:
    """The last known state (some ready job or none) of each watched type."""

    storage: Storage
    root: str
    ready: dict[str, bool] = field(default_factory=dict)

    def look(self, types: Iterable[str]) -> dict[str, bool]:
        """The state of these types now, read fresh (a new watcher's first look)."""
        found = self._has_ready(types)
        self.ready.update(found)
        return found

    def recheck(self, news: Mapping[str, ReadyNews], watched: set[str]) -> dict[str, bool]:
        """Jobs of some types changed: the watched types whose state flipped, and to what.

        Storage is read only when the news cannot settle it: a type known to have none ready
        that gained a ready job (and lost none) now has one, which is the saving that matters:
        a waiting worker hears of a new job without a read in between. A type known to have
        some flips only by losing one, and then it takes a read to know whether any is left.
        (Changes arrive in commit order, so a type cannot gain a ready job unnoticed.)
        """
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
        self.ready.update(flipped)
        return flipped

    def _has_ready(self, types: Iterable[str]) -> dict[str, bool]:
        wanted = list(types)
        if not wanted:
            return {}
        with self.storage.read(self.root) as tx:
            found = tx.ready_types(wanted)
        return {t: t in found for t in wanted}
