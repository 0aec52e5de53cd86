"""Export to Application Insights with the real Azure Monitor exporter against a fake ingestion endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.export.fake_ingestion import FakeIngestion, Planned, parse_time
from tests.export.helpers import agent_run, make_providers, write_store
from tracekit.export.azure import AzureMonitorError, AzureMonitorSender, parse_connection_string
from tracekit.export.cursor import SidecarCursorStore, sidecar_path
from tracekit.export.limits import ORIGINAL_START
from tracekit.export.rows import RowReader
from tracekit.export.runner import run_export
from tracekit.export.selection import Selection, StoreSource
from tracekit.store.reader import LocalReader

HOUR_NS = 3600 * 10**9


def export(db: Path, fake: FakeIngestion, selection: Selection = Selection(), **kwargs):
    reader = LocalReader.open_file(db)
    sender = AzureMonitorSender(fake.connection_string, initial_backoff=0.01, max_backoff=0.05,
                                max_attempts=kwargs.pop("max_attempts", 8))
    redactor = kwargs.pop("redactor", None)
    try:
        return run_export(StoreSource(reader, selection, redactor=redactor), sender, SidecarCursorStore(sidecar_path(db)),
                          **kwargs)
    finally:
        sender.close()
        reader.close()


def stored_span_ids(db: Path) -> Counter:
    reader = LocalReader.open_file(db)
    try:
        return Counter(reader.sql("SELECT span_id FROM spans").column(0).to_pylist())
    finally:
        reader.close()


def accepted_ids(fake: FakeIngestion, base_type: str = "") -> Counter:
    return Counter(e["data"]["baseData"]["id"] for e in fake.telemetry()
                   if e["data"]["baseType"] in (base_type or ("RemoteDependencyData", "RequestData")))


def test_envelopes_carry_the_spans_faithfully(store: Path) -> None:
    with FakeIngestion() as fake:
        summary = export(store, fake)
        assert summary.complete and not summary.refused
        deps = fake.telemetry("RemoteDependencyData")
        messages = fake.telemetry("MessageData")
        exceptions = fake.telemetry("ExceptionData")
        events = fake.telemetry("EventData")
    assert len(deps) == 60 and len(messages) == 20 and len(exceptions) == 20 and len(events) == 20
    assert summary.delivered == 120
    reader = LocalReader.open_file(store)
    rows = {r["span_id"]: r for r in reader.sql(
        "SELECT span_id, trace_id, parent_span_id, name, duration_ns FROM spans").to_pylist()}
    reader.close()
    for envelope in deps:
        row = rows[envelope["data"]["baseData"]["id"]]
        tags = envelope["tags"]
        assert tags["ai.operation.id"] == row["trace_id"]
        assert tags.get("ai.operation.parentId") == row["parent_span_id"]
        assert envelope["data"]["baseData"]["name"] == row["name"]
        assert tags["ai.cloud.role"] == "demo.travel-agent" and tags["ai.cloud.roleInstance"] == "laptop-1"
        ms = round(row["duration_ns"] / 1e6)
        assert envelope["data"]["baseData"]["duration"] == f"0.00:00:00.{ms:03d}"
    chat = next(e for e in deps if e["data"]["baseData"]["name"] == "chat gpt-4o")
    properties = chat["data"]["baseData"]["properties"]
    assert chat["data"]["baseData"]["type"] == "GenAI | openai"     # gen_ai.system was added beside provider.name
    assert properties["gen_ai.usage.input_tokens"] == "120" and properties["gen_ai.request.model"] == "gpt-4o"
    assert json.loads(properties["gen_ai.response.finish_reasons"]) == ["stop"]   # JSON, not a Python repr
    tool = next(e for e in deps if e["data"]["baseData"]["name"] == "execute_tool get_weather")
    assert tool["data"]["baseData"]["success"] is False
    assert tool["data"]["baseData"]["properties"]["otel.status_description"] == "no such city"
    assert json.loads(tool["data"]["baseData"]["properties"]["_MS.links"])[0]["operation_Id"] == \
        tool["tags"]["ai.operation.id"]
    # The Agents workbook's main-agent attribution, as Azure Monitor's distro records it live.
    by_id = {e["data"]["baseData"]["id"]: e for e in deps}
    for envelope in deps:
        properties = envelope["data"]["baseData"]["properties"]
        root = envelope
        while root["tags"].get("ai.operation.parentId") in by_id:
            root = by_id[root["tags"]["ai.operation.parentId"]]
        assert properties["microsoft.gen_ai.main_agent.name"] == \
            root["data"]["baseData"]["properties"]["gen_ai.agent.name"]
        assert properties["microsoft.gen_ai.main_agent.conversation_id"].startswith("conv-")
    exception = exceptions[0]["data"]["baseData"]["exceptions"][0]
    assert exception["typeName"] == "ValueError" and exception["message"] == "no such city"
    assert events[0]["name"] == "Microsoft.ApplicationInsights.Event"
    assert events[0]["data"]["baseData"]["name"] == "gen_ai.evaluation.result"
    assert events[0]["data"]["baseData"]["properties"]["gen_ai.evaluation.name"] == "relevance"


def test_rerun_sends_nothing_twice(store: Path) -> None:
    with FakeIngestion() as fake:
        first = export(store, fake)
        second = export(store, fake)
        assert first.spans_done == 60 and second.selected == 0 and second.resumed
        assert accepted_ids(fake) == stored_span_ids(store)
        # New spans after the first export are the only ones a later run sends.
        tracer_provider, logger_provider, spans, logs = make_providers()
        agent_run(tracer_provider, logger_provider)
        write_store(store, spans.get_finished_spans(), logs.get_finished_logs())
        third = export(store, fake)
        assert third.spans_done == 3
        assert accepted_ids(fake) == stored_span_ids(store)
        assert max(accepted_ids(fake).values()) == 1


def test_503_burst_429_retry_after_and_206_mixed_errors(store: Path) -> None:
    seen: Counter = Counter()
    refused_for_good: set[str] = set()  # the first two planner spans seen: chosen by order, not by random id

    def fault(envelope):
        data = envelope["data"]
        if data["baseType"] != "RemoteDependencyData":
            return None
        span_id = data["baseData"]["id"]
        seen[span_id] += 1
        if data["baseData"]["name"] == "chat gpt-4o" and seen[span_id] == 1:
            return (500, "Internal server error, retry")      # retryable: must be resent, alone
        if data["baseData"]["name"] == "invoke_agent planner":
            if seen[span_id] == 1 and len(refused_for_good) < 2:
                refused_for_good.add(span_id)
            if span_id in refused_for_good:
                return (400, "Field 'name' on type 'RemoteDependencyData' is invalid")  # for good
        return None

    with FakeIngestion() as fake:
        fake.plan.extend([Planned(503), Planned(503), Planned(503), Planned(429, {"Retry-After": "1"})])
        fake.item_fault = fault
        started = time.monotonic()
        events: list = []
        summary = export(store, fake, page_size=30, on_progress=events.append)
        elapsed = time.monotonic() - started
        statuses = [status for _, status in fake.requests]
    assert statuses[:4] == [503, 503, 503, 429] and 206 in statuses
    # The engine reports progress as events (the export command draws them): the total first, each retry with the
    # destination's answer, each finished batch.
    assert (events[0].event, events[0].done, events[0].total) == ("start", 0, 60)
    retries = [event.message for event in events if event.event == "retry"]
    assert len(retries) == summary.retries and "HTTP 503" in retries[0]
    assert [event.done for event in events if event.event == "batch"] == [30, 60]
    assert elapsed >= 1.0, "Retry-After: 1 was not honoured"
    refused = {item.key.split(":")[2] for item in summary.refused}
    accepted = accepted_ids(fake)
    assert summary.complete and all(item.status == 400 for item in summary.refused)
    assert refused == refused_for_good and len(refused) == 2
    # Every span is accepted exactly once, except the ones refused for good, which are reported.
    assert all(count == 1 for count in accepted.values())
    assert set(accepted) | refused == set(stored_span_ids(store))
    assert not set(accepted) & refused
    # Retryable items were resent alone: each chat span was refused once, then sent once more.
    chats = [k for k, n in seen.items() if n == 2]
    assert len(chats) == 20


def test_retries_exhausted_stop_and_the_next_run_resumes(store: Path) -> None:
    with FakeIngestion() as fake:
        fake.plan.extend([Planned(200)] * 1 + [Planned(503)] * 20)
        summary = export(store, fake, page_size=20, max_attempts=2)
        assert not summary.complete and summary.pending > 0 and summary.last_error.startswith("HTTP 503")
        state = json.loads(sidecar_path(store).read_text())
        assert len(state["cursors"]) == 1
        fake.plan.clear()
        resumed = export(store, fake, page_size=7)   # batches cut differently than in the stopped run
        assert resumed.complete and resumed.resumed
        accepted = accepted_ids(fake)
    assert accepted == stored_span_ids(store)
    assert max(accepted.values()) == 1


def test_killed_export_process_resumes_with_every_span_accepted_once(store: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeIngestion() as fake:
        requests = []
        third_request = threading.Event()

        def on_request(count: int) -> None:
            requests.append(count)
            if len(requests) == 3:
                fake.hold = threading.Event()     # this request never gets an answer
                third_request.set()

        fake.on_request = on_request
        command = [sys.executable, "-m", "tracekit.cli", "export", "azure-monitor", "--db", str(store),
                   "--connection-string", fake.connection_string, "--batch-size", "10", "--no-progress"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert third_request.wait(60), process.communicate(timeout=5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        fake.hold.set()
        fake.hold = None
        fake.on_request = None
        assert 0 < len(accepted_ids(fake)) < 60
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "(resumed)" in done.stderr
        accepted = accepted_ids(fake)
    assert accepted == stored_span_ids(store)
    assert max(accepted.values()) == 1


def test_old_spans_are_refused_here_unless_retimed(tmp_path: Path) -> None:
    tracer_provider, logger_provider, spans, logs = make_providers()
    three_days_ago = time.time_ns() - 72 * HOUR_NS
    agent_run(tracer_provider, logger_provider, start_ns=three_days_ago)
    agent_run(tracer_provider, logger_provider, start_ns=three_days_ago + HOUR_NS)
    db = tmp_path / "old.duckdb"
    write_store(db, spans.get_finished_spans(), logs.get_finished_logs())
    with FakeIngestion() as fake:
        plain = export(db, fake)
        assert plain.limits.too_old == 8 and plain.delivered == 0
        assert {item.reason for item in plain.refused} == {
            "older than 48 hours: Application Insights refuses it (use --retime)"}
        retimed = export(db, fake, retime=True, restart=True)
        assert retimed.complete and not retimed.refused and retimed.limits.retimed == 6
        deps = fake.telemetry("RemoteDependencyData")
        assert len(deps) == 6
        starts = sorted(e["time"] for e in deps)
        originals = sorted(e["data"]["baseData"]["properties"][ORIGINAL_START] for e in deps)
        assert originals[0].startswith(time.strftime("%Y-%m-%d", time.gmtime(three_days_ago / 1e9)))
        # Relative timing is kept: the two turns are still one hour apart.
        assert abs(parse_time(starts[-1]) - parse_time(starts[0]) - 3600) < 1
        assert time.time() - parse_time(starts[-1]) < 120
        # A later --retime run over new, recent spans computes its own (near zero) shift: nothing lands in the future.
        tracer_provider, logger_provider, spans, logs = make_providers()
        agent_run(tracer_provider, logger_provider, agent="late")
        write_store(db, spans.get_finished_spans(), logs.get_finished_logs())
        later = export(db, fake, retime=True)
        late = fake.telemetry("RemoteDependencyData")[6:]
    assert later.spans_done == 3 and len(late) == 3
    assert all(abs(parse_time(e["time"]) - time.time()) < 120 for e in late)


def test_big_content_is_trimmed_keeping_usage_model_agent_and_ids(tmp_path: Path) -> None:
    tracer_provider, logger_provider, spans, logs = make_providers()
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "w" * 200_000}]}])
    agent_run(tracer_provider, logger_provider, big=messages)
    db = tmp_path / "big.duckdb"
    write_store(db, spans.get_finished_spans(), logs.get_finished_logs())
    with FakeIngestion() as fake:
        summary = export(db, fake)
        chat = next(e for e in fake.telemetry("RemoteDependencyData")
                    if e["data"]["baseData"]["name"] == "chat gpt-4o")
    properties = chat["data"]["baseData"]["properties"]
    assert summary.limits.trimmed_keys["gen_ai.input.messages"] == 1
    assert len(json.dumps(properties)) < 64_000
    assert properties["gen_ai.input.messages"].endswith("[trimmed by tracekit]")
    assert properties["tracekit.trimmed"] == "gen_ai.input.messages"
    keys = list(properties)
    assert keys.index("gen_ai.usage.input_tokens") < keys.index("gen_ai.input.messages")
    assert properties["gen_ai.usage.output_tokens"] == "42" and properties["gen_ai.request.model"] == "gpt-4o"


def test_selection_by_trace_and_conversation(store: Path) -> None:
    reader = LocalReader.open_file(store)
    trace_id = reader.sql("SELECT trace_id FROM spans LIMIT 1").column(0)[0].as_py()
    conversation_traces = set(reader.sql(
        "SELECT DISTINCT trace_id FROM spans WHERE conversation_id = 'conv-1'").column(0).to_pylist())
    reader.close()
    with FakeIngestion() as fake:
        export(store, fake, Selection(trace_ids=(trace_id,)))
        assert {e["tags"]["ai.operation.id"] for e in fake.telemetry()} == {trace_id}
    with FakeIngestion() as fake:
        export(store, fake, Selection(conversation_ids=("conv-1",)))
        assert {e["tags"]["ai.operation.id"] for e in fake.telemetry()} == conversation_traces
        assert len(accepted_ids(fake)) == 3 * len(conversation_traces)


def test_connection_string_errors_are_clear() -> None:
    with pytest.raises(AzureMonitorError, match="APPLICATIONINSIGHTS_CONNECTION_STRING"):
        parse_connection_string("")
    with pytest.raises(AzureMonitorError, match="InstrumentationKey"):
        parse_connection_string("IngestionEndpoint=https://x/")
    # A trailing ';' (as the Azure portal shows it) is accepted.
    assert parse_connection_string("InstrumentationKey=abc;")["instrumentationkey"] == "abc"
    with pytest.raises(AzureMonitorError, match="refused"):
        AzureMonitorSender("InstrumentationKey=NOT-A-GUID")


def test_export_redaction_masks_secrets_before_they_leave(tmp_path: Path) -> None:
    from tracekit.cli import main

    tracer_provider, _, spans, _ = make_providers()
    with tracer_provider.get_tracer("t").start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.input.messages": "reach me at ann@example.com",
            "app.api_key": "sk-abcdefghijklmnopqrstuvwxyz123456"}) as span:
        span.add_event("note", {"text": "bob@example.org wrote"})
    db = tmp_path / "secret.duckdb"
    write_store(db, spans.get_finished_spans())
    with FakeIngestion() as fake:
        assert main(["export", "azure-monitor", "--db", str(db), "--connection-string", fake.connection_string,
                     "--no-progress"]) == 0
        dependency = fake.telemetry("RemoteDependencyData")[0]["data"]["baseData"]["properties"]
        message = fake.telemetry("MessageData")[0]["data"]["baseData"]["properties"]
    assert dependency["gen_ai.input.messages"] == "reach me at [REDACTED:email]"
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in dependency["app.api_key"]
    assert "bob@example.org" not in message["text"]


def test_redaction_screens_a_page_and_masks_only_what_the_policy_changes(tmp_path: Path) -> None:
    """Pages are screened with the collector's RE2 screen first: the secret-bearing span is masked, the event's
    secret too, the clean spans go out as stored, and the count is exact."""
    from tracekit.redaction import RedactionPolicy
    from tracekit.redaction.columns import TableRedactor

    tracer_provider, _, spans, _ = make_providers()
    tracer = tracer_provider.get_tracer("t")
    for index in range(40):
        attributes = {"gen_ai.operation.name": "chat", "turn": index, "note": f"plain text {index}"}
        if index == 7:
            attributes["app.api_key"] = "sk-abcdefghijklmnopqrstuvwxyz123456"
        with tracer.start_as_current_span(f"chat {index}", attributes=attributes) as span:
            if index == 20:
                span.add_event("note", {"text": "bob@example.org wrote"})
    db = tmp_path / "screened.duckdb"
    write_store(db, spans.get_finished_spans())
    with FakeIngestion() as fake:
        summary = export(db, fake, redactor=TableRedactor(RedactionPolicy.default()), page_size=40)
        dependencies = {e["data"]["baseData"]["name"]: e["data"]["baseData"]["properties"]
                        for e in fake.telemetry("RemoteDependencyData")}
        message = fake.telemetry("MessageData")[0]["data"]["baseData"]["properties"]
    assert summary.complete and len(dependencies) == 40 and summary.redacted == 2
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in dependencies["chat 7"]["app.api_key"]
    assert "bob@example.org" not in message["text"]
    for index in (0, 20, 39):
        assert dependencies[f"chat {index}"]["note"] == f"plain text {index}"


def test_server_spans_become_requests_and_progress_renders(tmp_path: Path) -> None:
    import io

    from opentelemetry.trace import SpanKind
    from rich.console import Console

    from tracekit.commands.export import ProgressBar

    tracer_provider, _, spans, _ = make_providers()
    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={"gen_ai.agent.name": "front"}):
        with tracer.start_as_current_span("invoke_agent front", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "front",
                "gen_ai.provider.name": "azure.ai.inference"}):
            pass
    db = tmp_path / "server.duckdb"
    write_store(db, spans.get_finished_spans())
    screen = io.StringIO()
    reader = LocalReader.open_file(db)
    with FakeIngestion() as fake:
        sender = AzureMonitorSender(fake.connection_string)
        # The engine reports progress as events; the command draws them (tracekit/commands/export.py).
        with ProgressBar("export to azure-monitor", console=Console(file=screen, force_terminal=True, width=120)) as bar:
            summary = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(db)),
                                 on_progress=bar)
        sender.close()
        request = fake.telemetry("RequestData")
        dependency = fake.telemetry("RemoteDependencyData")
    reader.close()
    assert summary.complete and len(request) == 1 and len(dependency) == 1
    assert request[0]["name"] == "Microsoft.ApplicationInsights.Request"
    assert request[0]["data"]["baseData"]["name"] == "POST /chat"
    assert "ai.operation.parentId" not in request[0]["tags"]
    assert dependency[0]["tags"]["ai.operation.parentId"] == request[0]["data"]["baseData"]["id"]
    assert dependency[0]["data"]["baseData"]["type"] == "GenAI | azure.ai.inference"
    assert "export to azure-monitor" in screen.getvalue() and "2/2" in screen.getvalue()


def test_redirect_is_followed_and_counted_once(store: Path) -> None:
    with FakeIngestion() as fake:
        fake.plan.append(Planned(308, {"Location": fake.endpoint + "/"}))
        summary = export(store, fake, Selection(conversation_ids=("conv-1",)))
        statuses = [status for _, status in fake.requests]
        accepted = accepted_ids(fake)
    assert statuses[0] == 308 and statuses[1] == 200
    assert summary.complete and not summary.refused and summary.retries == 0
    assert len(accepted) == 15 and max(accepted.values()) == 1


def test_the_screen_leaves_clean_spans_untouched(store: Path) -> None:
    """A page with nothing to mask is read through the redactor unchanged: same values, nothing counted."""
    from tracekit.redaction import RedactionPolicy
    from tracekit.redaction.columns import TableRedactor

    reader = LocalReader.open_file(store)
    plain = StoreSource(reader, Selection())
    redactor = TableRedactor(RedactionPolicy.default())
    masked = StoreSource(reader, Selection(), redactor=redactor)
    keys = plain.list_keys()
    before, after = RowReader(plain).fetch(keys), RowReader(masked).fetch(keys)
    reader.close()
    assert redactor.masked == 0 and len(after.keys) == 60
    assert after.attributes == before.attributes
    assert after.events == before.events and sum(map(len, after.events.values())) > 0


def test_cost_is_sent_as_the_measurement_the_tiles_read(store: Path) -> None:
    """The stored price of each model call reaches Application Insights as customMeasurements["tracekit.cost_usd"]
    (the exporter's own `microsoft.custom_measurements` path, checked against it shape by shape), equal to what the
    local views give the same KQL and to genai-prices' price; spans without a price carry no measurement."""
    from datetime import timezone

    from genai_prices import Usage, calc_price

    from tracekit.query.kql import run_kql

    with FakeIngestion() as fake:
        assert export(store, fake).complete
        deps = fake.telemetry("RemoteDependencyData")
    sent = {e["data"]["baseData"]["id"]: e["data"]["baseData"] for e in deps}
    reader = LocalReader.open_file(store)
    try:
        local = {row["id"]: row for row in run_kql(
            reader, 'dependencies | project id, name, Cost = toreal(customMeasurements["tracekit.cost_usd"]), '
                    'start = timestamp').to_pylist()}
    finally:
        reader.close()
    assert set(sent) == set(local)
    chats = 0
    for span_id, data in sent.items():
        measurement = data["measurements"].get("tracekit.cost_usd")
        assert measurement == local[span_id]["Cost"]  # None == None for tools and agents: absent, not 0
        assert "microsoft.custom_measurements" not in data["properties"]
        if data["name"] == "chat gpt-4o":
            chats += 1
            when = local[span_id]["start"].replace(tzinfo=timezone.utc)
            price = calc_price(Usage(input_tokens=120, output_tokens=42), model_ref="gpt-4o", provider_id="openai",
                               genai_request_timestamp=when)
            assert measurement == pytest.approx(float(price.total_price), rel=1e-9) and measurement > 0
        else:
            assert "tracekit.cost_usd" not in data["measurements"]
    assert chats == 20
