"""Our own benchmark: `jobcollection bench` (or `python -m jobcollection.bench`).

`ours` measures the queue in-process (enqueue, processing, latency, claim time, memory),
`server` the network figures (DDP round trips, fan-out, node and Python workers), `report`
runs them and prints JSON. Other job queues measured beside ours live in the repository, not
in the package: `python -m benchmarks.side_by_side`.
"""
