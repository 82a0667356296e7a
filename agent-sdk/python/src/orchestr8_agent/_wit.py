"""The bindings componentize-py generates from the WIT world, imported with
the package: componentize-py snapshots the interpreter once the agent's
module is imported, and a module first imported during a call is not in
the snapshot. Outside a component (the SDK's unit tests) they are ``None``.
"""

try:
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.imports import host, outgoing_handler, streams
    from wit_world.imports import orchestr8_agent_types as types
    from wit_world.imports import wasi_http_types as http_types
except ImportError:  # native CPython
    Err = exports = host = outgoing_handler = streams = types = http_types = None  # type: ignore[assignment,misc]
