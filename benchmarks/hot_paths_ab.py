"""The hot paths of two source trees, in alternating short rounds: did a change move them?

    git archive main src | tar -x -C /tmp/before     # the tree to compare with
    python benchmarks/hot_paths_ab.py --before /tmp/before/src --after src --rounds 6

Each round runs every figure of `jobcollection.bench.ours` that a schema or storage change can
move (single saves, batched saves, processing c1 p1 and c4 p10, one-job claims), once per
tree, in a fresh process, the trees' order alternating from round to round. On a shared
machine whose speed drifts by tens of per cent within minutes this compares far better than
two whole `python -m jobcollection.bench` runs taken minutes apart. Prints the medians and
their ratio (after / before; above 1 is faster) with every round's figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_FIGURE = """
import json, sys
from jobcollection.bench import ours
what = sys.argv[1]
if what == "save":
    rate = ours.enqueue_rate(8000)
elif what == "batch":
    rate = ours.enqueue_batched_rate(40000, 1000)
elif what == "c1p1":
    rate = ours.process_rate(8000, 1, 1)
elif what == "c4p10":
    rate = ours.process_rate(20000, 4, 10)
else:
    rate = _claims()
print(json.dumps(rate))
"""
_CLAIMS = """
import tempfile, time
from pathlib import Path
from jobcollection import Job, JobCollection

def _claims():
    # One-job claims beside 20,000 jobs waiting far in the future: the best of five rounds
    # of 1,000 (the steadiest of these figures: the mean of one long run drifts with the
    # machine).
    with tempfile.TemporaryDirectory() as folder:
        with JobCollection("bench", str(Path(folder) / "claims.db")) as jc:
            far = jc.forever_date - 1
            for _ in range(4):
                jc.save_jobs([Job(jc, "noop", {}).after(far) for _ in range(5000)])
            jc.save_jobs([Job(jc, "noop", {}) for _ in range(5200)])
            jc.start_job_server()
            for _ in range(200):
                jc.get_work("noop")
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(1000):
                    jc.get_work("noop")
                best = min(best, time.perf_counter() - started)
    return 1000 / best
"""
FIGURES = {
    "save": "single saves / s",
    "batch": "batched saves / s",
    "c1p1": "processed / s, c1 p1",
    "c4p10": "processed / s, c4 p10",
    "claim": "one-job claims / s (best of 5 x 1,000)",
}


def _figure(source: Path, what: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(source.resolve()))
    done = subprocess.run(
        [sys.executable, "-c", _CLAIMS + _FIGURE, what],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(os.sep),  # not a checkout: the tree comes from PYTHONPATH only
    )
    return float(json.loads(done.stdout))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/hot_paths_ab.py")
    parser.add_argument("--before", type=Path, required=True, help="a tree's src folder")
    parser.add_argument("--after", type=Path, required=True, help="a tree's src folder")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--only", choices=FIGURES, action="append", help="these figures only")
    args = parser.parse_args(argv)
    trees = {"before": args.before, "after": args.after}
    figures = {what: FIGURES[what] for what in (args.only or FIGURES)}
    results: dict[str, dict[str, list[float]]] = {name: {w: [] for w in figures} for name in trees}
    for round_number in range(args.rounds):
        order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
        for what in figures:
            for name in order:
                results[name][what].append(_figure(trees[name], what))
    report = {}
    for what, label in figures.items():
        before, after = results["before"][what], results["after"][what]
        report[label] = {
            "before_median": round(statistics.median(before)),
            "after_median": round(statistics.median(after)),
            "after_over_before": round(statistics.median(after) / statistics.median(before), 3),
            "before": [round(x) for x in before],
            "after": [round(x) for x in after],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
