"""`python -m infra.cli …` is the `keypulse` command."""

from infra.cli.main import main

main()
