"""Conversations rebuilt from traces: one transcript model whatever instrumentation recorded the spans.

    from tracekit.conversation import load_transcript
    transcript = load_transcript(reader, "conv_123")   # conversation id, response id or trace id
    for entry in transcript.entries: ...

`shapes` reads every content shape into messages, `build` orders and pairs them into a Transcript, `loader` finds
the traces in the store, `render` turns a transcript into Rich text for the replay command and the TUI.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each name lives. They are imported when first used, so `tracekit.conversation.literal` (which the trace list
# uses to show span content safely) does not load the transcript builder before the TUI's first paint.
_HOMES = {
    "build": ("SpanRecord", "build_transcript"),
    "loader": ("ConversationNotFound", "load_spans", "load_transcript", "resolve"),
    "model": ("NOT_RECORDED", "Entry", "EntryKind", "Message", "Part", "PartKind", "SpanContent", "ToolCall",
              "Transcript", "Turn"),
    "shapes": ("EventRecord", "span_content"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
