"""{{id}}: greets whoever it is given.

Every call runs in a fresh sandbox: keep no state between calls. The input
and output dataclasses below are also the JSON Schemas the host shows
(`orchestr8 agent info`).
"""

from dataclasses import dataclass, field

from orchestr8_agent import Agent, AgentError, Context, export, log


@dataclass
class Input:
    """What the agent is given."""

    name: str = field(metadata={"description": "Who to greet."})


@dataclass
class Output:
    """What the agent returns."""

    greeting: str = field(metadata={"description": "The greeting."})


class {{type}}(Agent[Input, Output]):
    id = "{{id}}"
    version = "0.1.0"
    description = "Greets whoever it is given."

    def process(self, input: Input, ctx: Context) -> Output:
        name = input.name.strip()
        if not name:
            raise AgentError.invalid_input("`name` must not be empty")
        log.info(f"greeting {name}")
        return Output(greeting=f"Hello, {name}!")


# componentize-py exports the module's `Handler`.
Handler = export({{type}})
