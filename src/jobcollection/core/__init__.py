"""Pure job-collection rules: no I/O, clock reads or threads; imports only stdlib and errors."""
