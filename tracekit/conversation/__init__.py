"""Conversations rebuilt from traces: one transcript model whatever instrumentation recorded the spans.

    from tracekit.conversation import load_transcript
    transcript = load_transcript(reader, "conv_123")   # conversation id, response id or trace id
    for entry in transcript.entries: ...

`shapes` reads every content shape into messages, `build` orders and pairs them into a Transcript, `loader` finds
the traces in the store, `render` turns a transcript into Rich text for the replay command and the TUI.
"""

from tracekit.conversation.build import SpanRecord, build_transcript
from tracekit.conversation.loader import ConversationNotFound, load_spans, load_transcript, resolve
from tracekit.conversation.model import (
    NOT_RECORDED,
    Entry,
    EntryKind,
    Message,
    Part,
    PartKind,
    SpanContent,
    ToolCall,
    Transcript,
    Turn,
)
from tracekit.conversation.shapes import EventRecord, span_content

__all__ = [
    "NOT_RECORDED", "ConversationNotFound", "Entry", "EntryKind", "EventRecord", "Message", "Part", "PartKind",
    "SpanContent", "SpanRecord", "ToolCall", "Transcript", "Turn", "build_transcript", "load_spans",
    "load_transcript", "resolve", "span_content",
]
