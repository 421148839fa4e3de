"""`keypulse secrets …`: the master key that wraps channel secrets at rest. Filled in by
the secrets work of issue 16."""

from __future__ import annotations

import typer

secrets_app = typer.Typer(help="The master key of channel secrets at rest.", no_args_is_help=True)
