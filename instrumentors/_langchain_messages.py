"""LangChain messages in the OTel GenAI message shapes (`tracekit.messages`), for the LangChain instrumentor.

Messages are read through their public attributes. With content off the structure-only form is built directly
(roles, part types, tool names and call ids), so no text, arguments or results are copied or parsed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tracekit.messages import reasoning_part, structure_only, text_part, tool_call_part, tool_call_response_part

__all__ = ["message_role", "convert_message", "message_parts", "to_otel_messages"]

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
