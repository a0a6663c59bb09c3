"""`python -m replay.engine`: the same command as `replay serve`."""

from replay.engine.cli import app

app(prog_name="python -m replay.engine")
