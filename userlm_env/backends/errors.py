"""Errors raised by generation backends.

A :class:`BackendError` means the *backend* failed (a model server is down, too slow, or answers
garbage), not that the caller did something wrong. The env catches it around its user's turns and
ends the episode as truncated (``info["end_reason"] == "user_error"``, ``info["error"]``) instead of
crashing the run.
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A generation backend could not produce a result.

    Attributes:
        url: the server involved, when there is one.
        status: the HTTP status of the last response, when there was one.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ServerUnavailableError(BackendError):
    """No server could be reached (connection refused/reset, timeouts, 5xx) after every retry."""


class ServerResponseError(BackendError):
    """A server answered, but with an error that retrying will not fix (4xx) or a malformed body."""
