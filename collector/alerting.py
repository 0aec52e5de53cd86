"""Alert rules evaluated while the collector runs (`tracekit collect --alerts FILE`).

Each rule runs on its own frequency over the last `window` of the store. A change of state (a rule starts firing,
stops firing, or cannot run) is recorded as an OTLP log record, the event `tracekit.alert`, sent through the
collector's own pipeline like any other telemetry: so it is stored, redacted and queryable (`customEvents | where
name == "tracekit.alert"`, the attribute microsoft.custom_event.name marks it as one), and the TUI shows the latest state of each rule. A state that does not change is not
written again, so a rule that fires for a day costs one row, not one every five minutes.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracekit.alerts.check import RuleResult, check_rule
from tracekit.alerts.rules import AlertRule
from tracekit.collector.periodic import PeriodicJob

log = logging.getLogger("tracekit.collector.alerting")

EVENT_NAME = "tracekit.alert"
SCOPE = "tracekit.collector.alerting"
MAX_ROWS_RECORDED = 50
SEVERITY_NUMBERS = {0: 21, 1: 17, 2: 13, 3: 9, 4: 5}  # Azure severity -> OTel FATAL, ERROR, WARN, INFO, DEBUG


class AlertScheduler(PeriodicJob):
    """A thread that checks each rule when it is due and records every change of state."""

    name = "tracekit-alerts"

    def __init__(self, rules: list[AlertRule], reader_factory: Callable[[], Any],
                 ingest: Callable[[str, bytes], Any], *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(reader_factory, interval=1.0)
        self.rules = [rule for rule in rules if rule.enabled]
        self._ingest = ingest
        self._clock = clock
        self._due = {rule.name: 0.0 for rule in self.rules}
        self.states: dict[str, str] = {}          # rule name -> fired, ok, error (last recorded)
        self.checks = 0

    def status(self) -> dict[str, Any]:
        return {"alerts": {"rules": len(self.rules), "checks": self.checks,
                           "firing": sorted(name for name, state in self.states.items() if state == "fired")}}

    def run_due(self) -> list[RuleResult]:
        """Check the rules that are due now; record the ones whose state changed. Returns what was checked."""
        now = self._clock()
        due = [rule for rule in self.rules if self._due[rule.name] <= now]
        if not due:
            return []
        results = [check_rule(self.reader, rule) for rule in due]
        for result in results:
            self._due[result.rule.name] = now + result.rule.frequency.total_seconds()
            self.checks += 1
            state = "ok" if result.status == "ok" else result.status
            previous = self.states.get(result.rule.name)
            if state != previous and not (previous is None and state == "ok"):
                self._record(result, "resolved" if state == "ok" else state)
                if state == "fired":
                    log.warning("alert %r fires: %s on %d row(s)", result.rule.name, result.rule.condition,
                                len(result.fired_rows))
                elif state == "error":
                    log.error("alert %r cannot run: %s", result.rule.name, result.error)
            self.states[result.rule.name] = state
        return results

    def tick(self) -> None:
        self.run_due()

    def _record(self, result: RuleResult, state: str) -> None:
        self._ingest("logs", alert_event(result, state))


def alert_event(result: RuleResult, state: str) -> bytes:
    """The `tracekit.alert` log record for a rule's new state, as a serialized OTLP logs request."""
    rule = result.rule
    fired = result.fired_rows
    attributes: dict[str, Any] = {
        "microsoft.custom_event.name": EVENT_NAME,   # what makes it a customEvents row, here and in Azure
        "tracekit.alert.name": rule.name,
        "tracekit.alert.state": state,
        "tracekit.alert.severity": rule.severity,
        "tracekit.alert.condition": rule.condition,
        "tracekit.alert.window": rule.window_text,
        "tracekit.alert.description": rule.description,
        "tracekit.alert.rows": json.dumps([{"value": row.value, **row.dimensions} for row in fired[:MAX_ROWS_RECORDED]],
                                          default=str),
        "tracekit.alert.fired_rows": len(fired),
    }
    if result.error:
        attributes["tracekit.alert.error"] = result.error
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="tracekit")))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = SCOPE
    record = scope_logs.log_records.add()
    record.time_unix_nano = record.observed_time_unix_nano = time.time_ns()
    record.event_name = EVENT_NAME
    record.severity_number = SEVERITY_NUMBERS[rule.severity] if state == "fired" else 9
    record.severity_text = {"fired": "ALERT", "resolved": "RESOLVED", "error": "ERROR"}[state]
    record.body.string_value = f"{rule.name}: {state} ({rule.condition}, {len(fired)} row(s))"
    for key, value in attributes.items():
        record.attributes.append(KeyValue(key=key, value=_any_value(value)))
    return request.SerializeToString()


def _any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=str(value))
