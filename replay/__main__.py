"""`python -m replay` runs the `replay` command (and `python -m replay serve` the engine)."""

from replay.cli import main

if __name__ == "__main__":
    main()
