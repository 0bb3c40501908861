"""Payment domain: plain Python, no I/O."""
