"""Set-up shared by every tier of the suite."""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Deliver SIGINT if the session started with it ignored.

    A suite started as a background job of a non-interactive shell (`pytest &`, a script's
    `nohup … &`, some CI runners) inherits SIGINT ignored (POSIX), and so does every child it
    starts: Python keeps an inherited SIG_IGN, so a test that stops its `replay` child with
    Ctrl-C would wait forever. This was the "something leaves SIGINT ignored" of earlier full
    runs under load: nothing in the suite ignores it; those runs were started with `&`."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
