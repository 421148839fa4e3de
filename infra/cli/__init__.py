"""The `keypulse` command line: `main.py` mounts the commands, one module per group."""
