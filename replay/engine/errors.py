"""The simulated engine's exceptions; the API modules map them to each API's error shape."""

from __future__ import annotations


class EngineError(Exception):
    """Base of everything the simulated engine raises on purpose."""

    status = 500


class InvalidRequest(EngineError):
    """A request the API rejects with 400: bad JSON, a missing or mistyped field."""

    status = 400

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ContextLengthExceeded(InvalidRequest):
    """Prompt + max_tokens beyond the model's context, or more KV than the engine holds."""

    def __init__(self, message: str, *, param: str | None = "messages") -> None:
        super().__init__(message, param=param, code="context_length_exceeded")


class Overloaded(EngineError):
    """The waiting queue is at `max_queue`: the API answers 429."""

    status = 429


class EngineStopped(EngineError):
    """The engine shut down while a request was queued or generating."""

    status = 503


class CatalogError(EngineError, ValueError):
    """A GPU, model or serving setup the catalogues cannot model, or a malformed catalogue file."""

    status = 400
