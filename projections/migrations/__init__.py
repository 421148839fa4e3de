"""Numbered migrations. Each module `NNNN_name.py` defines `statements(ctx) -> list[str]`."""
