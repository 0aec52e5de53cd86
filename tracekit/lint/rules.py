"""What the linter finds wrong with one span, against the GenAI conventions (tracekit.lint.registry).

Rules (the `rule` of a Finding):
- deprecated: a deprecated key with its replacement (`gen_ai.system` alone; beside `gen_ai.provider.name` it is
  the Azure-compatible form Application Insights reads, and no finding), flattened `gen_ai.prompt.N.*` content.
- unknown: a `gen_ai.*` key neither the conventions nor tracekit define (a typo, a private extension).
- missing: an attribute the operation requires (or conditionally requires, or recommends) that the span lacks.
- span-kind: a span kind other than the operation's (a model call is a CLIENT span).
- content-placement: content on a span type it does not belong to, content in deprecated log events, messages
  that are not the conventions' JSON shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from tracekit import semconv
from tracekit.conversation.shapes import parse_json
from tracekit.lint.registry import KNOWN_CUSTOM_OPERATIONS, Conventions, conventions

_FLATTENED = re.compile(r"^gen_ai\.(prompt|completion)\.\d+\.")


class Unread:
    """A value that was not loaded whole (a preview cut for display): its shape is not checked."""


UNREAD = Unread()


@dataclass(frozen=True)
class Finding:
    rule: str
    key: str          # the attribute (or event, or span kind) the finding is about
    message: str
    replacement: str | None = None


def check_span(attributes: Mapping[str, Any], *, kind: str, event_names: Iterable[str] = (),
               rules: Conventions | None = None) -> list[Finding]:
    """Every finding for one span, in a stable order."""
    rules = rules or conventions()
    findings: list[Finding] = []
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    findings += _deprecated(attributes, rules)
    findings += _unknown(attributes, rules)
    if isinstance(operation, str):
        findings += _operation(attributes, operation, kind, rules)
    findings += _content(attributes, operation, event_names, rules)
    return findings


def _deprecated(attributes: Mapping[str, Any], rules: Conventions) -> list[Finding]:
    found: list[Finding] = []
    flattened = False
    for key in attributes:
        if _FLATTENED.match(key):
            flattened = True
            continue
        if key not in rules.deprecated:
            continue
        replacement = rules.deprecated[key]
        if replacement is not None and replacement in attributes:
            continue  # sent beside its replacement on purpose (Azure's readers still key on the old name)
        message = f"deprecated; use {replacement}" if replacement else "deprecated, removed without a replacement"
        found.append(Finding("deprecated", key, message, replacement))
    if flattened:
        found.append(Finding("deprecated", "gen_ai.prompt.N.*",
                             "flattened indexed messages; use gen_ai.input.messages / gen_ai.output.messages",
                             "gen_ai.input.messages"))
    return found


def _unknown(attributes: Mapping[str, Any], rules: Conventions) -> list[Finding]:
    return [Finding("unknown", key, "not a GenAI convention attribute")
            for key in attributes
            if key.startswith("gen_ai.") and not _FLATTENED.match(key) and key not in rules.deprecated
            and not rules.known(key)]


def _present(attributes: Mapping[str, Any], key: str, rules: Conventions) -> bool:
    if attributes.get(key) not in (None, ""):
        return True
    # A deprecated name still carries the value (it is reported as deprecated, not also as missing).
    return any(attributes.get(old) not in (None, "") for old, new in rules.deprecated.items() if new == key)


def _operation(attributes: Mapping[str, Any], operation: str, kind: str, rules: Conventions) -> list[Finding]:
    spec = rules.operations.get(operation)
    if spec is None:
        return []
    found: list[Finding] = []
    if kind not in spec.kinds:
        found.append(Finding("span-kind", kind, f"{operation} spans are {' or '.join(spec.kinds)}, not {kind}"))
    for level, keys in (("required", spec.required), ("conditionally required", spec.conditionally_required),
                        ("recommended", spec.recommended)):
        for key in keys:
            if not _present(attributes, key, rules):
                found.append(Finding("missing", key, f"{level} on {operation} spans"))
    return found


def _content(attributes: Mapping[str, Any], operation: Any, event_names: Iterable[str],
             rules: Conventions) -> list[Finding]:
    found: list[Finding] = []
    content = rules.content
    if isinstance(operation, str) and (operation in rules.operations or operation in KNOWN_CUSTOM_OPERATIONS):
        if operation not in content["messages_on"]:
            found += [Finding("content-placement", key, f"messages do not belong on {operation} spans")
                      for key in content["messages"] if key in attributes]
        if operation not in content["tool_call_on"]:
            found += [Finding("content-placement", key, f"tool call content belongs on execute_tool spans, "
                                                        f"not {operation}")
                      for key in content["tool_call"] if key in attributes]
    legacy = sorted(set(event_names) & set(content["legacy_events"]))
    if legacy:
        found.append(Finding("content-placement", ", ".join(legacy),
                             "content in deprecated per-message events; use gen_ai.input.messages / "
                             "gen_ai.output.messages", "gen_ai.input.messages"))
    for key in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES):
        if key in attributes and not _messages_shaped(attributes[key]):
            found.append(Finding("content-placement", key,
                                 "not an array of {role, parts} messages as the conventions' JSON schema says"))
    return found


def _messages_shaped(value: Any) -> bool:
    if value is UNREAD:
        return True
    value = parse_json(value)  # a string that is not JSON stays a string, and fails below
    return isinstance(value, list) and all(
        isinstance(message, dict) and "role" in message and isinstance(message.get("parts"), list)
        for message in value)
