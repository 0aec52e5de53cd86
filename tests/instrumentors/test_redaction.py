"""The redaction policy on plain values (as the collector uses it) and in the SDK pipeline (as configure() builds it)."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tracekit.redaction import JsonPathRule, RedactionError, RedactionPolicy
from tracekit.redaction.sdk import RedactingSpanExporter, RedactingSpanProcessor

OPENAI_KEY = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
CARD = "4111 1111 1111 1111"
EMAIL = "ann.lee@example.co.uk"


@pytest.fixture
def policy() -> RedactionPolicy:
    return RedactionPolicy.default()


@pytest.mark.parametrize(
    ("text", "secret", "rule"),
    [
        (f"my key is {OPENAI_KEY}.", OPENAI_KEY, "openai_key"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_token"),
        ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij", "slack_token"),
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl", "bearer_token"),
        (f"id_token={JWT}", JWT, "jwt"),
        ("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccessKey=q1w2e3r4t5y6u7i8o9p0=",
         "q1w2e3r4t5y6u7i8o9p0=", "connection_string_key"),
        ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zm9vYmFyYmF6cXV4+/==;EndpointSuffix=core.windows.net",
         "Zm9vYmFyYmF6cXV4+/==", "connection_string_key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA", "private_key"),
        (f"write to {EMAIL} please", EMAIL, "email"),
        (f"card {CARD} exp 12/29", CARD, "card_number"),
        ("card 4111-1111-1111-1111", "4111-1111-1111-1111", "card_number"),
        ("call +1 415-555-0100 now", "415-555-0100", "phone_number"),
        ("office (030) 1234 5678.", "1234 5678", "phone_number"),
    ],
)
def test_builtin_rules_mask_planted_secrets(policy: RedactionPolicy, text: str, secret: str, rule: str) -> None:
    masked, count = policy.redact_text(text)
    assert secret not in masked
    assert f"[REDACTED:{rule}]" in masked
    assert count == 1


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails the Luhn check",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 at 2026-11-22 02:15:43 took 1234567 ns",
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
        "the task-list has 12 items, 345 tokens, version 1.37.0",
        "ask about sk-learn or a sketch",
        "ids call_78c37aa3951188059159 and chatcmpl-802d9825022590575da1 hold Luhn-valid digit runs",
        "a table: 2024 8841 129.99 10 30 2025 7711 and 14 22",
    ],
)
def test_ordinary_text_is_left_alone(policy: RedactionPolicy, text: str) -> None:
    assert policy.redact_text(text) == (text, 0)


def test_redact_attributes_counts_and_keeps_non_strings(policy: RedactionPolicy) -> None:
    attrs = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"key {OPENAI_KEY}"}]}]),
        "http.request.header.authorization": "Basic dXNlcjpwYXNz",
        "db.password": "hunter2",
        "gen_ai.usage.input_tokens": 42,
        "gen_ai.request.stop_sequences": ("stop", EMAIL),
        "gen_ai.response.finish_reasons": ("stop",),
    }
    redacted, count = policy.redact_attributes(attrs)
    assert count == 4
    assert OPENAI_KEY not in redacted["gen_ai.input.messages"]
    assert json.loads(redacted["gen_ai.input.messages"])[0]["parts"][0]["content"] == "key [REDACTED:openai_key]"
    assert redacted["http.request.header.authorization"] == "[REDACTED:secret_key]"
    assert redacted["db.password"] == "[REDACTED:secret_key]"
    assert redacted["gen_ai.usage.input_tokens"] == 42
    assert redacted["gen_ai.request.stop_sequences"] == ("stop", "[REDACTED:email]")
    assert redacted["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["db.password"] == "hunter2", "the input mapping must not be modified"


def test_user_rules_regex_key_and_json_path() -> None:
    policy = RedactionPolicy.from_mapping(
        {
            "builtin": False,
            "patterns": [{"name": "employee_id", "regex": r"EMP-\d{6}"}],
            "keys": ["app.customer.*"],
            "json_paths": [{"attribute": "gen_ai.input.messages", "path": "$[*].parts[?].content".replace("[?]", "[*]")},
                           {"path": "$..ssn", "name": "ssn"}],
        }
    )
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hello EMP-123456"}]}]
    out = policy.redact_value("gen_ai.input.messages", json.dumps(messages))
    assert json.loads(out) == [{"role": "user", "parts": [{"type": "text", "content": "[REDACTED:json_path]"}]}]
    assert policy.redact_value("app.customer.name", "Ann") == "[REDACTED:key]"
    assert policy.redact_value("note", "see EMP-654321") == "see [REDACTED:employee_id]"
    nested = json.dumps({"user": {"profile": {"ssn": "078-05-1120", "city": "Oslo"}}})
    assert json.loads(policy.redact_value("gen_ai.tool.call.arguments", nested)) == {
        "user": {"profile": {"ssn": "[REDACTED:ssn]", "city": "Oslo"}}
    }
    # Built-ins are off in this policy: an email passes.
    assert policy.redact_value("note", EMAIL) == EMAIL


def test_policy_file_toml_and_errors(tmp_path) -> None:
    path = tmp_path / "redaction.toml"
    path.write_text('[redaction]\ndisable = ["phone_number"]\nkeys = ["user.id"]\n'
                    '[[redaction.patterns]]\nname = "ticket"\nregex = "TCK-[0-9]+"\n')
    policy = RedactionPolicy.from_file(path)
    assert policy.redact_text("call 415-555-0100 about TCK-42")[0] == "call 415-555-0100 about [REDACTED:ticket]"
    assert policy.redact_value("user.id", "u-1") == "[REDACTED:key]"
    assert policy.redact_text(CARD)[0] == "[REDACTED:card_number]"

    bad = tmp_path / "bad.toml"
    bad.write_text('[[patterns]]\nname = "x"\nregex = "a(b"\n')
    with pytest.raises(RedactionError, match=r"patterns\[0\].*position 1"):
        RedactionPolicy.from_file(bad)
    with pytest.raises(RedactionError, match="unknown built-in"):
        RedactionPolicy.from_mapping({"disable": ["emails"]})
    with pytest.raises(RedactionError, match="column"):
        JsonPathRule("$.a[")


def test_from_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert RedactionPolicy.from_env({}).redact_text(EMAIL)[1] == 1
    assert RedactionPolicy.from_env({"TRACEKIT_REDACTION": "off"}).redact_text(EMAIL)[1] == 0
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"builtin": ["email"]}))
    policy = RedactionPolicy.from_env({"TRACEKIT_REDACTION_FILE": str(path)})
    assert policy.redact_text(f"{EMAIL} {OPENAI_KEY}")[0] == f"[REDACTED:email] {OPENAI_KEY}"


def _third_party_span(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("some.other.instrumentation")
    with tracer.start_as_current_span("POST /v1/chat") as span:
        span.set_attribute("http.request.body", f'{{"api_key": "{OPENAI_KEY}", "user": "{EMAIL}"}}')
        span.set_attribute("llm.input_messages.0.message.content", f"my card is {CARD}")
        span.add_event("log", {"message": f"token {JWT}"})
        try:
            raise RuntimeError(f"auth failed for key {OPENAI_KEY}")
        except RuntimeError as error:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, f"RuntimeError: {error}")


def test_processor_masks_third_party_spans_before_any_exporter() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(RedactionPolicy.default()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _third_party_span(provider)
    (span,) = exporter.get_finished_spans()
    exported = span.to_json()
    for secret in (OPENAI_KEY, EMAIL, CARD, JWT):
        assert secret not in exported
    # key + email in the body, card, JWT in an event, key in exception.message, exception.stacktrace and the status
    assert span.attributes["tracekit.redaction.masked_count"] == 7
    assert span.status.description == "RuntimeError: auth failed for key [REDACTED:openai_key]"


def test_exporter_wrapper_masks_too() -> None:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(inner, RedactionPolicy.default())))
    _third_party_span(provider)
    (span,) = inner.get_finished_spans()
    assert OPENAI_KEY not in span.to_json() and EMAIL not in span.to_json()


def test_log_record_processor_masks_attributes_and_body() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from tracekit.redaction.sdk import RedactingLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(RedactingLogRecordProcessor(RedactionPolicy.default()))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("other.lib").emit(body=f"user {EMAIL} sent {OPENAI_KEY}",
                                          attributes={"gen_ai.evaluation.explanation": f"card {CARD}"})
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    assert record.body == "user [REDACTED:email] sent [REDACTED:openai_key]"
    assert record.attributes["gen_ai.evaluation.explanation"] == "card [REDACTED:card_number]"


def test_processor_masks_span_names_too() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(RedactionPolicy.default()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("http.client").start_span(f"GET /users/{EMAIL}/profile").end()
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /users/[REDACTED:email]/profile"
    assert span.attributes["tracekit.redaction.masked_count"] == 1


_NUMBERISH = st.text(alphabet=st.sampled_from(list("0123456789012345678901234567890123456789 .-+(),:/xé€\n")),
                     max_size=300)


@settings(max_examples=400, deadline=None)
@given(text=st.lists(st.one_of(_NUMBERISH, st.sampled_from([
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "+1 (206) 555-0100", "+442071838750",
    "206.555.0100", "call_78c37aa3951188059159", "2024 8841 129.99"])), max_size=12).map("".join))
@example(text="4111111111111111,4111111111111111")  # the guard between two numbers serves both
@example(text="+442071838750,+442071838750/206.555.0100")
@example(text="0000000000000.x0000000000000")  # the "x" is the second number's left boundary: not a card
def test_the_number_screen_never_changes_what_is_masked(text: str) -> None:
    """Long texts have their card and phone numbers screened with RE2 before the exact patterns run; the result must
    be exactly what the exact patterns give on every run of digits."""
    import tracekit.redaction.rules as redaction

    rule = redaction.NumberRule()
    saved = redaction.SCREEN_NUMBERS_FROM
    try:
        redaction.SCREEN_NUMBERS_FROM = 10**9
        unscreened = rule.apply(text)
        redaction.SCREEN_NUMBERS_FROM = 0
        screened = rule.apply(text)
    finally:
        redaction.SCREEN_NUMBERS_FROM = saved
    assert screened == unscreened


_WIDE_NUMBERISH = st.text(alphabet=st.sampled_from(list("0123456789 .-+()x\u00e9\u20ac") + [
    "\uff14", "\uff11", "\uff10", "\u0663", "\u0661", "\u06f5", "\u0967", "\ud800"]), max_size=80)


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.one_of(_WIDE_NUMBERISH, st.sampled_from([
    "4111 1111 1111 1111", "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",
    "+\u0669\u0667\u0661 \u0665\u0660 \u0661\u0662\u0663 \u0664\u0665\u0666\u0667", "+1 (206) 555-0100"])),
    max_size=6).map("".join))
@example(text="4111111111111111-8\uff11-3  3/")  # a fullwidth digit inside a card number
def test_numbers_are_masked_as_the_exact_patterns_mask_them_in_any_script(text: str) -> None:
    """What NumberRule masks is what its two patterns mask over the whole text, also where digits are not ASCII
    (Python's \\d is every Unicode digit, so a card typed in fullwidth digits is a card); its fast path reads ASCII
    digits only, so such texts must take the exact patterns."""
    import tracekit.redaction.rules as redaction

    rule = redaction.NumberRule()
    assert rule.apply(text) == rule._mask_window(text)


def test_a_card_typed_in_fullwidth_digits_is_masked() -> None:
    policy = RedactionPolicy.default()
    prompt = "pay with \uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 please"
    assert policy.redact_value("gen_ai.input.messages", prompt) == "pay with [REDACTED:card_number] please"
