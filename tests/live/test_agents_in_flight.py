"""Agents in flight, end to end: a real application process (tracekit.configure()) held inside a tool call while the
test reads the real collector and drives the TUI; then released, or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from textual.widgets import Input, Static

from tests.tui.tui_helpers import plain, shown, wait_for
from tracekit.collector.service import Collector
from tracekit.export.rows import RowReader
from tracekit.export.selection import Selection, StoreSource
from tracekit.query.kql import run_kql
from tracekit.store.open_spans import EXPORT_DELAY_S, NOT_REPORTING, RUNNING, open_spans
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.conversation import ConversationScreen
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.span_tree import SpanTree
from tracekit.tui.widgets.trace_table import TraceTable

APP = Path(__file__).with_name("app_in_flight.py")
HEARTBEAT_S = 0.3


def until(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class HeldApp:
    """The application process, inside its `wait_for_approval` tool call until `release()`."""

    def __init__(self, collector: Collector, tmp_path: Path, **env: str) -> None:
        self.inside, self.gate = tmp_path / "inside", tmp_path / "gate"
        environment = {key: value for key, value in os.environ.items() if key != "TRACEKIT_LIVE"}
        environment.update({"TRACEKIT_LIVE_HEARTBEAT_INTERVAL": str(HEARTBEAT_S), "OTEL_BLRP_SCHEDULE_DELAY": "100",
                            "OTEL_BSP_SCHEDULE_DELAY": "100", **env})
        self.process = subprocess.Popen(
            [sys.executable, str(APP), f"http://{collector.grpc_endpoint}", str(self.inside), str(self.gate)],
            env=environment, cwd=Path(__file__).parents[2])
        until(lambda: self.inside.exists() or self.process.poll() is not None, what="the tool call")
        assert self.process.poll() is None, "the application exited before its tool call"

    def release(self) -> None:
        self.gate.write_text("go")
        assert self.process.wait(timeout=30) == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def held(collector: Collector, tmp_path: Path) -> Iterator[HeldApp]:
    app = HeldApp(collector, tmp_path)
    yield app
    if app.process.poll() is None:
        app.kill()


def ended_names(collector: Collector) -> set[str]:
    return {row["name"] for row in collector.reader().sql("SELECT name FROM spans").to_pylist()}


async def test_a_held_tool_call_is_open_under_its_agent_then_stored_when_released(collector, held):
    reader = collector.reader()
    # The finished warm-up trace and the finished lookup tool are stored; the agent and its tool are open.
    open_now = until(lambda: len(open_spans(reader)) == 2 and "execute_tool lookup" in ended_names(collector)
                     and open_spans(reader), what="two open spans")
    by_name = {span.name: span for span in open_now}
    agent, tool = by_name["invoke_agent researcher"], by_name["execute_tool wait_for_approval"]
    assert tool.parent_span_id == agent.span_id and tool.trace_id == agent.trace_id
    assert agent.parent_span_id is None and agent.kind == "INTERNAL"
    assert tool.attributes["gen_ai.tool.name"] == "wait_for_approval"
    assert {agent.state, tool.state} == {RUNNING}
    assert "invoke_agent researcher" not in ended_names(collector)
    # Start records and heartbeats are plumbing: stored as log rows, kept out of the Application Insights views.
    # They travel through the log pipeline, batched apart from the spans, so the last may land a moment later.
    until(lambda: reader.sql("SELECT count(*) AS n FROM logs").to_pylist()[0]["n"] >= 5, what="five plumbing records")
    assert run_kql(reader, "union traces, customEvents | count").to_pylist()[0]["Count"] == 0

    app = TracekitApp(reader, live=True)
    async with app.run_test(size=(180, 40)) as pilot:
        table = app.screen.query_one(TraceTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        running = table.traces[0]
        assert running.trace_id == agent.trace_id and running.running
        assert running.root_name == "invoke_agent researcher" and running.span_count == 3  # 2 open + lookup
        assert not table.traces[1].live_state
        first = running.duration_ns
        await wait_for(pilot, lambda: table.traces and table.traces[0].duration_ns > first + 300_000_000)  # ticks

        await pilot.press("slash")
        app.screen.query_one("#filter-input", Input).value = "status:running"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.trace_filter.running and table.row_count == 1)
        assert table.traces[0].trace_id == agent.trace_id

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        tree = app.screen.query_one(SpanTree)
        lines = [plain(node.label) for node in tree.root.children]
        assert len(lines) == 1 and "● running" in lines[0] and "invoke_agent researcher" in lines[0]
        children = [plain(node.label) for node in tree.root.children[0].children]
        assert any("execute_tool lookup" in line and "running" not in line for line in children)
        assert any("● running" in line and "execute_tool wait_for_approval" in line for line in children)

        # The conversation replay shows the turn in progress.
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.in_flight)
        status = shown(app.screen.query_one("#conversation-status", Static))
        assert "● in progress  invoke_agent researcher › execute_tool wait_for_approval" in status
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen))

        held.release()
        # The ended spans replace the open ones in the open trace view.
        await wait_for(pilot, lambda: not any(row.live_state for row in app.screen.spans.values())
                       and len(app.screen.spans) == 3, timeout=20)

    until(lambda: not open_spans(reader), what="the open spans to close")
    assert {"invoke_agent researcher", "execute_tool wait_for_approval"} <= ended_names(collector)
    # Export and forwarding send the spans and their own log records, never the start records.
    source = StoreSource(reader, Selection())
    keys = source.list_keys()
    assert len(keys) == 4  # warmup, researcher, lookup, wait_for_approval
    assert RowReader(source).fetch(keys).logs == []
    assert reader.sql("SELECT count(*) AS n FROM logs WHERE span_id IS NOT NULL").to_pylist()[0]["n"] == 4


def test_a_killed_process_is_no_longer_reporting_after_its_heartbeat_window(collector, held):
    reader = collector.reader()
    spans = until(lambda: len(open_spans(reader)) == 2 and open_spans(reader), what="two open spans")
    assert {span.state for span in spans} == {RUNNING}
    time.sleep(3 * HEARTBEAT_S + EXPORT_DELAY_S + 0.5)  # heartbeats keep a live process running past its window...
    assert {span.state for span in open_spans(reader)} == {RUNNING}
    held.kill()
    # ...and a killed one stops reporting once it has missed them (3 intervals plus the export delay).
    stale = until(lambda: (found := open_spans(reader)) and all(s.state == NOT_REPORTING for s in found) and found,
                  timeout=15, what="no longer reporting")
    assert len(stale) == 2
    # Past the forget horizon they are not listed at all.
    assert open_spans(reader, now_ns=time.time_ns() + 2 * 3600 * 10**9) == []


def test_start_records_are_redacted_like_every_record(collector):
    import tracekit
    from tracekit.live import LiveSpanProcessor

    telemetry = tracekit.configure("redacted", endpoint=f"http://{collector.grpc_endpoint}", metrics=False,
                                   set_global=False)
    try:
        tracer = telemetry.tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("call", attributes={"note": "key sk-proj-abcdefghijklmnopqrstuvwxyz012345"}):
            telemetry.force_flush()
            rows = until(lambda: collector.reader().sql(
                "SELECT attributes::VARCHAR AS a FROM logs WHERE event_name = 'tracekit.span.started'").to_pylist(),
                what="the start record")
    finally:
        telemetry.shutdown()
    assert "sk-proj" not in rows[0]["a"] and "[REDACTED:openai_key]" in rows[0]["a"]
    processors = telemetry.tracer_provider._active_span_processor._span_processors
    assert any(isinstance(p, LiveSpanProcessor) for p in processors)
    off = tracekit.configure("off", endpoint=f"http://{collector.grpc_endpoint}", metrics=False, set_global=False,
                             live=False)
    off.shutdown()
    assert not any(isinstance(p, LiveSpanProcessor) for p in off.tracer_provider._active_span_processor._span_processors)


def test_live_off_by_environment(collector, tmp_path):
    held = HeldApp(collector, tmp_path, TRACEKIT_LIVE="false")
    try:
        until(lambda: "execute_tool lookup" in ended_names(collector), what="the lookup span")
        time.sleep(1.0)  # longer than the log batching delay
        count = collector.reader().sql(
            "SELECT count(*) AS n FROM logs WHERE event_name LIKE 'tracekit.%'").to_pylist()[0]["n"]
        assert count == 0 and open_spans(collector.reader()) == []
    finally:
        held.kill()
