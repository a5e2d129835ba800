"""The one exception tree of jobcollection.

::

    JobCollectionError
    ├── ValidationError            bad input; nothing was written (DDP 400 "Match failed")
    │   └── JobValidationError     a job document or option names the bad field
    ├── InvalidTransition          the job is not in a status that allows the operation
    ├── JobNotFound                no job with that id
    ├── PermissionDenied           a remote caller may not call this method (DDP 403)
    ├── AuthenticationFailed       login refused (DDP 403)
    ├── StorageError               the database failed us
    │   ├── ConflictError          a compare-and-set lost a race
    │   ├── StorageUnavailable     locked, read-only, missing or unreachable database
    │   ├── StorageCorrupt         the file is not a usable database
    │   └── SchemaTooNew           the database was written by a newer jobcollection
    ├── ProtocolError              a peer broke the wire protocol
    ├── ConnectionClosed           the connection went away
    └── RemoteError                the server answered a call with an error

Each class's docstring doubles as its default message.
"""

from __future__ import annotations


class JobCollectionError(Exception):
    """jobcollection failed."""

    def __init__(self, message: str | None = None) -> None:
        doc = (type(self).__doc__ or "").strip().splitlines()
        super().__init__(message if message is not None else (doc[0] if doc else ""))


class ValidationError(JobCollectionError, ValueError):
    """Invalid input."""


class JobValidationError(ValidationError):
    """A job field or option is invalid."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class InvalidTransition(JobCollectionError):
    """The job's status does not allow this operation."""


class JobNotFound(JobCollectionError, LookupError):
    """No job has that id."""


class PermissionDenied(JobCollectionError):
    """Method not authorized."""


class AuthenticationFailed(JobCollectionError):
    """Login failed."""


class StorageError(JobCollectionError):
    """The job database failed."""


class ConflictError(StorageError):
    """Another writer changed the job first."""


class StorageUnavailable(StorageError):
    """The job database cannot be used right now (locked, read-only or missing; a server that
    is down or restarting). `transient`: the cause is expected to pass by itself (a lock held
    by another process, a database server that cannot be reached), so trying again later may
    succeed; a worker sends its outcomes again while it lasts."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StorageCorrupt(StorageError):
    """The job database file is corrupt or not a database."""


class SchemaTooNew(StorageError):
    """The job database was created by a newer version of jobcollection."""


class ProtocolError(JobCollectionError):
    """The peer broke the protocol."""


class ConnectionClosed(JobCollectionError):
    """The connection is closed."""


class RemoteError(JobCollectionError):
    """The server answered with an error."""

    def __init__(self, error: object, reason: str | None = None, details: str | None = None):
        self.error = error
        self.reason = reason
        self.details = details
        text = f"{reason} [{error}]" if reason else f"[{error}]"
        if details:  # e.g. what a 404 server does serve, what a 403 refused caller lacks
            text = f"{reason}; {details} [{error}]"
        super().__init__(text)


def transient(error: BaseException) -> bool:
    """Whether a call failed because the database is unavailable for a while, so that the same
    call may well succeed later: a transient `StorageUnavailable`, or a server's 503 (its
    database is unavailable, or it is restarting and did not apply the call)."""
    if isinstance(error, StorageUnavailable):
        return error.transient
    return isinstance(error, RemoteError) and error.error == 503
