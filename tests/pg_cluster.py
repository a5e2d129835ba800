"""A private PostgreSQL cluster for one test: made with `initdb` in a temporary folder, started
on a free port of 127.0.0.1, and stopped (fast or immediate, i.e. a crash) and started again
at will; removed afterwards, also when the test fails.

It is for tests that stop the server, which the shared test server (`pg_support`) must never
be. The binaries are found in `$JOBCOLLECTION_TEST_PG_BIN`, else in the newest
`/usr/lib/postgresql/*/bin`, else on the PATH. Without them the test is skipped with one line
saying so, unless `$CI` is set: then it fails (`pg_support.unavailable`). PostgreSQL refuses
to run as root: as root, the cluster belongs to the `postgres` user and its commands run as
that user (`runuser`).

The cluster runs with `fsync = off`: a test stops it with `immediate` (every server process
killed at once), which loses nothing the operating system was handed; a commit hands its WAL
to the system before it returns, so what a crash of PostgreSQL can lose is the same with or
without fsync (only a crash of the machine differs).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pg_support import unavailable

ENV_BIN = "JOBCOLLECTION_TEST_PG_BIN"
START_TIMEOUT_S = 60
_SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=60"
)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_binaries() -> Path | None:
    """The folder of `initdb`, `pg_ctl` and `postgres`, if there is one."""
    wanted = ("initdb", "pg_ctl", "postgres")
    candidates = [os.environ.get(ENV_BIN, "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for folder in filter(None, candidates):
        if all((Path(folder) / name).is_file() for name in wanted):
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """One private cluster (see the module doc): `url`, `start()`, `stop(mode)`."""

    def __init__(self, binaries: Path, folder: Path, run_as: str | None) -> None:
        self.binaries = binaries
        self.folder = folder
        self.data = folder / "data"
        self.logfile = folder / "postgres.log"
        self.run_as = run_as
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False

    def _run(self, tool: str, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        command = [str(self.binaries / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.folder,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}\n"
                f"{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it takes connections."""
        options = f"-p {self.port} -k {self.folder} {_SERVER_OPTIONS}"
        args = ["-D", str(self.data), "-l", str(self.logfile), "-o", options]
        self._run("pg_ctl", *args, "-w", "-t", str(START_TIMEOUT_S), "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (sessions ended, a clean shutdown) or `immediate` (every
        process killed at once: recovery replays the WAL at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def close(self) -> None:
        if self.running:
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass


def _owner() -> str | None:
    """The user the cluster runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        unavailable("a private PostgreSQL cluster: running as root and there is no postgres user")
    return "postgres"


@contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A started private cluster; stopped and removed when the block ends, however it ends."""
    binaries = find_binaries()
    if binaries is None:
        unavailable(
            "a private PostgreSQL cluster needs initdb, pg_ctl and postgres: "
            f"install PostgreSQL or set {ENV_BIN}"
        )
    run_as = _owner()
    folder = Path(tempfile.mkdtemp(prefix="jc-pg-"))
    try:
        if run_as is not None:
            shutil.chown(folder, run_as, run_as)
        cluster = PgCluster(binaries, folder, run_as)
        try:
            cluster.init()
            cluster.start()
            yield cluster
        finally:
            cluster.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    """Poll `predicate` (a callable) every 20 ms until it is true, at most `timeout` s."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
