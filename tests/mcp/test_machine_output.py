"""The CLI's machine-readable output: the same shapes the MCP tools return, and exit codes in every --help."""

from __future__ import annotations

import json
import re

import pytest

from tests.mcp.conftest import mcp_session
from tracekit.cli import build_parser, main


def _json_out(capsys, *argv: str):
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    return captured.out


async def test_cli_json_is_what_the_mcp_tools_return(demo_store, store_sql, capsys):
    replay = json.loads(_json_out(capsys, "replay", "demo-session-001", "--db", str(demo_store), "--format", "json"))
    board = json.loads(_json_out(capsys, "dashboards", "show", "agents", "--db", str(demo_store), "--since", "all",
                                 "--format", "json"))
    query = "dependencies | summarize calls = count() by name | order by name asc"
    rows = json.loads(_json_out(capsys, "query", query, "--db", str(demo_store), "--format", "json"))
    lines = _json_out(capsys, "query", query, "--db", str(demo_store), "--format", "jsonl").splitlines()
    async with mcp_session(demo_store) as session:
        conversation = (await session.call_tool("get_conversation", {"id": "demo-session-001"})).structured_content
        dashboard = (await session.call_tool("get_dashboard", {"since": "all"})).structured_content
        result = (await session.call_tool("run_query", {"query": query})).structured_content
    assert set(replay) == set(conversation)
    assert replay["entries"] == conversation["entries"] and replay["turns"] == conversation["turns"]
    assert [turn["turn"] for turn in replay["turns"]] == list(range(replay["model_calls"]))
    assert replay["model_calls"] == store_sql(
        "SELECT count(*) AS n FROM spans WHERE conversation_id = 'demo-session-001' AND operation_name = 'chat'")[0]["n"]
    # Sums of doubles may differ in the last bits between two runs (DuckDB adds in parallel, in any order).
    assert _rounded(board["tiles"]) == _rounded(dashboard["tiles"]) and board["name"] == "agents"
    assert rows == result["rows"] and [json.loads(line) for line in lines] == rows
    assert {row["name"]: row["calls"] for row in rows} == {row["name"]: row["n"] for row in store_sql(
        "SELECT name, count(*) AS n FROM spans WHERE kind IN ('CLIENT', 'INTERNAL', 'PRODUCER') GROUP BY name")}


def _rounded(value):
    """The same structure with every float to 12 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def test_replay_markdown_fences_content(demo_store, store_sql, capsys):
    text = _json_out(capsys, "replay", "demo-session-002", "--db", str(demo_store), "--format", "markdown")
    request = store_sql("SELECT trace_id FROM spans WHERE conversation_id = 'demo-session-002' LIMIT 1")[0]
    assert text.startswith("# conversation `demo-session-002`")
    assert f"trace `{request['trace_id']}`" in text
    assert "### turn 1 · `orchestrator`" in text and "**user** @`orchestrator`\n```\nPlan a" in text
    assert "\x1b" not in text and text.count("```") % 2 == 0


def test_replay_json_cuts_values_unless_full(demo_store, capsys):
    cut = json.loads(_json_out(capsys, "replay", "demo-session-001", "--db", str(demo_store), "--format", "json",
                               "--limit", "10"))
    full = json.loads(_json_out(capsys, "replay", "demo-session-001", "--db", str(demo_store), "--format", "json",
                                "--full", "--limit", "10"))
    system = lambda data: next(e for e in data["entries"] if e["kind"] == "system")["system"][0]["content"]  # noqa
    assert system(full) == "You plan trips and delegate to specialists."
    assert system(cut).startswith("You plan t… [cut: 10 of 43 characters; get_span(")


def _commands(parser, prefix=()):
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, child in action.choices.items():
                yield (*prefix, name), child
                yield from _commands(child, (*prefix, name))


@pytest.mark.parametrize("command", [" ".join(path) for path, _ in _commands(build_parser())])
def test_every_help_documents_the_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    codes = out.split("exit status:", 1)[1]
    assert re.search(r"\b0\b", codes) and re.search(r"\b2\b", codes)
