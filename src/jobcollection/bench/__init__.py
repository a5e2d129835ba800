"""Benchmarks: our job queue measured against peers (see ``huey_peer`` for huey)."""
