"""A Python agent written with the SDK: greets, and says which attempt it is."""

from dataclasses import dataclass, field

from orchestr8_agent import Agent, AgentError, Context, export, log


@dataclass
class Input:
    name: str = field(metadata={"description": "Who to greet."})
    shout: bool = False


@dataclass
class Output:
    greeting: str
    attempt: int


class Greeter(Agent[Input, Output]):
    id = "@orchestr8/py-greeter"
    version = "0.1.0"
    description = "Greets whoever it is given (a Python agent)."

    def process(self, input: Input, ctx: Context) -> Output:
        if not input.name.strip():
            raise AgentError.invalid_input("name must not be empty")
        log.info("greeting someone", name=input.name)
        greeting = f"Hello, {input.name}!"
        return Output(greeting.upper() if input.shout else greeting, ctx.attempt)


Handler = export(Greeter)
