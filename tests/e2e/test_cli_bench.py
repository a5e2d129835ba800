"""`jobcollection bench` (and `python -m jobcollection.bench`): our own benchmark, run from the
installed package on temporary databases of its own, loading no other job queue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobcollection.cli.main import main

PEERS = ("huey", "celery", "kombu", "redis", "psutil")

PROBE = """
import json, sys
from jobcollection.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "loaded": [m for m in {peers!r} if m in sys.modules]}}))
"""


def test_enqueue_figures_come_from_the_package_alone(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    probe = PROBE.format(peers=list(PEERS))
    argv = ["bench", "--enqueue-only", "--quick", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 0, "loaded": []}
    report = json.loads(out.read_text("utf-8"))
    assert set(report) == {"machine", "storage", "jobcollection", "seconds"}
    assert report["storage"] == "sqlite"
    figures = report["jobcollection"]
    for name in ("enqueue_per_s", "enqueue_batched_per_s", "raw_sqlite_batched_per_s"):
        assert figures[name] > 0, (name, figures[name])
        assert len(figures[f"{name}_runs"]) == 3
    # The printed report is the one written to --out.
    printed = done.stdout[: done.stdout.rindex("\n{")]
    assert json.loads(printed) == report


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--db", "jobs.db", "bench"], "--db: bench works on temporary databases of its own"),
        (
            ["--server", "ws://127.0.0.1:3000/websocket", "bench"],
            "--server: bench works on temporary databases of its own",
        ),
        (["bench", "--backlog", "0"], "--backlog: must be a whole number above 0, got '0'"),
        (["bench", "--db", "jobs.db"], "unrecognized arguments: --db jobs.db"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_bench_is_listed_and_python_m_runs_the_same_options() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "jobcollection", "--help"], capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert "bench" in listed.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "jobcollection.bench", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: python -m jobcollection.bench")
    for option in ("--quick", "--server", "--backlog", "--enqueue-only", "--out"):
        assert option in helped.stdout
    assert "huey" not in helped.stdout
