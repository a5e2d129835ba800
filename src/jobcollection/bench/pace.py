"""The pace of the enqueue -> start samples, shared with the peers' harness in the
repository's ``benchmarks/peers`` so that every latency figure is taken at the same pace."""

from __future__ import annotations

# The pause between two enqueue -> start samples, taken once the previous task has started:
# the same pace for every peer and for our own figures, so their latencies compare.
LATENCY_GAP_S = 0.005
# The same samples 20 ms apart: long enough for the machine to fall idle between tasks, so
# every process on the way has to be woken first (slower on this VM, for everyone).
QUIET_GAP_S = 0.02
