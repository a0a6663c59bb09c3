"""The capture package's exceptions."""

from __future__ import annotations


class CaptureError(Exception):
    """Anything that stops the capture proxy from starting or running (bad arguments, a
    listener that can't bind, a corpus that can't be appended to)."""
