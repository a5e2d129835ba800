"""A real server on a free port in a background thread, and a small blocking DDP test client."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from jobcollection.server.app import Server

# The 16 operations of SPEC.md section 4, spelled out here (not taken from the package's own
# constants) so that tests check the code against the specification.
SPEC_METHODS: tuple[str, ...] = (
    "startJobServer",
    "shutdownJobServer",
    "getJob",
    "getWork",
    "jobRemove",
    "jobPause",
    "jobResume",
    "jobReady",
    "jobCancel",
    "jobRestart",
    "jobSave",
    "jobRerun",
    "jobProgress",
    "jobLog",
    "jobDone",
    "jobFail",
)


@contextmanager
def serving(server: Server) -> Iterator[str]:
    """Run ``server`` on 127.0.0.1 (a free port) until the block ends; yields its http URL."""
    urls: queue.Queue[str] = queue.Queue()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve("127.0.0.1", 0, ready=urls.put))
        except BaseException as error:  # reported to the test below
            failure.append(error)
            urls.put("")

    thread = threading.Thread(target=run, name="test-server", daemon=True)
    thread.start()
    url = urls.get(timeout=20)
    if failure:
        raise failure[0]
    try:
        yield url
    finally:
        server.stop()
        thread.join(timeout=20)


class DdpClient:
    """A blocking DDP client for tests: every received message is kept, in order."""

    def __init__(self, url: str, *, handshake: bool = True, source: str | None = None) -> None:
        # Entered as a context manager (websockets >= 17.1 warns on a bare connect()); no
        # websocket keepalive pings: DDP has its own, and theirs draw from the global random.
        # `source`: the local address to connect from (any 127.x.y.z is this machine).
        bind = {} if source is None else {"source_address": (source, 0)}
        self.ws: ClientConnection = connect(
            url.replace("http://", "ws://") + "/websocket", ping_interval=None, **bind
        ).__enter__()
        self.seen: list[dict[str, Any]] = []
        self._next_id = 0
        first = self.recv()
        assert first == {"server_id": "0"}
        if handshake:
            self.send({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]})
            reply = self.recv()
            assert reply["msg"] == "connected", reply
            self.session = reply["session"]

    def send(self, message: object) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        self.seen.append(message)
        return message

    def recv_until(self, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
        """Messages up to and including the first that satisfies ``predicate``."""
        got = []
        while True:
            message = self.recv(timeout)
            got.append(message)
            if predicate(message):
                return got

    def call_raw(self, method: str, params: list[Any]) -> list[dict[str, Any]]:
        """Send a method call; returns every message up to its `updated` (result included)."""
        self._next_id += 1
        call_id = f"m{self._next_id}"
        self.send({"msg": "method", "id": call_id, "method": method, "params": params})
        messages = self.recv_until(lambda m: m.get("msg") == "updated" and call_id in m["methods"])
        results = [m for m in messages if m.get("msg") == "result" and m.get("id") == call_id]
        assert len(results) == 1, messages
        return messages

    def call(self, method: str, *params: Any) -> Any:
        """The method's result; a DDP error is raised as ``CallFailed``."""
        result = next(m for m in self.call_raw(method, list(params)) if m.get("msg") == "result")
        if "error" in result:
            raise CallFailed(result["error"])
        return result.get("result")

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> DdpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CallFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error
        self.code = error.get("error")
        self.reason = error.get("reason")


def new_job_doc(job_type: str = "t", data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job document shaped as meteor-job 1.5.2 sends it (EJSON dates, `log`, no `_id`)."""
    forever = {"$date": 8640000000000000}
    return {
        "type": job_type,
        "data": data or {},
        "status": "waiting",
        "runId": None,
        "priority": 0,
        "retries": 1,
        "retryWait": 300000,
        "retryBackoff": "constant",
        "retryUntil": forever,
        "retried": 0,
        "repeats": 0,
        "repeatWait": 300000,
        "repeatRetries": 1,
        "repeatUntil": forever,
        "repeated": 0,
        "after": {"$date": 0},
        "updated": {"$date": 0},
        "created": {"$date": 0},
        "depends": [],
        "resolved": [],
        "progress": {"completed": 0, "total": 1, "percent": 0},
        "log": [{"time": {"$date": 0}, "runId": None, "level": "info", "message": "Constructed"}],
    }
