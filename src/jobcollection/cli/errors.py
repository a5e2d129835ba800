"""The CLI's own failures: bad arguments (exit 2) and failed commands (exit 1)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure the CLI reports as one line on stderr, exiting with `code`."""

    code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    """A bad argument; nothing was written to the database."""

    code = EXIT_USAGE


class CommandFailed(CliError):
    """The command could not do what was asked (e.g. an unknown job id)."""

    code = EXIT_FAILURE
