"""How long a list answer may be (shared by the HTTP API and the CLI; no framework import)."""

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
