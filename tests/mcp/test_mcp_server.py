"""`tracekit mcp` driven by the MCP SDK's own client over stdio, against a store the demo wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import AsyncIterator

import pytest
import pytest_asyncio
from mcp import ClientSession

import tracekit.dashboards as dashboards
from tests.mcp.conftest import CONVERSATIONS, file_digest, mcp_session
from tracekit.readout.budget import is_cut

# One event loop and one `tracekit mcp` for the module: the tests only read, and starting the server took most of
# each short test.
pytestmark = pytest.mark.asyncio(loop_scope="module")

TOOLS = {"search_traces", "get_trace", "get_span", "get_conversation", "run_query", "list_errors", "get_dashboard",
         "get_schema"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp_server(demo_store) -> AsyncIterator[ClientSession]:
    """The module's MCP client session, entered and left in a task of its own (the SDK's streams must be closed by
    the task that opened them)."""
    ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def own() -> None:
        try:
            async with mcp_session(demo_store) as session:
                ready.set_result(session)
                await stop.wait()
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise

    task = asyncio.create_task(own())
    yield await ready
    stop.set()
    await task


@contextlib.asynccontextmanager
async def in_session(session: ClientSession) -> AsyncIterator[ClientSession]:
    yield session


def _data(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_tools_and_resources_are_listed_read_only_with_described_parameters(mcp_server, demo_store):
    async with in_session(mcp_server) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        resources = {str(resource.uri) for resource in (await session.list_resources()).resources}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60, tool.name
        assert tool.annotations.read_only_hint is True and tool.annotations.destructive_hint is False
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"
    assert tools["get_trace"].input_schema["required"] == ["trace_id"]
    assert tools["run_query"].input_schema["properties"]["language"]["enum"] == ["kql", "sql"]
    assert resources == {"tracekit://schema", "tracekit://examples"}


async def test_search_traces_summarises_every_trace_and_filters(mcp_server, demo_store, store_sql):
    expected = {row["trace_id"]: row for row in store_sql(
        "SELECT trace_id, count(*) AS spans, count(*) FILTER (WHERE status_code = 'ERROR') AS errors, "
        "list(DISTINCT agent_name ORDER BY agent_name) FILTER (WHERE agent_name IS NOT NULL) AS agents, "
        "sum(input_tokens) FILTER (WHERE operation_name = 'chat') AS input_tokens, "
        "min(start_time_ns) AS start_ns, any_value(conversation_id) FILTER (WHERE conversation_id IS NOT NULL) AS conv "
        "FROM spans GROUP BY trace_id")}
    booked = {row["trace_id"] for row in store_sql("SELECT DISTINCT trace_id FROM spans WHERE tool_name = 'book_flight'")}
    lisbon = {row["trace_id"] for row in store_sql(
        "SELECT DISTINCT trace_id FROM spans WHERE contains(lower(attributes::VARCHAR), 'lisbon')")}
    async with in_session(mcp_server) as session:
        everything = _data(await session.call_tool("search_traces", {}))
        first = _data(await session.call_tool("search_traces", {"limit": 1}))
        second = _data(await session.call_tool("search_traces", {"limit": 1, "offset": 1}))
        failed = _data(await session.call_tool("search_traces", {"errors_only": True, "agent": "hotel-agent"}))
        by_tool = _data(await session.call_tool("search_traces", {"tool": "book_flight", "since": "1h"}))
        by_text = _data(await session.call_tool("search_traces", {"text": "LISBON"}))
        nothing = _data(await session.call_tool("search_traces", {"model": "no-such-model"}))
        conversation = _data(await session.call_tool("search_traces", {"conversation": "demo-session-002"}))
        bad_time = await session.call_tool("search_traces", {"since": "yesterday-ish"})
    assert len(expected) == CONVERSATIONS
    assert everything["page"]["total"] == len(expected) and everything["page"]["next_offset"] is None
    for summary in everything["traces"]:
        row = expected[summary["trace_id"]]
        assert summary["spans"] == row["spans"]
        assert summary["errors"] == row["errors"] == 1  # the search_hotels timeout, retried
        assert summary["agents"] == row["agents"] == ["flight-agent", "hotel-agent", "orchestrator"]
        assert summary["input_tokens"] == row["input_tokens"] > 0
        assert summary["root_span"] == "execute_task plan_trip"
        assert summary["conversation_id"] == row["conv"]
    newest_first = sorted(expected, key=lambda trace: -expected[trace]["start_ns"])
    assert [summary["trace_id"] for summary in everything["traces"]] == newest_first
    assert [t["trace_id"] for t in first["traces"] + second["traces"]] == newest_first
    assert first["page"]["next_offset"] == 1 and "offset=1" in first["page"]["note"]
    assert {t["trace_id"] for t in failed["traces"]} == set(expected)
    assert {t["trace_id"] for t in by_tool["traces"]} == booked
    assert lisbon and {t["trace_id"] for t in by_text["traces"]} == lisbon  # case-insensitive
    assert nothing["traces"] == [] and nothing["page"]["total"] == 0
    assert [t["conversation_id"] for t in conversation["traces"]] == ["demo-session-002"]
    assert bad_time.is_error and "since='yesterday-ish'" in bad_time.content[0].text


async def test_get_trace_is_the_span_tree_and_get_span_returns_cut_values_whole(mcp_server, demo_store, store_sql):
    trace_id = store_sql("SELECT trace_id FROM spans WHERE conversation_id = 'demo-session-001' LIMIT 1")[0]["trace_id"]
    spans = {row["span_id"]: row for row in store_sql(
        "SELECT span_id, parent_span_id, name, status_code, attributes::VARCHAR AS attributes FROM spans "
        "WHERE trace_id = ?", [trace_id])}
    async with in_session(mcp_server) as session:
        tree = _data(await session.call_tool("get_trace", {"trace_id": trace_id, "value_chars": 40}))
        paged = _data(await session.call_tool("get_trace", {"trace_id": trace_id, "limit": 5}))
        cut_span = next(span for span in tree["spans"] if any(is_cut(v) for v in span["attributes"].values()))
        key = next(k for k, v in cut_span["attributes"].items() if is_cut(v))
        marker = cut_span["attributes"][key]
        whole = _data(await session.call_tool("get_span", {"trace_id": trace_id, "span_id": cut_span["span_id"],
                                                           "attribute": key}))
        piece = _data(await session.call_tool("get_span", {"trace_id": trace_id, "span_id": cut_span["span_id"],
                                                           "attribute": key, "offset": 10, "max_chars": 1000}))
        span = _data(await session.call_tool("get_span", {"trace_id": trace_id, "span_id": cut_span["span_id"]}))
        missing = await session.call_tool("get_trace", {"trace_id": "0" * 32})
        malformed = await session.call_tool("get_trace", {"trace_id": "not-a-trace"})
    assert tree["span_count"] == len(spans) and {s["span_id"] for s in tree["spans"]} == set(spans)
    depth = {s["span_id"]: s["depth"] for s in tree["spans"]}
    for shown in tree["spans"]:
        stored = spans[shown["span_id"]]
        assert shown["name"] == stored["name"] and shown["status"] == stored["status_code"]
        assert shown["parent_span_id"] == stored["parent_span_id"]
        if stored["parent_span_id"]:
            assert depth[stored["parent_span_id"]] == shown["depth"] - 1
            # depth first: a parent is listed before its children
            assert [s["span_id"] for s in tree["spans"]].index(stored["parent_span_id"]) < \
                [s["span_id"] for s in tree["spans"]].index(shown["span_id"])
    failed = [s for s in tree["spans"] if s["status"] == "ERROR"]
    assert [s["error_type"] for s in failed] == ["TimeoutError"]
    stored_value = json.loads(spans[cut_span["span_id"]]["attributes"])[key]
    assert marker.startswith(str(stored_value)[:40]) and f'span_id="{cut_span["span_id"]}"' in marker
    assert f"attribute=\"{key}\"" in marker and f"of {len(str(stored_value)):,} characters" in marker
    assert whole["value"] == stored_value and whole["next_offset"] is None
    assert piece["value"] == str(stored_value)[10:1010]
    assert span["attributes"] == json.loads(spans[cut_span["span_id"]]["attributes"])
    assert span["resource"]["service.name"] == "tracekit-demo"
    assert [s["span_id"] for s in paged["spans"]] == [s["span_id"] for s in tree["spans"]][:5]
    assert paged["page"]["next_offset"] == 5 and f"of {len(spans)}" in paged["page"]["note"]
    assert missing.is_error and "no trace 000" in missing.content[0].text
    assert malformed.is_error and "expected 32 hex digits" in malformed.content[0].text


async def test_get_conversation_by_conversation_response_and_trace_id(mcp_server, demo_store, store_sql):
    trace_id = store_sql("SELECT trace_id FROM spans WHERE conversation_id = 'demo-session-001' LIMIT 1")[0]["trace_id"]
    response_id = store_sql("SELECT response_id FROM spans WHERE trace_id = ? AND operation_name = 'chat' "
                            "AND response_id IS NOT NULL ORDER BY start_time_ns LIMIT 1", [trace_id])[0]["response_id"]
    hotel_result = store_sql(
        "SELECT attributes->>'$.\"gen_ai.tool.call.result\"' AS result FROM spans WHERE trace_id = ? "
        "AND tool_name = 'search_hotels' AND status_code <> 'ERROR'", [trace_id])[0]["result"]
    chats = store_sql("SELECT count(*) AS n FROM spans WHERE trace_id = ? AND operation_name = 'chat'", [trace_id])
    async with in_session(mcp_server) as session:
        markdown = await session.call_tool("get_conversation", {"id": "demo-session-001"})
        by_trace = _data(await session.call_tool("get_conversation", {"id": trace_id, "format": "json"}))
        by_response = _data(await session.call_tool("get_conversation", {"id": response_id}))
        paged = _data(await session.call_tool("get_conversation", {"id": "demo-session-001", "limit": 3}))
        unknown = await session.call_tool("get_conversation", {"id": "no-such-conversation"})
    data = _data(markdown)
    assert data["kind"] == "conversation" and data["trace_ids"] == [trace_id]
    assert data["model_calls"] == chats[0]["n"]
    text = markdown.content[0].text
    assert text.startswith("# conversation `demo-session-001`")
    assert "Plan a 3-night trip to Lisbon" in text and "[REDACTED:email]" in text
    assert "**⚙ `search_hotels`**" in text and f"↳ result:\n```\n{hotel_result}\n```" in text
    assert json.loads(json.dumps(by_trace["entries"])) == data["entries"]
    assert by_trace["kind"] == "trace" and by_trace["conversation_id"] == "demo-session-001"
    assert by_response["kind"] == "response" and by_response["trace_ids"] == [trace_id]
    tools = [entry["tool"] for entry in data["entries"] if entry["kind"] == "tool"]
    # the hotel search timed out once and was retried with the same call id: both attempts are there
    hotels = [tool for tool in tools if tool["name"] == "search_hotels"]
    assert [(hotel["status"], hotel.get("attempt")) for hotel in hotels] == [("error", None), ("ok", 2)]
    assert "TimeoutError" in hotels[0]["error"] and hotels[1]["result"] == hotel_result
    assert len(paged["entries"]) == 3 and paged["page"]["next_offset"] == 3
    assert unknown.is_error and "no conversation, response or trace" in unknown.content[0].text


async def test_run_query_answers_kql_and_sql_and_refuses_to_write(mcp_server, demo_store, store_sql):
    before = file_digest(demo_store)
    spans = store_sql("SELECT count(*) AS n FROM spans")[0]["n"]
    tools = store_sql("SELECT tool_name, count(*) AS n FROM spans WHERE operation_name = 'execute_tool' "
                      "GROUP BY 1")
    writes = ["DELETE FROM spans", "DROP TABLE spans", "UPDATE spans SET name = 'x'",
              "SELECT 1; DELETE FROM spans", "CREATE TABLE stolen AS SELECT * FROM spans",
              "COPY spans TO '/tmp/tracekit-mcp-leak.csv'", "INSERT INTO spans SELECT * FROM spans"]
    async with in_session(mcp_server) as session:
        kql = _data(await session.call_tool("run_query", {"query": (
            'dependencies | where customDimensions["gen_ai.operation.name"] == "execute_tool" '
            '| summarize calls = count() by tool = tostring(customDimensions["gen_ai.tool.name"]) '
            '| order by tool asc')}))
        sql = _data(await session.call_tool("run_query", {"query": "SELECT count(*) AS n FROM spans",
                                                          "language": "sql"}))
        paged = _data(await session.call_tool("run_query", {"query": "spans | project span_id", "limit": 7}))
        typo = await session.call_tool("run_query", {"query": "spans\n| summarise count()"})
        unknown = await session.call_tool("run_query", {"query": "nosuchtable | take 1"})
        attempts = [await session.call_tool("run_query", {"query": text, "language": "sql"}) for text in writes]
        kql_write = await session.call_tool("run_query", {"query": ".drop table spans"})
        after = _data(await session.call_tool("run_query", {"query": "SELECT count(*) AS n FROM spans",
                                                            "language": "sql"}))
    assert kql["columns"] == [{"name": "tool", "type": "string"}, {"name": "calls", "type": "int64"}]
    assert kql["rows"] == [{"tool": row["tool_name"], "calls": row["n"]}
                           for row in sorted(tools, key=lambda row: row["tool_name"])]
    assert sql["rows"] == [{"n": spans}]
    assert len(paged["rows"]) == 7 and paged["page"]["total"] == spans and paged["page"]["next_offset"] == 7
    assert typo.is_error and "line 2, column 3" in typo.content[0].text and "did you mean `summarize`" in \
        typo.content[0].text
    assert unknown.is_error and "nosuchtable" in unknown.content[0].text
    for text, attempt in zip(writes, attempts):
        assert attempt.is_error, text
        assert re.search(r"read-only|exactly one SQL statement", attempt.content[0].text), attempt.content[0].text
    assert kql_write.is_error
    assert after["rows"] == [{"n": spans}]
    assert file_digest(demo_store) == before


async def test_list_errors_dashboard_schema_and_examples(mcp_server, demo_store, store_sql):
    runs = store_sql("SELECT count(*) AS n FROM spans WHERE operation_name = 'invoke_agent'")[0]["n"]
    failed = store_sql("SELECT trace_id FROM spans WHERE status_code = 'ERROR'")
    async with in_session(mcp_server) as session:
        errors = _data(await session.call_tool("list_errors", {"since": "all"}))
        board = _data(await session.call_tool("get_dashboard", {"name": "agents", "since": "all"}))
        no_board = await session.call_tool("get_dashboard", {"name": "nope"})
        schema = (await session.read_resource("tracekit://schema")).contents[0].text
        examples = (await session.read_resource("tracekit://examples")).contents[0].text
        one_table = _data(await session.call_tool("get_schema", {"table": "dependencies"}))
        example_results = []
        for language, text in re.findall(r"```(kql|sql)\n(.*?)\n```", examples, re.S):
            example_results.append(await session.call_tool("run_query", {"query": text, "language": language}))
    assert [(g["error_type"], g["span_name"], g["count"]) for g in errors["groups"]] == \
        [("TimeoutError", "execute_tool search_hotels", len(failed))]
    assert set(errors["groups"][0]["example_trace_ids"]) == {row["trace_id"] for row in failed}
    assert "timed out" in errors["groups"][0]["example_message"]
    assert [tile["id"] for tile in board["tiles"]] == [tile.id for tile in dashboards.load("agents").tiles]
    runs_tile = next(tile for tile in board["tiles"] if tile["id"] == "runs_total")
    assert runs_tile["rows"] == [{"Runs": runs}] and "invoke_agent" in runs_tile["kql"]
    assert all("error" not in tile for tile in board["tiles"])
    assert no_board.is_error and "available: agents" in no_board.content[0].text
    assert "## spans" in schema and "- `conversation_id` VARCHAR — gen_ai.conversation.id" in schema
    assert "## AppDependencies" in schema and "__tk_" not in schema
    columns = {column["name"]: column for column in one_table["tables"][0]["columns"]}
    assert columns["operation_Id"]["note"].startswith("trace id") and columns["customDimensions"]["type"] == "JSON"
    assert len(example_results) >= 8
    for result in example_results:
        assert not result.is_error, result.content[0].text
        assert result.structured_content["rows"], "every example finds rows in the demo store"


async def test_a_large_answer_is_cut_to_the_character_budget(mcp_server, demo_store):
    async with in_session(mcp_server) as session:
        small = _data(await session.call_tool("run_query", {"query": "spans | project attributes", "max_chars": 1000,
                                                            "limit": 1000}))
        whole = await session.call_tool("run_query", {"query": "spans | project attributes", "limit": 1000,
                                                      "max_chars": 400_000})
    assert 0 < small["page"]["returned"] < small["page"]["total"]
    assert "1,000-character budget" in small["page"]["note"] and small["page"]["next_offset"] == \
        small["page"]["returned"]
    assert len(json.dumps(small["rows"], separators=(",", ":"))) <= 1000
    assert whole.structured_content["page"]["returned"] == whole.structured_content["page"]["total"]
