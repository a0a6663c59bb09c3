"""`python -m stats` runs the `stats` command."""

from stats.cli import main

main()
