"""LangChain messages in the OTel GenAI message shapes (`tracekit.messages`), for the LangChain instrumentor.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tracekit.messages import (output_message, reasoning_part, structure_only, text_part, to_json, tool_call_part,
                               tool_call_response_part)

__all__ = ["message_field", "message_fields", "message_role", "convert_message", "message_parts", "to_otel_messages",
           "structure_json", "output_structure_json", "json_string", "structure_json_python",
           "output_structure_json_python"]

_ROLE_BY_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool",
                 "chat": "user", "developer": "system", "AIMessageChunk": "assistant"}


def message_field(obj: Any, name: str) -> Any:
    """A field of a LangChain object without pydantic's slow miss path (a missing attribute costs an exception)."""
    fields = getattr(obj, "__dict__", None)
    return fields.get(name) if fields is not None else getattr(obj, name, None)


_GENERATION_AND_MESSAGE_FIELDS = ("message", "generation_info", "text", "type", "role", "content", "tool_calls",
                                  "tool_call_id", "name", "response_metadata", "usage_metadata")


def message_fields(obj: Any) -> Mapping[str, Any]:
    """The fields of a LangChain message or generation as a mapping: its `__dict__` (pydantic keeps fields there),
    else the attributes we read from these objects."""
    fields = getattr(obj, "__dict__", None)
    if fields is not None:
        return fields
    return {key: getattr(obj, key, None) for key in _GENERATION_AND_MESSAGE_FIELDS}


def message_role(msg: Any) -> str:
    """The OTel role of a LangChain message."""
    msg_type = message_field(msg, "type") or type(msg).__name__
    found = _ROLE_BY_TYPE.get(msg_type)
    return found if found is not None else str(message_field(msg, "role") or msg_type)


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """LangChain message content (a string or a list of content blocks) as OTel parts."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(text_part(block))
        elif isinstance(block, Mapping):
            block_type = block.get("type")
            if block_type == "text":
                parts.append(text_part(str(block.get("text", ""))))
            elif block_type in ("reasoning", "thinking"):
                parts.append(reasoning_part(str(block.get("reasoning") or block.get("thinking") or "")))
            elif block_type in ("image_url", "image"):
                parts.append({"type": "uri", "modality": "image",
                              "uri": str((block.get("image_url") or {}).get("url", block.get("url", "")))})
            elif block_type in ("tool_use", "tool_call"):
                continue  # carried by message.tool_calls
            else:
                parts.append({"type": "generic", "generic_type": str(block_type), "content": block})
    return parts


def convert_message(msg: Any, with_content: bool = True) -> dict[str, Any]:
    """One LangChain message (or a text LLM's prompt string) as an OTel ChatMessage. `with_content=False` builds
    the structure-only form directly (no content copied, nothing to strip later). Fields are read from the
    message's `__dict__` once: this runs for every message of every model call."""
    fields = getattr(msg, "__dict__", None)
    if fields is None:
        if isinstance(msg, str):  # a text LLM's prompt
            return {"role": "user", "parts": [text_part(msg) if with_content else {"type": "text"}]}
        fields = {key: getattr(msg, key, None) for key in ("type", "role", "content", "tool_calls", "tool_call_id", "name")}
    msg_type = fields.get("type") or type(msg).__name__
    msg_role = _ROLE_BY_TYPE.get(msg_type) or str(fields.get("role") or msg_type)
    if msg_role == "tool":
        if with_content:
            parts = [tool_call_response_part(fields.get("tool_call_id"), fields.get("content"))]
        else:
            parts = [{"type": "tool_call_response", "id": fields.get("tool_call_id")}]
    else:
        content = fields.get("content")
        if with_content:
            parts = _content_parts(content)
        elif isinstance(content, str):
            parts = [{"type": "text"}] if content else []
        else:
            parts = structure_only([{"parts": _content_parts(content)}])[0]["parts"]
        for call in fields.get("tool_calls") or ():
            if with_content:
                parts.append(tool_call_part(call.get("id"), call.get("name", ""), call.get("args")))
            else:
                parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name", "")})
    result: dict[str, Any] = {"role": msg_role, "parts": parts}
    name = fields.get("name")
    if name:
        result["name"] = name
    return result


def message_parts(msg: Any, with_content: bool = True) -> list[dict[str, Any]]:
    """The OTel parts of one LangChain message."""
    return convert_message(msg, with_content)["parts"]


def to_otel_messages(messages: Sequence[Any], with_content: bool = True) -> list[dict[str, Any]]:
    """Input messages in OTel form (in-history system messages stay in the input, per spec)."""
    return [convert_message(msg, with_content) for msg in messages]


def json_string(value: Any) -> str:
    """`to_json(value)`: for a string with nothing to escape (ids and names, nearly always), without the serializer
    call. The serializer escapes only quotes, backslashes and control characters, none of which is printable."""
    if value.__class__ is str and (value.isidentifier()  # call_x, toolu_x, search_flights: one check
                                   or ('"' not in value and "\\" not in value and value.isprintable())):
        return f'"{value}"'
    return to_json(value)


def _tool_call_piece(call: Mapping[str, Any]) -> str:
    """Content off, one tool call part as JSON."""
    return f'{{"type":"tool_call","id":{json_string(call.get("id"))},"name":{json_string(call.get("name", ""))}}}'


# Content off, a plain message (text or empty, no tool calls, no name) has one JSON form per role: built once.
_PLAIN_STRUCTURE = {
    (role, has_text): to_json({"role": role, "parts": [{"type": "text"}] if has_text else []})
    for role in set(_ROLE_BY_TYPE.values()) for has_text in (False, True)
}


def _message_json(msg: Any) -> str:
    """Content off, one input message by the general conversion (the fallback of the piece builders, in Python and in C)."""
    return to_json(convert_message(msg, False))


def _output_json(msg: Any, finish_reason: str) -> str:
    """Content off, one output message by the general conversion (the fallback of the piece builders, in Python and in C)."""
    return to_json(output_message("assistant", message_parts(msg, False), finish_reason))


def structure_json_python(messages: Sequence[Any]) -> str | None:
    """`to_json(to_otel_messages(messages, with_content=False))`, the same text, built from JSON pieces.

    This runs on every model call with content off (the default), over the whole history the model is sent: plain
    messages take a prebuilt piece, tool messages and tool calls a short template, anything else (content blocks,
    named messages, prompt strings) the general conversion. None for no messages."""
    if not messages:
        return None
    pieces = []
    for msg in messages:
        fields = getattr(msg, "__dict__", None)
        if fields is not None and not fields.get("name"):
            role = _ROLE_BY_TYPE.get(fields.get("type"))  # type: ignore[arg-type]
            content = fields.get("content")
            if role == "tool":
                call_id = json_string(fields.get("tool_call_id"))
                pieces.append(f'{{"role":"tool","parts":[{{"type":"tool_call_response","id":{call_id}}}]}}')
                continue
            if role is not None and isinstance(content, str):
                calls = fields.get("tool_calls")
                if not calls:
                    pieces.append(_PLAIN_STRUCTURE[role, bool(content)])
                    continue
                parts = ['{"type":"text"}'] if content else []
                for call in calls:
                    if call.__class__ is not dict:
                        break
                    parts.append(_tool_call_piece(call))
                else:
                    pieces.append(f'{{"role":"{role}","parts":[{",".join(parts)}]}}')
                    continue
        pieces.append(_message_json(msg))
    return f"[{','.join(pieces)}]"


_ASSISTANT_TYPES = frozenset(msg_type for msg_type, role in _ROLE_BY_TYPE.items() if role == "assistant")


def output_structure_json_python(msg: Any, finish_reason: str) -> str:
    """Content off, one output message as JSON: `to_json(output_message("assistant", message_parts(msg, False),
    finish_reason))`, the same text, from pieces for an assistant message with string content and no name."""
    fields = getattr(msg, "__dict__", None)
    if fields is not None and fields.get("type") in _ASSISTANT_TYPES and not fields.get("name"):
        content = fields.get("content")
        if content.__class__ is str:
            parts = ['{"type":"text"}'] if content else []
            for call in fields.get("tool_calls") or ():
                if call.__class__ is not dict:
                    break
                parts.append(_tool_call_piece(call))
            else:
                reason = json_string(finish_reason or "stop")  # as output_message() does
                return f'{{"role":"assistant","parts":[{",".join(parts)}],"finish_reason":{reason}}}'
    return _output_json(msg, finish_reason)


try:  # the compiled twins of the two functions above (setup.py builds them when a C compiler is present)
    from tracekit.instrumentors import _structure
except ImportError:  # pragma: no cover - exercised by installs without a compiler
    _structure = None

structure_json = structure_json_python
output_structure_json = output_structure_json_python
if _structure is not None:
    # Same text, byte for byte (tests/instrumentors/test_structure_c.py); what the C code does not handle itself
    # it hands to the Python functions given here.
    _structure.setup(role_by_type=_ROLE_BY_TYPE,
                     plain_with_text={role: _PLAIN_STRUCTURE[role, True] for role, _ in _PLAIN_STRUCTURE},
                     plain_empty={role: _PLAIN_STRUCTURE[role, False] for role, _ in _PLAIN_STRUCTURE},
                     assistant_types=_ASSISTANT_TYPES, slow_message=_message_json, slow_output=_output_json,
                     json_string=json_string)
    structure_json = _structure.structure_json
    output_structure_json = _structure.output_structure_json
