"""OTLP requests with secrets planted in every place a sender controls, and ways to look for them afterwards.

A `Plan` says which secret goes where; `requests(plan)` builds the three OTLP export requests (traces, logs, metrics)
with every other field filled with harmless text. Each secret carries a random part (its `needle`) that must not be
found anywhere after redaction, whatever the encoding around it.
"""

from __future__ import annotations

import json
import random
import string
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# --- secrets ----------------------------------------------------------------------------------------------------------


def _random(rng: random.Random, alphabet: str, size: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def _luhn_complete(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits + "0")):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return digits + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    bban = _random(rng, string.digits, 18)
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    return f"DE{check:02d}{bban}"


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


# name -> make(rng) -> (text to plant, needle that must not survive)
SECRETS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "openai_key": lambda r: (lambda s: (s, s))("sk-proj-" + _random(r, ALNUM, 32)),
    "aws_access_key": lambda r: (lambda s: (s, s))("AKIA" + _random(r, UPPER_DIGITS, 16)),
    "aws_secret_key": lambda r: (lambda s: ("AWS_SECRET_ACCESS_KEY=" + s, s))(_random(r, ALNUM + "/+", 40)),
    "github_token": lambda r: (lambda s: (s, s))("ghp_" + _random(r, ALNUM, 36)),
    "gitlab_token": lambda r: (lambda s: (s, s))("glpat-" + _random(r, ALNUM, 20)),
    "slack_token": lambda r: (lambda s: (s, s))("xoxb-" + _random(r, string.digits, 12) + "-" + _random(r, ALNUM, 24)),
    "jwt": lambda r: (lambda s: (s, s))("eyJhbGciOiJIUzI1NiJ9.eyJ" + _random(r, ALNUM, 24) + "." + _random(r, ALNUM, 30)),
    "private_key": lambda r: (lambda body: ("-----BEGIN RSA PRIVATE KEY-----\n" + body + "\n-----END RSA PRIVATE KEY-----",
                                            body))(_random(r, ALNUM, 64)),
    "email": lambda r: (lambda s: (s, s))(_random(r, string.ascii_lowercase, 10) + "@example.com"),
    "card": lambda r: (lambda s: (s, s))(_luhn_complete("4" + _random(r, string.digits, 14))),
    "us_ssn": lambda r: (lambda s: (s, s))(_ssn(r)),
    "iban": lambda r: (lambda s: (s, s))(_iban(r)),
}
SECRET_KEYS = ("api_key", "password", "client_secret", "private_key", "secret_token")

# Where a text secret can go, per signal; "key:" places take a secret-named key with an arbitrary value instead.
TEXT_PLACES = (
    "span.name", "span.status", "span.trace_state", "span.attr", "span.attr_key", "span.attr_kvlist",
    "span.attr_list_of_maps", "span.attr_list_of_lists", "span.attr_json_string", "span.event_name",
    "span.event_attr", "span.link_attr", "span.link_trace_state", "resource.attr", "scope.name", "scope.version",
    "log.body", "log.body_map", "log.body_messages", "log.severity_text", "log.event_name", "log.attr",
    "metric.point_attr", "metric.exemplar_attr", "metric.description",
)
KEY_PLACES = (
    "span.attr", "span.attr_kvlist", "span.attr_list_of_maps", "span.event_attr", "span.link_attr", "resource.attr",
    "log.attr", "log.body_map", "log.body_messages", "metric.point_attr", "metric.exemplar_attr",
)


@dataclass
class Plan:
    """What goes where: (place, text) for pattern secrets, (place, key, value) for secret-named keys."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    keyed: list[tuple[str, str, str]] = field(default_factory=list)
    needles: list[str] = field(default_factory=list)


def full_plan(seed: int = 7) -> Plan:
    """Every secret in every place (a fixed, exhaustive example)."""
    rng = random.Random(seed)
    plan = Plan()
    names = list(SECRETS)
    for index, place in enumerate(TEXT_PLACES):
        text, needle = SECRETS[names[index % len(names)]](rng)
        if place in ("span.trace_state", "span.link_trace_state", "span.attr_key") and "\n" in text:
            text, needle = SECRETS["openai_key"](rng)  # a trace state or key is one line
        plan.texts.append((place, f"note {text} end"))
        plan.needles.append(needle)
    for index, place in enumerate(KEY_PLACES):
        value = "v-" + _random(rng, ALNUM, 20)
        plan.keyed.append((place, SECRET_KEYS[index % len(SECRET_KEYS)], value))
        plan.needles.append(value)
    return plan


# --- building requests -----------------------------------------------------------------------------------------------


def _any(value: Any) -> AnyValue:
    result = AnyValue()
    if isinstance(value, str):
        result.string_value = value
    elif isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int):
        result.int_value = value
    elif isinstance(value, dict):
        result.kvlist_value.values.extend(_kv(k, v) for k, v in value.items())
    elif isinstance(value, list):
        result.array_value.values.extend(_any(item) for item in value)
    return result


def _kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=_any(value))


class _Places:
    def __init__(self, plan: Plan) -> None:
        self.texts: dict[str, list[str]] = {}
        self.keyed: dict[str, list[tuple[str, str]]] = {}
        for place, text in plan.texts:
            self.texts.setdefault(place, []).append(text)
        for place, key, value in plan.keyed:
            self.keyed.setdefault(place, []).append((key, value))

    def text(self, place: str, default: str) -> str:
        return " ".join(self.texts.get(place, [])) or default

    def attrs(self, place: str, base: dict[str, Any]) -> dict[str, Any]:
        """`base` plus the text secrets planted in `place` (as values) and its secret-named keys."""
        result = dict(base)
        for index, text in enumerate(self.texts.get(place, [])):
            result[f"planted.{index}"] = text
        for index, (key, value) in enumerate(self.keyed.get(place, [])):
            result[f"app.{index}.{key}"] = value  # one key each: the same name twice would keep only one value
        return result

    def nested(self, place: str) -> dict[str, Any]:
        """A map holding this place's text secrets and secret-named keys (for maps inside values)."""
        result: dict[str, Any] = {"role": "user"}
        for index, text in enumerate(self.texts.get(place, [])):
            result[f"content{index}"] = text
        for index, (key, value) in enumerate(self.keyed.get(place, [])):
            result[f"n{index}_{key}"] = value
        return result


def requests(plan: Plan, rng: random.Random | None = None) -> list[Any]:
    """The traces, logs and metrics requests carrying `plan` (fresh random ids each call)."""
    rng = rng or random.Random()
    places = _Places(plan)
    resource_attrs = places.attrs("resource.attr", {"service.name": "planted-service"})
    scope = {"name": places.text("scope.name", "planted.scope"), "version": places.text("scope.version", "1.0")}

    traces = ExportTraceServiceRequest()
    resource_spans = traces.resource_spans.add()
    resource_spans.resource.attributes.extend(_kv(k, v) for k, v in resource_attrs.items())
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = scope["name"], scope["version"]
    scope_spans.scope.attributes.extend([_kv("scope.note", places.text("scope.name", "plain"))])
    span = scope_spans.spans.add()
    span.trace_id, span.span_id = rng.randbytes(16), rng.randbytes(8)
    span.name = places.text("span.name", "chat gpt-4o")
    span.kind = 3
    span.start_time_unix_nano = time.time_ns() - 5_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    span.trace_state = "vendor=" + places.text("span.trace_state", "plain")
    span.status.code = 2
    span.status.message = places.text("span.status", "fine")
    attrs = places.attrs("span.attr", {"gen_ai.operation.name": "chat", "gen_ai.conversation.id":
                                       places.text("span.attr", "conv-1")})
    for index, text in enumerate(places.texts.get("span.attr_key", [])):
        attrs[text] = f"value {index}"
    if "span.attr_kvlist" in places.texts or "span.attr_kvlist" in places.keyed:
        attrs["app.request"] = places.nested("span.attr_kvlist")
    if "span.attr_list_of_maps" in places.texts or "span.attr_list_of_maps" in places.keyed:
        attrs["gen_ai.input.messages.structured"] = [{"role": "system", "content": "be brief"},
                                                     places.nested("span.attr_list_of_maps")]
    if "span.attr_list_of_lists" in places.texts:
        attrs["app.rows"] = [["header"], places.texts["span.attr_list_of_lists"]]
    if "span.attr_json_string" in places.texts:
        attrs["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": text}]}
             for text in places.texts["span.attr_json_string"]])
    span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    event = span.events.add()
    event.time_unix_nano = span.start_time_unix_nano + 10
    event.name = places.text("span.event_name", "gen_ai.choice")
    event.attributes.extend(_kv(k, v) for k, v in places.attrs("span.event_attr", {"index": 0}).items())
    link = span.links.add()
    link.trace_id, link.span_id = rng.randbytes(16), rng.randbytes(8)
    link.trace_state = "vendor=" + places.text("span.link_trace_state", "plain")
    link.attributes.extend(_kv(k, v) for k, v in places.attrs("span.link_attr", {"link.kind": "follows"}).items())

    logs = ExportLogsServiceRequest()
    resource_logs = logs.resource_logs.add()
    resource_logs.resource.attributes.extend(_kv(k, v) for k, v in resource_attrs.items())
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = scope["name"], scope["version"]
    for body in _log_bodies(places):
        record = scope_logs.log_records.add()
        record.time_unix_nano = span.start_time_unix_nano + 20
        record.trace_id, record.span_id = span.trace_id, span.span_id
        record.severity_number = 9
        record.severity_text = places.text("log.severity_text", "INFO")
        record.event_name = places.text("log.event_name", "gen_ai.user.message")
        record.body.CopyFrom(_any(body))
        record.attributes.extend(_kv(k, v) for k, v in places.attrs("log.attr", {"n": 1}).items())

    metrics = ExportMetricsServiceRequest()
    resource_metrics = metrics.resource_metrics.add()
    resource_metrics.resource.attributes.extend(_kv(k, v) for k, v in resource_attrs.items())
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name, scope_metrics.scope.version = scope["name"], scope["version"]
    metric = scope_metrics.metrics.add()
    metric.name = "gen_ai.client.token.usage"
    metric.description = places.text("metric.description", "tokens")
    metric.unit = "{token}"
    point = metric.sum.data_points.add()
    metric.sum.aggregation_temporality = 2
    point.time_unix_nano = span.start_time_unix_nano
    point.as_int = 42
    point.attributes.extend(_kv(k, v) for k, v in places.attrs("metric.point_attr", {"gen_ai.token.type": "input"}).items())
    exemplar = point.exemplars.add()
    exemplar.time_unix_nano = span.start_time_unix_nano
    exemplar.as_int = 7
    exemplar.span_id, exemplar.trace_id = span.span_id, span.trace_id
    exemplar.filtered_attributes.extend(
        _kv(k, v) for k, v in places.attrs("metric.exemplar_attr", {"sample": "yes"}).items())
    return [traces, logs, metrics]


def _log_bodies(places: _Places) -> list[Any]:
    bodies: list[Any] = [places.text("log.body", "a plain body")]
    if "log.body_map" in places.texts or "log.body_map" in places.keyed:
        bodies.append(places.nested("log.body_map"))
    if "log.body_messages" in places.texts or "log.body_messages" in places.keyed:
        bodies.append([{"role": "system", "content": "be brief"}, places.nested("log.body_messages")])
    return bodies


# --- sending and looking -----------------------------------------------------------------------------------------------

PATHS = {ExportTraceServiceRequest: "/v1/traces", ExportLogsServiceRequest: "/v1/logs",
         ExportMetricsServiceRequest: "/v1/metrics"}


def post(http_endpoint: str, request: Any) -> None:
    """Send one request to a collector over OTLP/HTTP protobuf; fail on anything but 200."""
    body = request.SerializeToString()
    call = urllib.request.Request(http_endpoint + PATHS[type(request)], data=body, method="POST",
                                  headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(call, timeout=10) as response:
        assert response.status == 200


def store_text(reader: Any) -> str:
    """Every column of every table of a store, as text."""
    tables = [row["table_name"] for row in reader.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").to_pylist()]
    return "\n".join(json.dumps(reader.sql(f'SELECT * FROM "{table}"').to_pylist(), default=str) for table in tables)


def found(needles: list[str], text: str) -> list[str]:
    """The needles that occur in `text`."""
    return [needle for needle in needles if needle in text]
