"""Small runnable examples (see README.md)."""
