"""A one-line status kept up to date on a terminal: the worker's counters, a copy's progress."""

from __future__ import annotations

import threading
from typing import TextIO


class StatusLine:
    """A one-line status kept up to date on a terminal (silent when not a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._shown = ""
        self._lock = threading.Lock()
        self.quiet = False  # drop the queue's error reports (set while stopping at once)

    def show(self, text: str) -> None:
        with self._lock:
            if self._enabled and text != self._shown:
                self._stream.write("\r" + text.ljust(len(self._shown)))
                self._stream.flush()
                self._shown = text

    def say(self, text: str) -> None:
        """Print a message on a line of its own (to the same stream, always)."""
        with self._lock:
            if self._shown:
                self._stream.write("\r" + " " * len(self._shown) + "\r")
                self._shown = ""
            self._stream.write(text + "\n")
            self._stream.flush()

    def report(self, problem: object) -> None:
        """The queue's error callback: one line per problem, unless stopping at once."""
        if not self.quiet:
            self.say(f"jobcollection worker: {problem}")
