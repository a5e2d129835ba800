"""Benchmark scripts of the repository (not installed with the package).

``side_by_side`` runs our benchmark and the peers' (``peers``) in one run:
``python -m benchmarks.side_by_side`` from the repository root.
"""
