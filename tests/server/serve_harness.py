"""`jobcollection serve` as a subprocess (restartable on a fixed port, its memory measurable),
and a raw websocket client that sends and never reads (what a stalled or hostile peer does)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

SERVE_START_S = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def subprocess_env() -> dict[str, str]:
    """This checkout's package, none of the caller's JOBCOLLECTION_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCOLLECTION_")}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


class ServerProcess:
    """`jobcollection serve` in a subprocess on a fixed port, so that it can be restarted."""

    def __init__(self, db: Path, port: int, logs: Path, *extra: str) -> None:
        self.db, self.port, self.logs = db, port, logs
        self.extra = extra
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None
        self.starts += 1
        out = self.logs / f"serve-{self.starts}.out"
        err = self.logs / f"serve-{self.starts}.err"
        command = [sys.executable, "-m", "jobcollection", "serve", "--db", str(self.db)]
        command += ["--port", str(self.port), "--allow", "admin=anyone", "--promote", "500"]
        command += self.extra
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=subprocess_env(),
            )
        process = self.process
        deadline = time.monotonic() + SERVE_START_S
        while "serving" not in out.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"jobcollection serve did not start: {err.read_text()}")
            time.sleep(0.02)

    def stderr(self) -> str:
        return "".join(
            (self.logs / f"serve-{n}.err").read_text() for n in range(1, self.starts + 1)
        )

    def rss(self) -> int:
        """The server's resident memory now, in bytes."""
        assert self.process is not None
        rss: int = psutil.Process(self.process.pid).memory_info().rss
        return rss

    def crash(self) -> None:
        """Freeze the server for a moment (the worker's calls pile up unanswered), then
        SIGKILL it: the calls in flight are lost with it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        self.process.send_signal(signal.SIGKILL)
        self.stop()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM (what an operator's restart does), then wait for the process to end;
        returns its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        return process.returncode


class RawWebSocket:
    """A websocket client on a bare socket: it opens `/websocket`, sends text frames and
    never reads one (so the server's replies pile up on its side)."""

    def __init__(self, base_url: str, *, timeout: float = 10, receive_buffer: int = 0) -> None:
        """``receive_buffer``: a small socket receive buffer, so that unread data backs up
        into the server soon (0: the system's default)."""
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /websocket HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError(f"the server closed the connection: {head!r}")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    @staticmethod
    def frame(text: str) -> bytes:
        """One masked text frame (clients must mask)."""
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        key = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload) ^ int.from_bytes(key)).to_bytes(size)
        return header + mask + masked

    def send(self, message: object) -> None:
        self.sock.sendall(self.frame(message if isinstance(message, str) else json.dumps(message)))

    def connect(self) -> None:
        self.send({"msg": "connect", "version": "1", "support": ["1"]})

    def close(self) -> None:
        """Drop the connection at once (no closing handshake)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
