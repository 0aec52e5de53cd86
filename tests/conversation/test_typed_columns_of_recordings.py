"""The typed store columns the trace list, cost and queries read are filled from other instrumentations' own
attribute names too: OpenInference's `llm.token_count.*` and `llm.system`/`llm.provider`, as recorded from the real
package (tests/recordings/openinference.jsonl)."""

from __future__ import annotations

import json

from tests.conversation.conftest import Recorded


def test_openinference_token_counts_and_provider_reach_the_typed_columns(recorded: Recorded) -> None:
    rows = recorded.reader().sql(
        "SELECT attributes, input_tokens, output_tokens, provider_name FROM spans "
        "WHERE json_exists(attributes, '$.\"llm.token_count.prompt\"')").to_pylist()
    assert rows, "the OpenInference recording has model calls with token counts"
    for row in rows:
        attributes = json.loads(row["attributes"])
        assert "gen_ai.usage.input_tokens" not in attributes  # the typed column comes from OpenInference's own name
        assert row["input_tokens"] == attributes["llm.token_count.prompt"] > 0
        assert row["output_tokens"] == attributes["llm.token_count.completion"] > 0
        assert row["provider_name"] == attributes.get("llm.provider", attributes.get("llm.system")) == "openai"
