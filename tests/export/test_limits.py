"""fit_properties: the order and trimming that keep what dashboards need inside ingestion's ~64 KB cut."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit import semconv
from tracekit.export.limits import (
    PROPERTY_LIMIT, PROTECTED_KEYS, TRIM_MARKER, TRIMMED_KEYS, _is_protected, fit_properties)

_keys = st.sampled_from([*PROTECTED_KEYS, *semconv.CONTENT_ATTRIBUTES, "gen_ai.usage.extra", "microsoft.gen_ai.x",
                         "server.address", "turn", "note"]) | st.text(min_size=1, max_size=6)
_values = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=30)
           | st.integers(0, 300_000).map(lambda n: "x" * n) | st.lists(st.integers(-9, 9), max_size=3))


def _size(value) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=12), st.sampled_from([200, 5_000, 60_000]))
def test_protected_first_then_shortest_first_and_trimmed_to_the_budget(attributes, budget) -> None:
    fitted, trimmed = fit_properties(attributes, budget)
    keys = [key for key in fitted if key != TRIMMED_KEYS]
    assert set(keys) == {key for key, value in attributes.items() if value is not None}
    if trimmed:
        assert next(iter(fitted)) == TRIMMED_KEYS and fitted[TRIMMED_KEYS] == ",".join(trimmed)
    protected = [key for key in keys if _is_protected(key)]
    assert keys[:len(protected)] == protected
    listed = [key for key in protected if key in PROTECTED_KEYS]
    assert listed == sorted(listed, key=PROTECTED_KEYS.index)
    others = keys[len(protected):]
    assert [_size(fitted[key]) for key in others] == sorted(_size(fitted[key]) for key in others)
    for key, value in attributes.items():
        if value is None:
            continue
        text = value if isinstance(value, (str, bool, int, float)) else orjson.dumps(value).decode()
        limit = 256 * 1024 if key in semconv.CONTENT_ATTRIBUTES else PROPERTY_LIMIT
        if key in trimmed:
            assert str(fitted[key]).endswith(TRIM_MARKER) and _size(fitted[key]) <= max(limit, _size(text))
        else:
            assert fitted[key] == text     # lists become JSON text, scalars stay as they are
    unprotected_room = sum(len(key) + len(TRIM_MARKER) + 6 for key in others)
    protected_size = sum(len(key) + _size(fitted[key]) + 6 for key in protected)
    if protected_size + unprotected_room <= budget:
        assert sum(len(key) + _size(fitted[key]) + 6 for key in keys) <= budget


def test_a_large_chat_keeps_usage_model_and_ids_and_cuts_the_content() -> None:
    attributes = {"gen_ai.input.messages": "m" * 70_000, "gen_ai.output.messages": "o" * 20_000,
                  "note": "short", "gen_ai.usage.input_tokens": 812, "gen_ai.request.model": "gpt-4o",
                  "gen_ai.response.id": "resp_1"}
    fitted, trimmed = fit_properties(attributes)
    assert list(fitted) == [TRIMMED_KEYS, "gen_ai.request.model", "gen_ai.response.id", "gen_ai.usage.input_tokens",
                            "note", "gen_ai.output.messages", "gen_ai.input.messages"]
    assert trimmed == ["gen_ai.input.messages"] and fitted["gen_ai.output.messages"] == "o" * 20_000
    assert fitted["gen_ai.input.messages"].endswith(TRIM_MARKER) and fitted["gen_ai.usage.input_tokens"] == 812
