"""`python -m corpus` runs the `corpus` command."""

from corpus.cli import main

main()
