"""The `keypulse` console script: the CLI, or a clear message when the extra is missing.

The base install (`pip install keypulse`) is the client library alone; the command line
needs the `server` extra. Importing the CLI without it fails on its first third-party
import, so this launcher catches that and says what to install.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from infra.cli.main import main as run
    except ModuleNotFoundError as exc:
        sys.stderr.write(
            f"keypulse: the command line needs the server extra ({exc.name} is not installed);"
            " install it with: pip install 'keypulse[server]'\n"
        )
        raise SystemExit(2) from None
    run()
