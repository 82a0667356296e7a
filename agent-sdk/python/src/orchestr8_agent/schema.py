"""JSON Schemas from Python types, and JSON to and from those types.

An agent's input and output are plain dataclasses (or the types they are
made of). The schemas the host publishes and the checks made on a call
come from the same annotations, so they cannot drift apart.

Written here rather than taken from pydantic: the agent runs as a
WebAssembly component, where only pure-Python code can go (pydantic's core
is native code), and the subset below is what an agent's JSON needs.

Supported: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``,
``list[T]``, ``dict[str, T]``, ``T | None`` and other unions,
``Literal[...]``, ``Enum`` subclasses and dataclasses (nested).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any

__all__ = ["SchemaError", "decode", "encode", "input_schema", "output_schema"]


class SchemaError(ValueError):
    """A value does not match its type; ``path`` says where (``$.a[0]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def input_schema(tp: Any) -> dict[str, Any]:
    """The schema of ``tp`` as it is read: fields with defaults are optional."""
    return _root(tp, written=False)


def output_schema(tp: Any) -> dict[str, Any]:
    """The schema of ``tp`` as :func:`encode` writes it: every field present."""
    return _root(tp, written=True)


def _root(tp: Any, written: bool) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    schema = _schema(tp, written, defs)
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        root["title"] = tp.__name__
    root.update(schema)
    if defs:
        root["$defs"] = defs
    return root


_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    type(None): {"type": "null"},
}


def _schema(tp: Any, written: bool, defs: dict[str, Any]) -> dict[str, Any]:
    if tp is Any or tp is object:
        return {}
    if tp is None:
        tp = type(None)
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        item = args[0] if args else Any
        return {"type": "array", "items": _schema(item, written, defs)}
    if origin is dict:
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": _schema(value, written, defs)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema(a, written, defs) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_schema(tp, written, defs)
    raise TypeError(f"orchestr8_agent cannot describe the type {tp!r} as JSON")


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    """A dataclass's resolved annotations. Cached: resolving evaluates the
    annotation strings, and the schemas computed when the component is
    pre-initialised fill the cache for every call that follows."""
    return typing.get_type_hints(tp)


def _dataclass_schema(tp: type, written: bool, defs: dict[str, Any]) -> dict[str, Any]:
    hints = _hints(tp)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(tp):
        prop = _schema(hints[field.name], written, defs)
        doc = _field_doc(field)
        if doc:
            prop["description"] = doc
        properties[field.name] = prop
        if written or not _has_default(field):
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "("):
        schema["description"] = " ".join(tp.__doc__.split())
    return schema


def _field_doc(field: dataclasses.Field) -> str | None:
    doc = field.metadata.get("description") if field.metadata else None
    return str(doc) if doc else None


def _has_default(field: dataclasses.Field) -> bool:
    return (
        field.default is not dataclasses.MISSING
        or field.default_factory is not dataclasses.MISSING
    )


def decode(tp: Any, value: Any, path: str = "$") -> Any:
    """Checks parsed JSON against ``tp`` and builds it: dataclasses from
    objects, enums from their values. Raises :class:`SchemaError`."""
    if tp is Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise SchemaError(path, f"expected null, got {_kind(value)}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise SchemaError(path, f"expected a boolean, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SchemaError(path, f"expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(path, f"expected a number, got {_kind(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SchemaError(path, f"expected a string, got {_kind(value)}")
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(path, f"expected an array, got {_kind(value)}")
        item = args[0] if args else Any
        return [decode(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected an object, got {_kind(value)}")
        item = args[1] if len(args) == 2 else Any
        return {k: decode(item, v, f"{path}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            try:
                return decode(arm, value, path)
            except SchemaError:
                continue
        names = ", ".join(_name(a) for a in args)
        raise SchemaError(path, f"expected one of {names}, got {_kind(value)}")
    if origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise SchemaError(path, f"expected one of {list(args)!r}, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = [m.value for m in tp]
            raise SchemaError(path, f"expected one of {allowed!r}, got {value!r}") from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, path)
    raise TypeError(f"orchestr8_agent cannot read the type {tp!r} from JSON")


def _decode_dataclass(tp: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise SchemaError(path, f"expected an object, got {_kind(value)}")
    hints = _hints(tp)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(tp):
        if field.name in value:
            kwargs[field.name] = decode(hints[field.name], value[field.name], f"{path}.{field.name}")
        elif not _has_default(field):
            raise SchemaError(path, f"missing field `{field.name}`")
    return tp(**kwargs)


def encode(value: Any) -> Any:
    """The JSON form of a value built from supported types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", repr(tp))
