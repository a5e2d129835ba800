"""Errors as Meteor sends them (SPEC.md section 8), and the mapping from our exceptions."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import JobCollectionError, PermissionDenied, ValidationError

log = logging.getLogger(__name__)

NOT_AUTHORIZED_DETAILS = "Authenticated user is not permitted to invoke this method."


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


def not_authorized() -> MeteorError:
    return MeteorError(403, "Method not authorized", NOT_AUTHORIZED_DETAILS)


def as_meteor_error(error: BaseException) -> MeteorError:
    """What a client is told about ``error``: deliberate errors keep their meaning, the rest
    become 500 "Internal server error" (and are logged here)."""
    if isinstance(error, MeteorError):
        return error
    if isinstance(error, PermissionDenied):
        return not_authorized()
    if isinstance(error, ValidationError):
        return MeteorError(400, "Match failed", str(error))
    log.error("internal error in a remote call", exc_info=error)
    return MeteorError(500, "Internal server error")
