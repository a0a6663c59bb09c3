"""`python -m capture …` runs the `capture` command."""

from capture.cli import main

main()
