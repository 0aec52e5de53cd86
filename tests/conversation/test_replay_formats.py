"""`tracekit replay --format json|markdown` on hostile content: literal, bounded, and fenced."""

from __future__ import annotations

import json

from tests.conversation import scenarios
from tracekit.cli import main


def test_markdown_keeps_hostile_content_literal_and_cut(recorded, capsys):
    assert main(["replay", "conv-hostile", "--db", str(recorded.db_path), "--format", "markdown",
                 "--limit", "100"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]52" in out  # the escape shown, never sent to the terminal
    assert scenarios.HOSTILE_MARKUP in out  # Rich markup is just text here
    assert f"[cut: 100 of {scenarios.HUGE:,} characters" in out and len(out) < 5_000
    assert out.count("```") % 2 == 0


def test_json_carries_the_content_as_recorded(recorded, capsys):
    assert main(["replay", "conv-hostile", "--db", str(recorded.db_path), "--format", "json", "--full"]) == 0
    data = json.loads(capsys.readouterr().out)
    messages = [entry["message"] for entry in data["entries"] if entry["kind"] == "message"]
    user = next(message for message in messages if message["role"] == "user")
    assert user["parts"][0]["content"] == f"{scenarios.HOSTILE_MARKUP} {scenarios.HOSTILE_ESCAPE} please"
    assistant = next(message for message in messages if message["role"] == "assistant")
    assert assistant["parts"][0]["content"] == "A" * scenarios.HUGE
