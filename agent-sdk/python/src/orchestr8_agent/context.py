"""What an agent knows about the call it is handling."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from . import _wit
from .errors import AgentError, SecretError
from .schema import SchemaError, decode

__all__ = ["Context"]

T = TypeVar("T")


class Context:
    """One invocation: its ids, attempt, deadline and configuration, and
    the host services that depend on the call (secrets, cancellation)."""

    def __init__(
        self,
        execution_id: str,
        step_id: str,
        attempt: int,
        deadline_unix_ms: int,
        config: dict[str, Any],
    ) -> None:
        self.execution_id = execution_id
        """The workflow execution (a fresh id for a call outside any workflow)."""
        self.step_id = step_id
        """The workflow step (empty outside a workflow)."""
        self.attempt = attempt
        """1 for the first attempt; a retry of the same step has 2, 3, ..."""
        self.deadline_unix_ms = deadline_unix_ms
        """When the host stops this attempt, in ms since the Unix epoch."""
        self.config = config
        """The agent's configuration from the workflow or project (a dict)."""

    @property
    def idempotency_key(self) -> str:
        """``<execution id>:<step id>``: the same for every attempt of this
        step, also after its execution is resumed in another process (a step
        that was running when its host died runs again). An agent with
        effects outside (a payment, an email) sends it along, or keeps it,
        so doing the work twice has the effect once."""
        return f"{self.execution_id}:{self.step_id}"

    def config_as(self, tp: type[T]) -> T:
        """The configuration read as ``tp`` (a dataclass, typically); a
        mismatch is an invalid-input error naming the field."""
        try:
            return decode(tp, self.config)
        except SchemaError as e:
            raise AgentError.invalid_input(f"invalid config: {e}") from None

    def time_left(self) -> float:
        """Seconds until the deadline (0 once it has passed)."""
        return max(0.0, self.deadline_unix_ms / 1000 - time.time())

    def is_cancelled(self) -> bool:
        """True once the execution has been cancelled: return early."""
        return _wit.host.is_cancelled()

    def secret(self, name: str) -> str:
        """A granted secret's value. Raises :class:`SecretError`. Never log
        the value or return it in the output."""
        try:
            return _wit.host.get_secret(name)
        except _wit.Err as e:
            reason = "not-granted" if e.value == _wit.host.SecretError.NOT_GRANTED else "not-set"
            raise SecretError(name, reason) from None
