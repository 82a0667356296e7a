"""The official MCP Python SDK as a client of `orchestr8 mcp`.

Run by cli/tests/clients.rs with the command that starts the server (the
research project: the Context7 agent against a fake Context7, and the echo
agent). Every answer goes through the SDK's own validation (pydantic models,
tool output schemas); an assertion failure exits non-zero with a traceback.

    python mcp_session.py ORCHESTR8 PROJECT_DIR SLOW_LIBRARY
"""

import os
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

QUESTION = "How do I add middleware that logs every request?"


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def main(orchestr8: str, project: str, slow_library: str) -> None:
    # The SDK starts the server with a minimal environment: pass ours on.
    env = {k: v for k, v in os.environ.items() if k.startswith("ORCHESTR8_") or k == "NO_COLOR"}
    server = StdioServerParameters(
        command=orchestr8,
        args=["-C", project, "--log-level", "info", "mcp", "--max-attempts", "1"],
        env=env,
    )
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()

            # The whole project's tools, each accepted by the SDK's models.
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert set(tools) == {"orchestr8_context7", "orchestr8_echo"}, tools
            for tool in tools.values():
                assert tool.input_schema["type"] == "object", tool
            assert tools["orchestr8_context7"].output_schema is not None
            print("tools/list:", ", ".join(sorted(tools)))

            # A successful call: the SDK validates the structured content
            # against the tool's output schema before returning it.
            for library in ["axum", "/tokio-rs/axum"]:
                result = await session.call_tool(
                    "orchestr8_context7",
                    {"query": QUESTION, "library": library, "topic": "middleware"},
                )
                assert not result.is_error, text_of(result)
                brief = result.structured_content
                assert brief["library"]["id"] == "/tokio-rs/axum", brief
                assert brief["sources"], brief
                print(f"tools/call context7 ({library}): {len(brief['snippets'])} snippets")

            # An agent whose input may be anything is a tool like the others.
            result = await session.call_tool("orchestr8_echo", {"anything": [1, {"nested": True}]})
            assert not result.is_error, text_of(result)
            # (echo answers with what it was given: its input and config)
            assert result.structured_content["input"] == {"anything": [1, {"nested": True}]}, result
            print("tools/call echo: ok")

            # Bad input is a tool error the model can read, not a protocol error.
            result = await session.call_tool("orchestr8_context7", {"library": "axum"})
            assert result.is_error, result
            assert "INVALID_INPUT" in text_of(result), text_of(result)
            print("tools/call with bad input:", text_of(result).splitlines()[0])

            # Cancellation: the SDK gives up after its read timeout and sends
            # notifications/cancelled; the server stops the call and the
            # session goes on.
            started = time.monotonic()
            try:
                await session.call_tool(
                    "orchestr8_context7",
                    {"query": QUESTION, "library": slow_library},
                    read_timeout_seconds=1.0,
                )
            except MCPError as error:
                print("tools/call cancelled after", round(time.monotonic() - started, 1), "s:", error)
            else:
                raise AssertionError("the slow call was expected to time out")
            result = await session.call_tool("orchestr8_echo", {"after": "cancel"})
            assert result.structured_content["input"] == {"after": "cancel"}, result
            print("the session goes on after a cancellation")


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
