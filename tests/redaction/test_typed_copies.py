"""Typed span columns (conversation_id, agent_name, ...) copy attribute values; after the attributes of a span are
masked, each copy is what the decoder would copy from the masked attributes, whether the redactor re-reads them or
proves from the copies themselves that nothing they hold could have changed."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.redaction.planted import _any
from tracekit import semconv
from tracekit.collector.processors.decode import decode_payload
from tracekit.redaction import RedactionPolicy
from tracekit.redaction.columns import TYPED_COPIES, TableRedactor

EMAIL = "ann.lee@example.com"
KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0" * 2

# What a copied attribute may hold: clean ids, secrets the pattern rules find, structures with secrets inside
# (a secret-named nested key, an address in a list), and numbers.
_COPIED = [None, "conv_1a2b3c", "planner", EMAIL, f"session of {EMAIL}", KEY, {"password": "hunter2"},
           {"note": "fine"}, [EMAIL, "x"], ["plain"], 42, "555-123-4567"]
_MESSAGES = [None, "plan a trip to Lisbon", f"send it to {EMAIL}", f"my key is {KEY}", "call +1 415 555 0100"]


def _request(seed: int, spans: int = 300) -> bytes:
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for index in range(spans):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = rng.randbytes(16), rng.randbytes(8)
        span.name, span.start_time_unix_nano, span.end_time_unix_nano = "chat", 10**18 + index, 10**18 + index + 5
        attributes: dict[str, object] = {"gen_ai.operation.name": "chat"}
        for key in (semconv.GEN_AI_CONVERSATION_ID, "session.id", semconv.GEN_AI_AGENT_NAME, semconv.GEN_AI_TOOL_NAME,
                    semconv.GEN_AI_RESPONSE_ID):
            value = rng.choice(_COPIED)
            if value is not None:
                attributes[key] = value
        message = rng.choice(_MESSAGES)
        if message is not None:
            attributes["gen_ai.input.messages"] = json.dumps([{"role": "user", "parts": [{"content": message}]}])
        span.attributes.extend(KeyValue(key=key, value=_any(value)) for key, value in attributes.items())
    return request.SerializeToString()


def _copy_from(attributes: dict, keys: tuple[str, ...], integer: bool) -> object:
    """The decoder's rule: the first key that is set; a structure as its JSON text; integers only as integers."""
    value = next((attributes[key] for key in keys if attributes.get(key) is not None), None)
    if integer:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if value is None or isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("policy", [RedactionPolicy.default(),
                                    RedactionPolicy.from_mapping({"keys": ["gen_ai.agent.*"]}),
                                    RedactionPolicy.from_mapping({"allow_keys": ["session.id"]})],
                         ids=["default", "key glob", "allowed key"])
def test_typed_copies_are_taken_again_from_the_masked_attributes(policy: RedactionPolicy) -> None:
    for seed in range(3):
        table = decode_payload("traces", _request(seed)).tables["spans"]
        masked = TableRedactor(policy).redact_table("spans", table)
        changed = 0
        for before, after in zip(table.to_pylist(), masked.to_pylist()):
            attributes = json.loads(after["attributes"])
            for column, keys in TYPED_COPIES.items():
                if column not in after:
                    continue
                expected = _copy_from(attributes, keys, column in semconv.TYPED_INTEGER_COLUMNS)
                assert after[column] == (None if before[column] is None else expected), (column, after)
                changed += after[column] != before[column]
        assert changed > 20  # copies that held secrets were replaced, not just left alone
        if policy is RedactionPolicy.default():  # (the other policies allow or mask some keys whole)
            stored = str(masked.to_pylist())
            leaked = [secret for secret in (EMAIL, KEY) if secret in stored]
            assert leaked == []


def test_a_clean_copy_beside_masked_messages_stays_as_it_was() -> None:
    table = decode_payload("traces", _request(9)).tables["spans"]
    masked = TableRedactor(RedactionPolicy.default()).redact_table("spans", table)
    before, after = table.to_pylist(), masked.to_pylist()
    rows = [index for index, row in enumerate(before)
            if "[REDACTED:" in after[index]["attributes"] and row["conversation_id"] == "conv_1a2b3c"]
    assert rows  # the sample has such rows
    assert all(after[index]["conversation_id"] == "conv_1a2b3c" for index in rows)
    assert pa.types.is_string(masked.schema.field("conversation_id").type)
