"""The export redaction step: a RedactionPolicy applied to every span, span event and log record before it leaves
(and to imported data before it is stored).

The policy is tracekit.redaction's: built-in secret and personal-data rules by default, a policy file with
`--redaction-policy FILE` (or `TRACEKIT_REDACTION_FILE`), none with `--no-redaction`. Stored spans were usually
redacted once already on their way in; running the export policy again is cheap (values without trigger characters
skip the regexes) and lets a team use a stricter policy for what leaves the laptop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord

from tracekit.export.rebuild import StoredSpan
from tracekit.redaction import RedactionPolicy
from tracekit.redaction_screen import flag_rows


class Redactor:
    """Applies one policy to rebuilt spans and log records, counting masked values."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.count = 0

    def attributes(self, attributes: Any) -> dict[str, Any]:
        """A redacted copy of one attribute mapping."""
        if not attributes:
            return dict(attributes or {})
        redacted, count = self.policy.redact_attributes(attributes)
        self.count += count
        return redacted

    def spans(self, spans: Sequence[StoredSpan], attribute_texts: Any = None) -> list[StoredSpan]:
        """Redacted copies of `spans` (attributes and event attributes).

        `attribute_texts`, the spans' stored attribute JSON (aligned with `spans`), lets the page be screened first
        with the collector's one-RE2 screen (a superset of what the policy can change): span attributes the screen
        does not flag are left as they are, as on the OTLP path. Event attributes are always redacted."""
        if self.policy.is_noop:
            return list(spans)
        flagged = set(flag_rows(self.policy, attribute_texts)) if attribute_texts is not None else None
        result = []
        for index, span in enumerate(spans):
            if flagged is None or index in flagged:
                result.append(span.replace(attributes=self.attributes(span.attributes),
                                           event_attributes=self.attributes))
            elif span.events:
                result.append(span.replace(event_attributes=self.attributes))
            else:
                result.append(span)
        return result

    def logs(self, records: Sequence[ReadableLogRecord]) -> list[ReadableLogRecord]:
        """Redacted copies of log records (attributes and a string body)."""
        if self.policy.is_noop:
            return list(records)
        result = []
        for readable in records:
            original = readable.log_record
            body = original.body
            if isinstance(body, str):
                body, count = self.policy.redact_text(body)
                self.count += count
            record = LogRecord(
                timestamp=original.timestamp, observed_timestamp=original.observed_timestamp,
                context=original.context, trace_id=original.trace_id, span_id=original.span_id,
                trace_flags=original.trace_flags, severity_text=original.severity_text,
                severity_number=original.severity_number, body=body,
                attributes=self.attributes(original.attributes), event_name=original.event_name)
            result.append(replace(readable, log_record=record))
        return result


def export_redactor(policy_file: str | None = None, *, disabled: bool = False) -> Redactor | None:
    """The redactor for an export: from `policy_file`, else the environment's policy; None when disabled."""
    if disabled:
        return None
    policy = RedactionPolicy.from_file(policy_file) if policy_file else RedactionPolicy.from_env()
    return None if policy.is_noop else Redactor(policy)
