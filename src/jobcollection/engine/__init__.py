"""The job engine: runs the 16 operations on a storage port. Imports `core` and `storage.port`."""
