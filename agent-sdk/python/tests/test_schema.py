"""The SDK's schemas and JSON conversion, natively (no component needed):
python3 -m unittest discover -s agent-sdk/python/tests (with
PYTHONPATH=agent-sdk/python/src); the end-to-end tests run it too."""

import enum
import unittest
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from orchestr8_agent import AgentError, SchemaError
from orchestr8_agent.schema import decode, encode, input_schema, output_schema


class Tone(enum.Enum):
    PLAIN = "plain"
    WARM = "warm"


@dataclass
class Address:
    city: str


@dataclass
class Request:
    """What to do."""

    name: str = field(metadata={"description": "Who."})
    count: int = 1
    ratio: float = 0.5
    tags: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    tone: Tone = Tone.PLAIN
    mode: Literal["fast", "slow"] = "fast"
    address: Optional[Address] = None
    anything: Any = None


class SchemaTest(unittest.TestCase):
    def test_input_schema_requires_only_fields_without_defaults(self):
        schema = input_schema(Request)
        self.assertEqual(schema["required"], ["name"])
        self.assertEqual(schema["description"], "What to do.")
        props = schema["properties"]
        self.assertEqual(props["name"], {"type": "string", "description": "Who."})
        self.assertEqual(props["count"], {"type": "integer"})
        self.assertEqual(props["ratio"], {"type": "number"})
        self.assertEqual(props["tags"], {"type": "array", "items": {"type": "string"}})
        self.assertEqual(props["extra"]["additionalProperties"], {"type": "integer"})
        self.assertEqual(props["tone"], {"enum": ["plain", "warm"]})
        self.assertEqual(props["mode"], {"enum": ["fast", "slow"]})
        self.assertEqual(props["address"]["anyOf"][1], {"type": "null"})
        self.assertEqual(props["anything"], {})

    def test_output_schema_requires_every_field_encode_writes(self):
        schema = output_schema(Request)
        self.assertEqual(schema["required"], [f for f in schema["properties"]])
        written = encode(Request(name="x"))
        self.assertEqual(sorted(written), sorted(schema["properties"]))

    def test_unsupported_types_are_refused_when_described(self):
        with self.assertRaises(TypeError):
            input_schema(set[int])


class DecodeTest(unittest.TestCase):
    def test_objects_become_dataclasses_with_defaults(self):
        value = decode(Request, {"name": "a", "tone": "warm", "address": {"city": "Oslo"}})
        self.assertEqual(value.name, "a")
        self.assertEqual(value.tone, Tone.WARM)
        self.assertEqual(value.address, Address("Oslo"))
        self.assertEqual(value.tags, [])

    def test_mismatches_name_the_path(self):
        cases = [
            ({}, "$: missing field `name`"),
            ({"name": 1}, "$.name: expected a string, got a number"),
            ({"name": "a", "count": True}, "$.count: expected an integer, got a boolean"),
            ({"name": "a", "count": 1.5}, "$.count: expected an integer"),
            ({"name": "a", "tags": ["x", 2]}, "$.tags[1]: expected a string"),
            ({"name": "a", "tone": "cold"}, "$.tone: expected one of ['plain', 'warm']"),
            ({"name": "a", "mode": "medium"}, "$.mode: expected one of ['fast', 'slow']"),
            ({"name": "a", "address": {"town": "x"}}, "$.address: expected one of Address, null"),
            ([], "$: expected an object, got an array"),
        ]
        for raw, message in cases:
            with self.subTest(raw=raw):
                with self.assertRaises(SchemaError) as caught:
                    decode(Request, raw)
                self.assertIn(message, str(caught.exception))

    def test_whole_floats_are_integers_and_integers_are_numbers(self):
        self.assertEqual(decode(int, 3.0), 3)
        self.assertEqual(decode(float, 2), 2.0)


class ErrorTest(unittest.TestCase):
    def test_kinds_and_details(self):
        e = AgentError.retryable("busy", retry_after_ms=500, details={"status": 429})
        self.assertEqual((e.kind, e.retry_after_ms), ("retryable", 500))
        self.assertEqual(e.details_text(), '{"status": 429}')
        self.assertIsNone(AgentError.fatal("x").details_text())
        with self.assertRaises(ValueError):
            AgentError("odd", "x")


class IdempotencyKeyTest(unittest.TestCase):
    def test_every_attempt_of_a_step_shares_it(self) -> None:
        from orchestr8_agent import Context

        first = Context("exec-1", "charge", 1, 0, {})
        retry = Context("exec-1", "charge", 3, 0, {})
        self.assertEqual(first.idempotency_key, "exec-1:charge")
        self.assertEqual(first.idempotency_key, retry.idempotency_key)
        self.assertNotEqual(
            first.idempotency_key, Context("exec-2", "charge", 1, 0, {}).idempotency_key
        )


if __name__ == "__main__":
    unittest.main()
