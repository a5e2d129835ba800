"""Round trips of a well-behaved client while another client floods the server and never reads.

    python benchmarks/flood_latency.py [--calls 100000] [--samples 3000]

Starts `jobcollection serve` on a fresh database, then measures a probe client's `getJob`
round trips (one at a time) in three phases: quiet; while a second connection sends
``--calls`` small calls without reading a single answer; while a third sends half-megabyte
pings without reading the pongs. Prints p50/p99/max per phase, the server's RSS growth and
the CPU time it spent during the probe (psutil: the flood kept it busy meanwhile). Goal: p99
under 50 ms during the floods, RSS growth under 50 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from websockets.sync.client import ClientConnection, connect

_SERVING = re.compile(r"at (ws://\S+/websocket)")
MB = 1 << 20


@contextmanager
def serve() -> Iterator[tuple[str, psutil.Process]]:
    with tempfile.TemporaryDirectory(prefix="jc-flood-") as tmp:
        command = [sys.executable, "-m", "jobcollection", "serve", "--db", f"{tmp}/flood.db"]
        command += ["--port", "0", "--allow", "admin=anyone"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            found = _SERVING.search(process.stdout.readline())
            if found is None:
                raise RuntimeError("the server did not start")
            yield found.group(1), psutil.Process(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)


def open_ddp(url: str) -> ClientConnection:
    # max_queue=1: once a message is waiting unread, the client stops reading its socket
    ws = connect(url, ping_interval=None, max_queue=1, compression=None).__enter__()
    ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
    return ws


def round_trip(ws: ClientConnection, n: int) -> float:
    started = time.perf_counter()
    call_id = f"probe{n}"
    ws.send(json.dumps({"msg": "method", "id": call_id, "method": "queue_getJob", "params": ["x"]}))
    while True:
        message = json.loads(ws.recv(timeout=30))
        if message.get("msg") == "updated" and call_id in message["methods"]:
            return (time.perf_counter() - started) * 1000


class Flood:
    """A connection that sends frames from a thread and never reads: once the server stops
    reading it, its sends block until `stop` closes the socket under them."""

    def __init__(self, url: str, frames: Iterator[str]) -> None:
        self.ws = open_ddp(url)
        self.frames = frames
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for frame in self.frames:
                self.ws.send(frame)
                self.sent += 1
        except Exception:
            pass  # closed under us by `stop`

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # a blocked send holds the client's lock
            self.ws.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=10)
        self.ws.close_socket()


def measure(
    url: str, server: psutil.Process, samples: int, frames: Iterator[str] | None
) -> dict[str, float]:
    before = peak = server.memory_info().rss
    flooder = None if frames is None else Flood(url, frames)
    if flooder is not None:
        time.sleep(1.0)  # let the flood fill every buffer on the way
    latencies = []
    sent_at_start = 0 if flooder is None else flooder.sent
    cpu_before = sum(server.cpu_times()[:2])
    started = time.perf_counter()
    with closing_ddp(url) as probe:
        for n in range(samples):
            latencies.append(round_trip(probe, n))
            if n % 50 == 0:
                peak = max(peak, server.memory_info().rss)
            time.sleep(0.002)
    probe_s = time.perf_counter() - started
    server_cpu_s = sum(server.cpu_times()[:2]) - cpu_before
    sent = 0
    if flooder is not None:
        sent = flooder.sent
        flooder.stop()
    latencies.sort()
    return {
        "samples": samples,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(samples * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
        "flood_frames_sent_before_probe": sent_at_start,
        "flood_frames_sent_by_end": sent,
        "probe_s": round(probe_s, 1),
        "server_cpu_s": round(server_cpu_s, 1),  # how busy the server was meanwhile
        "rss_mb": round(before / MB, 1),
        "rss_growth_mb": round((peak - before) / MB, 1),
    }


@contextmanager
def closing_ddp(url: str) -> Iterator[ClientConnection]:
    ws = open_ddp(url)
    try:
        json.loads(ws.recv(timeout=10))  # server_id
        json.loads(ws.recv(timeout=10))  # connected
        yield ws
    finally:
        ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()
    calls = (
        json.dumps({"msg": "method", "id": f"f{n}", "method": "queue_getJob", "params": [f"n{n}"]})
        for n in range(args.calls)
    )
    big = "x" * (512 * 1024)
    pings = (json.dumps({"msg": "ping", "id": big}) for _ in range(10_000))
    with serve() as (url, server):
        with closing_ddp(url) as warm:
            for n in range(500):
                round_trip(warm, n)
        results = {
            "quiet": measure(url, server, args.samples, None),
            "flood_of_calls": measure(url, server, args.samples, calls),
            "flood_of_big_pings": measure(url, server, args.samples, pings),
        }
    for phase, figures in results.items():
        print(f"{phase:20} {json.dumps(figures)}")
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]} cpus: {psutil.cpu_count()}")


if __name__ == "__main__":
    main()
