"""`python -m infra.cli …` is the `keypulse` command."""

from infra.cli.launcher import main

main()
