"""LangChain messages in the OTel GenAI message shapes (`tracekit.messages`), for the LangChain instrumentor.

Messages are read through their public attributes. With content off the structure-only form (roles, part types,
tool names and call ids) is written straight as JSON text (`structure_json`): no text, arguments or results are
copied or parsed, and no dicts are built only to be serialized, on a path every model call takes.
"""

from __future__ import annotations

import weakref
from typing import Any, Mapping, Sequence

from tracekit.messages import (reasoning_part, structure_only, text_part, to_json, tool_call_part,
                               tool_call_response_part)

__all__ = ["message_role", "convert_message", "message_parts", "to_otel_messages", "structure_json",
           "output_structure_json"]

_ROLE_BY_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool",
                 "chat": "user", "developer": "system", "AIMessageChunk": "assistant"}


def message_role(msg: Any) -> str:
    """The OTel role of a LangChain message (a `ChatMessage` of an unknown type keeps its own role)."""
    msg_type = getattr(msg, "type", None) or type(msg).__name__
    role = _ROLE_BY_TYPE.get(msg_type)
    return role if role is not None else str(getattr(msg, "role", None) or msg_type)


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
    """One LangChain message (or a text LLM's prompt string) as an OTel ChatMessage; `with_content=False` gives
    the structure-only form."""
    if isinstance(msg, str):  # a text LLM's prompt
        return {"role": "user", "parts": [text_part(msg) if with_content else {"type": "text"}]}
    role = message_role(msg)
    if role == "tool":
        call_id = getattr(msg, "tool_call_id", None)
        parts = [tool_call_response_part(call_id, msg.content) if with_content
                 else {"type": "tool_call_response", "id": call_id}]
    else:
        content = msg.content
        if with_content:
            parts = _content_parts(content)
        elif isinstance(content, str):
            parts = [{"type": "text"}] if content else []
        else:
            parts = structure_only([{"parts": _content_parts(content)}])[0]["parts"]
        if role == "assistant":
            for call in getattr(msg, "tool_calls", None) or ():
                if with_content:
                    parts.append(tool_call_part(call.get("id"), call.get("name", ""), call.get("args")))
                else:
                    parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name", "")})
    result: dict[str, Any] = {"role": role, "parts": parts}
    name = getattr(msg, "name", None)
    if name:
        result["name"] = name
    return result


def message_parts(msg: Any, with_content: bool = True) -> list[dict[str, Any]]:
    """The OTel parts of one LangChain message."""
    return convert_message(msg, with_content)["parts"]


def to_otel_messages(messages: Sequence[Any], with_content: bool = True) -> list[dict[str, Any]]:
    """Input messages in OTel form (in-history system messages stay in the input, per spec)."""
    return [convert_message(msg, with_content) for msg in messages]


# Content off: the JSON of `convert_message(msg, with_content=False)`, written as text. Every chat call renders
# its whole history this way, so the common messages (string content, tool calls) are joined from constant pieces
# and quoted ids and names kept; anything else (content blocks) takes the dict path. Key order is the dict path's,
# so the text is the same.
_TEXT_PARTS = '[{"type":"text"}]'
_PROMPT_STRUCTURE = '{"role":"user","parts":' + _TEXT_PARTS + "}"
# (role, has text) -> the whole message, for the roles LangChain's message types map to
_PLAIN_STRUCTURE = {(role, has_text): '{"role":' + to_json(role) + ',"parts":' + (_TEXT_PARTS if has_text else "[]")
                    + "}" for role in _ROLE_BY_TYPE.values() for has_text in (True, False)}
_quoted_strings: dict[str, str] = {}  # call ids, tool and author names, roles: few, and repeated call after call


def _quoted(value: Any) -> str:
    """`value` as JSON (strings remembered)."""
    if value.__class__ is not str:
        return to_json(value)
    quoted = _quoted_strings.get(value)
    if quoted is None:
        quoted = to_json(value)
        if len(_quoted_strings) >= 4096:  # ids of a long-running process: start over rather than grow
            _quoted_strings.clear()
        _quoted_strings[value] = quoted
    return quoted


def _structure_parts_json(msg: Any, role: str) -> str | None:
    """The structure-only parts of a message of `role` as JSON, or None when its content is not a string."""
    if role == "tool":
        return '[{"type":"tool_call_response","id":' + _quoted(getattr(msg, "tool_call_id", None)) + "}]"
    content = msg.content
    if content.__class__ is not str and not isinstance(content, str):
        return None
    calls = getattr(msg, "tool_calls", None) if role == "assistant" else None
    if not calls:
        return _TEXT_PARTS if content else "[]"
    pieces = ['{"type":"text"}'] if content else []
    for call in calls:
        pieces.append('{"type":"tool_call","id":' + _quoted(call.get("id")) + ',"name":' + _quoted(call.get("name", ""))
                      + "}")
    return "[" + ",".join(pieces) + "]"


def _message_structure_json(msg: Any) -> str:
    if isinstance(msg, str):  # a text LLM's prompt
        return _PROMPT_STRUCTURE
    role = message_role(msg)
    name = getattr(msg, "name", None)
    if not name and role != "tool":
        content = msg.content
        if content.__class__ is str and not (role == "assistant" and getattr(msg, "tool_calls", None)):
            plain = _PLAIN_STRUCTURE.get((role, content != ""))
            if plain is not None:
                return plain
    parts = _structure_parts_json(msg, role)
    if parts is None:
        return to_json(convert_message(msg, False))
    if name:
        return '{"role":' + _quoted(role) + ',"parts":' + parts + ',"name":' + _quoted(name) + "}"
    return '{"role":' + _quoted(role) + ',"parts":' + parts + "}"


# An agent sends its whole history with every call, so most messages have been rendered before: the text is kept
# per message object while it lives (a weak reference: nothing is kept alive), and taken again while the object
# still holds the same content object (a message given new content is rendered anew).
_remembered: dict[int, tuple[Any, Any, str]] = {}  # id(message) -> (weak reference, its content, text)


def _forget(key: int, ref: Any) -> None:
    entry = _remembered.get(key)
    if entry is not None and entry[0] is ref:
        del _remembered[key]


def _remembered_structure_json(msg: Any) -> str:
    key = id(msg)
    entry = _remembered.get(key)
    if entry is not None and entry[0]() is msg and entry[1] is getattr(msg, "content", None):
        return entry[2]
    text = _message_structure_json(msg)
    try:
        ref = weakref.ref(msg, lambda ref, key=key: _forget(key, ref))
    except TypeError:  # a prompt string, or an object without weak references: rendered every time
        return text
    _remembered[key] = (ref, getattr(msg, "content", None), text)
    return text


def structure_json(messages: Sequence[Any]) -> str:
    """`to_otel_messages(messages, with_content=False)` as compact JSON (`tracekit.messages.to_json`)."""
    return "[" + ",".join([_remembered_structure_json(msg) for msg in messages]) + "]"


def output_structure_json(answers: Sequence[tuple[Any, str]]) -> str:
    """Output messages with content off as compact JSON: for each answer (a message, or a text LLM's text) and its
    finish reason, the structure-only parts as an assistant message's."""
    pieces = []
    for msg, reason in answers:
        parts = _TEXT_PARTS if isinstance(msg, str) else _structure_parts_json(msg, message_role(msg))
        if parts is None:
            parts = to_json(message_parts(msg, False))
        pieces.append('{"role":"assistant","parts":' + parts + ',"finish_reason":' + _quoted(reason) + "}")
    return "[" + ",".join(pieces) + "]"
