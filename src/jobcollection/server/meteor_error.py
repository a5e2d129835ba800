"""Errors as Meteor sends them (a serialized Meteor.Error), the mapping from our exceptions,
and the wording of refusals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..core.constants import METHOD_GROUPS
from ..core.permissions import Caller
from ..errors import JobCollectionError, PermissionDenied, StorageUnavailable, ValidationError

log = logging.getLogger(__name__)

NOT_AUTHORIZED_DETAILS = "Authenticated user is not permitted to invoke this method."
STORAGE_UNAVAILABLE_DETAILS = (
    "The job database is busy (locked by another process for longer than the server waits) "
    "or unreachable; try again."
)


class MeteorError(JobCollectionError):
    """An error raised on purpose, sent to the client with its code, reason and details."""

    def __init__(self, code: int | str, reason: str | None = None, details: str | None = None):
        self.code = code
        self.reason = reason
        self.details = details
        super().__init__(f"{reason} [{code}]" if reason else f"[{code}]")

    def to_wire(self) -> dict[str, Any]:
        """The serialized Meteor.Error (`isClientSafe, error, reason, details?, message, ...`)."""
        wire: dict[str, Any] = {"isClientSafe": True, "error": self.code}
        if self.reason is not None:
            wire["reason"] = self.reason
        if self.details is not None:
            wire["details"] = self.details
        wire["message"] = str(self)
        wire["errorType"] = "Meteor.Error"
        return wire


class Refused(MeteorError):
    """A 403 refusal of a call or subscription; `anonymous`: the caller was not logged in (the
    HTTP API answers those 401, with a hint to log in)."""

    def __init__(self, reason: str, details: str, *, anonymous: bool = False) -> None:
        super().__init__(403, reason, details)
        self.anonymous = anonymous


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def not_logged_in(what: str, names: Sequence[str]) -> str:
    """Details for a caller who is not logged in: what they called and the rule names (groups
    or the method itself) under which a user may be allowed it."""
    return f"no user is logged in, and {what} needs one allowed under {_listed(names)}"


def not_authorized(
    caller: Caller | None = None, root: str | None = None, method: str | None = None
) -> Refused:
    """403 "Method not authorized", the reason the original's clients know. For a caller who
    is not logged in (given with the collection `root` and bare `method`), the details say so
    and name the groups a user needs; otherwise they are Meteor's."""
    if caller is None or caller.user_id is not None or root is None or method is None:
        return Refused("Method not authorized", NOT_AUTHORIZED_DETAILS)
    groups = METHOD_GROUPS.get(method, (method,))
    names = [*groups[1:], groups[0]]  # the groups first, then the method's own rule name
    details = not_logged_in(f"{root}_{method}", names)
    return Refused("Method not authorized", details, anonymous=True)


def not_subscribable(name: str, caller: Caller, groups: Sequence[str]) -> Refused:
    """403 "Subscription not authorized"; for a caller who is not logged in the details say so
    and name the `groups` a user needs."""
    if caller.user_id is not None:
        details = f"Authenticated user is not permitted to subscribe to '{name}'."
        return Refused("Subscription not authorized", details)
    details = not_logged_in(f"'{name}'", groups)
    return Refused("Subscription not authorized", details, anonymous=True)


def as_meteor_error(error: BaseException) -> MeteorError:
    """What a client is told about ``error``: deliberate errors keep their meaning, the rest
    become 500 "Internal server error" (and are logged here)."""
    if isinstance(error, MeteorError):
        return error
    if isinstance(error, PermissionDenied):
        return not_authorized()
    if isinstance(error, ValidationError):
        return MeteorError(400, "Match failed", str(error))
    if isinstance(error, StorageUnavailable):  # e.g. another process held the lock too long
        log.warning("a remote call failed: %s", error)
        return MeteorError(503, "Storage unavailable", STORAGE_UNAVAILABLE_DETAILS)
    log.error("internal error in a remote call", exc_info=error)
    return MeteorError(500, "Internal server error")
