"""The Python API: Job, JobCollection, JobQueue — one implementation over any transport."""
