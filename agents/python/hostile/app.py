"""A Python agent that misbehaves on request, to show that the sandbox's
limits hold for Python as they do for Rust: `allocate` grows memory without
end, `spin` never returns, `raise` fails with an unhandled exception,
`secret` reads a secret it may not have been granted, `retry` asks for a
retry after a delay, `fetch` GETs `url` (allowed or not)."""

from dataclasses import dataclass
from typing import Literal

from orchestr8_agent import Agent, AgentError, Context, export, http


@dataclass
class Input:
    do: Literal["allocate", "spin", "raise", "secret", "retry", "fetch"]
    name: str = "API_KEY"
    url: str = ""


@dataclass
class Output:
    value: str


class Hostile(Agent[Input, Output]):
    id = "@orchestr8/py-hostile"
    version = "0.1.0"
    description = "Misbehaves on request (tests the sandbox with Python)."

    def process(self, input: Input, ctx: Context) -> Output:
        if input.do == "allocate":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if input.do == "spin":
            n = 0
            while True:
                n += 1
        if input.do == "raise":
            return Output({}["missing"])
        if input.do == "secret":
            return Output(ctx.secret(input.name)[:0] + "read")
        if input.do == "fetch":
            response = http.get(input.url, headers={"user-agent": "py-hostile"}, timeout=5)
            return Output(f"{response.status} {response.text()}")
        raise AgentError.retryable("upstream busy", retry_after_ms=1500)


Handler = export(Hostile)
