"""Write orchestr8 agents in Python.

An agent is a WebAssembly component built with componentize-py against the
``orchestr8:agent`` WIT world. This package hides the WIT plumbing: describe
the input and output as dataclasses, implement :meth:`Agent.process`, and
export the agent as the component's ``Handler``. The JSON Schemas the host
shows for the agent come from the same dataclasses::

    from dataclasses import dataclass
    from orchestr8_agent import Agent, AgentError, Context, export, log

    @dataclass
    class Input:
        name: str

    @dataclass
    class Output:
        greeting: str

    class Greeter(Agent[Input, Output]):
        id = "@example/greeter"
        version = "0.1.0"
        description = "Greets whoever it is given."

        def process(self, input: Input, ctx: Context) -> Output:
            if not input.name:
                raise AgentError.invalid_input("name must not be empty")
            log.info("greeting someone", name=input.name)
            return Output(greeting=f"Hello, {input.name}!")

    Handler = export(Greeter)

Every call runs in a fresh sandbox: keep no state between calls. What the
agent may touch (secrets, outbound hosts) is granted by the host.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from . import _wit, http, log
from .context import Context
from .errors import AgentError, SecretError
from .schema import SchemaError, decode, encode, input_schema, output_schema

__all__ = [
    "Agent",
    "AgentError",
    "Context",
    "SecretError",
    "SchemaError",
    "export",
    "http",
    "log",
]

I = TypeVar("I")  # noqa: E741 - mirrors the Rust SDK's Input
O = TypeVar("O")  # noqa: E741


class Agent(Generic[I, O]):
    """An orchestr8 agent: subclass it as ``Agent[Input, Output]``, set
    ``id`` (``@scope/name``), ``version`` and ``description``, implement
    :meth:`process`."""

    id: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    input_type: ClassVar[Any] = Any
    output_type: ClassVar[Any] = Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Agent:
                cls.input_type, cls.output_type = get_args(base)

    def process(self, input: I, ctx: Context) -> O:
        """Handles one invocation. Raise :class:`AgentError` to fail it."""
        raise NotImplementedError


def export(agent: type[Agent[Any, Any]]) -> type:
    """The component's ``Handler`` export for ``agent``. Assign it to a
    module-level ``Handler`` in the module componentize-py builds."""
    wit = _wit.types
    for attr in ("id", "version", "description"):
        if not isinstance(getattr(agent, attr, None), str):
            raise TypeError(f"{agent.__name__}.{attr} must be a string")
    # Computed once, when componentize-py pre-initialises the component.
    info = wit.AgentInfo(
        id=agent.id,
        version=agent.version,
        description=agent.description,
        input_schema=json.dumps(input_schema(agent.input_type)),
        output_schema=json.dumps(output_schema(agent.output_type)),
    )
    instance = agent()

    class Handler(_wit.exports.Handler):
        def info(self) -> wit.AgentInfo:
            return info

        def process(self, invocation: wit.Invocation) -> str:
            try:
                return _process(instance, invocation)
            except AgentError as e:
                raise _wit.Err(_wit_error(wit, e)) from None
            except Exception as e:  # a bug in the agent: fatal, traceback to stderr
                traceback.print_exc(file=sys.stderr)
                failure = AgentError.fatal(f"unhandled {type(e).__name__}: {e}")
                raise _wit.Err(_wit_error(wit, failure)) from None

    Handler.__name__ = Handler.__qualname__ = "Handler"
    return Handler


def _process(agent: Agent[Any, Any], invocation: Any) -> str:
    try:
        raw = json.loads(invocation.input)
    except ValueError as e:
        raise AgentError.invalid_input(f"input is not JSON: {e}") from None
    try:
        data = decode(type(agent).input_type, raw)
    except SchemaError as e:
        raise AgentError.invalid_input(
            f"input does not match {type(agent).id}'s input schema: {e}"
        ) from None
    try:
        config = json.loads(invocation.config or "{}")
    except ValueError as e:
        raise AgentError.invalid_input(f"config is not JSON: {e}") from None
    ctx = Context(
        execution_id=invocation.execution_id,
        step_id=invocation.step_id,
        attempt=invocation.attempt,
        deadline_unix_ms=invocation.deadline_unix_ms,
        config=config if isinstance(config, dict) else {},
    )
    output = agent.process(data, ctx)
    return json.dumps(encode(output))


def _wit_error(wit: Any, error: AgentError) -> Any:
    info = wit.ErrorInfo(
        message=error.message,
        details=error.details_text(),
        retry_after_ms=error.retry_after_ms,
    )
    if error.kind == AgentError.INVALID_INPUT:
        return wit.AgentError_InvalidInput(info)
    if error.kind == AgentError.RETRYABLE:
        return wit.AgentError_Retryable(info)
    return wit.AgentError_Fatal(info)
