"""How an agent fails: the three kinds the host's resilience chain knows."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["AgentError", "SecretError"]


class AgentError(Exception):
    """A failure the host classifies by kind, never by its message.

    Raise one of :meth:`invalid_input` (the input or config is wrong: no
    retry can help), :meth:`retryable` (transient: a retry may succeed,
    optionally not before ``retry_after_ms``) or :meth:`fatal` (permanent).
    Never put secret values in the message or the details.
    """

    INVALID_INPUT = "invalid-input"
    RETRYABLE = "retryable"
    FATAL = "fatal"

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        details: Any = None,
        retry_after_ms: int | None = None,
    ) -> None:
        if kind not in (self.INVALID_INPUT, self.RETRYABLE, self.FATAL):
            raise ValueError(f"unknown agent error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details
        self.retry_after_ms = retry_after_ms

    @classmethod
    def invalid_input(cls, message: str, *, details: Any = None) -> AgentError:
        return cls(cls.INVALID_INPUT, message, details=details)

    @classmethod
    def retryable(
        cls, message: str, *, retry_after_ms: int | None = None, details: Any = None
    ) -> AgentError:
        return cls(cls.RETRYABLE, message, details=details, retry_after_ms=retry_after_ms)

    @classmethod
    def fatal(cls, message: str, *, details: Any = None) -> AgentError:
        return cls(cls.FATAL, message, details=details)

    def details_text(self) -> str | None:
        """The details as the JSON text the contract carries."""
        if self.details is None:
            return None
        return json.dumps(self.details, default=str)


class SecretError(AgentError):
    """A secret could not be read: ``reason`` is ``"not-granted"`` (the
    agent's grants do not name it; the host records a denied capability) or
    ``"not-set"`` (granted, but without a value here). Uncaught, it fails
    the call as fatal."""

    def __init__(self, name: str, reason: str) -> None:
        what = (
            "is not granted to this agent"
            if reason == "not-granted"
            else "is granted but has no value"
        )
        super().__init__(self.FATAL, f"the secret `{name}` {what}")
        self.name = name
        self.reason = reason
