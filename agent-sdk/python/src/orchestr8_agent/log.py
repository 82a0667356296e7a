"""Structured logs and progress events, sent to the host.

The host attaches the execution, step and attempt, caps the volume per
invocation and redacts granted secret values::

    from orchestr8_agent import log
    log.info("fetched", url=url, status=200)
    log.emit("progress", {"percent": 40})
"""

from __future__ import annotations

import json
from typing import Any

from . import _wit

__all__ = ["trace", "debug", "info", "warn", "error", "emit"]


def _write(level: str, message: str, fields: dict[str, Any]) -> None:
    pairs = [(str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in fields.items()]
    _wit.host.log(getattr(_wit.host.LogLevel, level), message, pairs)


def trace(message: str, **fields: Any) -> None:
    _write("TRACE", message, fields)


def debug(message: str, **fields: Any) -> None:
    _write("DEBUG", message, fields)


def info(message: str, **fields: Any) -> None:
    _write("INFO", message, fields)


def warn(message: str, **fields: Any) -> None:
    _write("WARN", message, fields)


def error(message: str, **fields: Any) -> None:
    _write("ERROR", message, fields)


def emit(kind: str, payload: Any) -> None:
    """A progress event (``kind`` such as ``"progress"``) that observers of
    the execution receive; ``payload`` is anything JSON can hold."""
    _wit.host.emit_event(kind, json.dumps(payload, default=str))
