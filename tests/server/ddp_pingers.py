"""Many DDP connections on bare sockets, pinging the server from one thread, each pong timed
by the kernel: the round trip runs from just before the ping's `send` to the moment the pong's
bytes reached this machine's socket (`SO_TIMESTAMPNS`), so how late this test process gets
to read them (a loaded machine) is not counted against the server.

`Sample.answer` goes further: the round trip less the time the server's threads spent
runnable but not running meanwhile (Linux schedstat), i.e. how long the server took to
answer, not how long the machine's other processes kept it from running. A server waiting on
storage is not runnable (it sleeps on a lock), so that wait still counts in full."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field

from serve_harness import RawWebSocket

# A ping whose `send` itself took longer than this was delayed on our side: not a sample.
_SEND_SLACK_S = 0.005
_TIMESTAMP_SIZE = struct.calcsize("qq")
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), which Python's socket module names from 3.14 on;
# elsewhere the pong is timed when it is read.
_TIMESTAMPS = getattr(socket, "SO_TIMESTAMPNS", 35) if sys.platform == "linux" else None


@dataclass
class Sample:
    client: int
    sent: float  # time.time() just before the ping was sent
    round_trip: float | None = None  # None: no pong (yet)
    queued_at_send: float = 0.0  # the server's run-queue wait so far, when sent (s)
    queued: float = 0.0  # its run-queue wait between the send and the pong (at most)

    @property
    def answer(self) -> float | None:
        """The round trip less the server's run-queue wait meanwhile (see the module doc)."""
        return None if self.round_trip is None else max(self.round_trip - self.queued, 0.0)


class RunQueueWait:
    """How long a process's threads have waited on a run queue, in all (seconds; 0 where
    the kernel does not say)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._files: dict[str, int] = {}
        self._listed = 0.0

    def __call__(self) -> float:
        if self.pid is None:
            return 0.0
        if time.monotonic() - self._listed > 0.2:  # threads come and go
            self._list()
        total = 0
        for tid, fd in list(self._files.items()):
            try:
                total += int(os.pread(fd, 200, 0).split()[1])
            except (OSError, IndexError, ValueError):
                os.close(self._files.pop(tid))
        return total / 1e9

    def _list(self) -> None:
        self._listed = time.monotonic()
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            if tid not in self._files:
                with contextlib.suppress(OSError):
                    self._files[tid] = os.open(
                        f"/proc/{self.pid}/task/{tid}/schedstat", os.O_RDONLY
                    )

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()


@dataclass
class _Peer:
    number: int
    ws: RawWebSocket
    buffer: bytearray = field(default_factory=bytearray)
    waiting: dict[str, Sample] = field(default_factory=dict)
    closed: bool = False


class Pingers:
    """`count` DDP connections (handshake done) that each ping every `every` seconds while
    `run` runs (in a thread of its own), answering the server's pings too."""

    def __init__(
        self, base_url: str, count: int, every: float, server_pid: int | None = None
    ) -> None:
        self.every = every
        self.run_queue_wait = RunQueueWait(server_pid if sys.platform == "linux" else None)
        self.samples: list[Sample] = []
        self.peers: list[_Peer] = []
        try:
            self._connect(base_url, count)
        except BaseException:
            self.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pingers", daemon=True)
        self.failure: BaseException | None = None

    def _connect(self, base_url: str, count: int) -> None:
        for number in range(count):
            ws = RawWebSocket(base_url)
            ws.connect()
            peer = _Peer(number, ws)
            self.peers.append(peer)
            while not any(m.get("msg") == "connected" for m in self._read_blocking(peer)):
                pass
            if _TIMESTAMPS is not None:
                ws.sock.setsockopt(socket.SOL_SOCKET, _TIMESTAMPS, 1)
            ws.sock.setblocking(False)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def close(self) -> None:
        for peer in self.peers:
            peer.ws.close()
        self.run_queue_wait.close()

    @property
    def dropped(self) -> list[int]:
        return [peer.number for peer in self.peers if peer.closed]

    def _read_blocking(self, peer: _Peer) -> list[dict[str, object]]:
        chunk = peer.ws.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection during the handshake")
        peer.buffer += chunk
        return list(_messages(peer))

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # reported by the test
            self.failure = error

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        for peer in self.peers:
            selector.register(peer.ws.sock, selectors.EVENT_READ, peer)
        start = time.monotonic()
        due = [start + n * self.every / len(self.peers) for n in range(len(self.peers))]
        counter = 0
        while not self._stop.is_set():
            now = time.monotonic()
            queued = None
            for peer in self.peers:
                if due[peer.number] <= now and not peer.closed:
                    counter += 1
                    if queued is None:
                        queued = self.run_queue_wait()
                    self._ping(peer, f"p{counter}", queued)
                    due[peer.number] = max(due[peer.number] + self.every, now)
            wait = max(min(due) - time.monotonic(), 0)
            for key, _ in selector.select(timeout=wait):
                self._receive(key.data)

    def _ping(self, peer: _Peer, ping_id: str, queued: float) -> None:
        frame = RawWebSocket.frame(json.dumps({"msg": "ping", "id": ping_id}))
        before = time.time()
        peer.ws.sock.sendall(frame)
        if time.time() - before > _SEND_SLACK_S:
            return  # we were descheduled around the send: the pong is not timed
        sample = Sample(peer.number, before, queued_at_send=queued)
        peer.waiting[ping_id] = sample
        self.samples.append(sample)

    def _receive(self, peer: _Peer) -> None:
        try:
            data, ancillary, _, _ = peer.ws.sock.recvmsg(65536, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return
        if not data:
            peer.closed = True
            return
        arrived = time.time()
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _TIMESTAMPS:
                seconds, nanoseconds = struct.unpack("qq", value[:_TIMESTAMP_SIZE])
                arrived = seconds + nanoseconds / 1e9
        peer.buffer += data
        queued = None
        for message in _messages(peer):
            if message.get("msg") == "pong":
                sample = peer.waiting.pop(str(message.get("id")), None)
                if sample is not None:
                    sample.round_trip = arrived - sample.sent
                    if queued is None:
                        queued = self.run_queue_wait()
                    # (measured when read: at most the wait up to the pong's arrival)
                    sample.queued = min(queued - sample.queued_at_send, sample.round_trip)
            elif message.get("msg") == "ping":
                pong = {"msg": "pong", **({"id": message["id"]} if "id" in message else {})}
                peer.ws.sock.sendall(RawWebSocket.frame(json.dumps(pong)))


def _messages(peer: _Peer) -> list[dict[str, object]]:
    """The whole frames in the peer's buffer (server frames are unmasked), decoded."""
    out: list[dict[str, object]] = []
    buffer = peer.buffer
    while len(buffer) >= 2:
        opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                break
            size, start = struct.unpack("!H", buffer[2:4])[0], 4
        elif size == 127:
            if len(buffer) < 10:
                break
            size, start = struct.unpack("!Q", buffer[2:10])[0], 10
        if len(buffer) < start + size:
            break
        payload = bytes(buffer[start : start + size])
        del buffer[: start + size]
        if opcode == 0x8:
            peer.closed = True
        elif opcode == 0x1:
            message = json.loads(payload)
            if isinstance(message, dict):
                out.append(message)
    return out
