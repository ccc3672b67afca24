"""`python -m opsroom` runs the CLI."""

from opsroom.cli.main import main

main()
