"""The CLI's consoles: `out` for results, `err` for errors; `print_json` for `--json`."""

from __future__ import annotations

from typing import Any

import orjson
import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def print_json(data: Any) -> None:
    """Indented JSON on stdout, without rich markup (for scripts)."""
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
