"""OpenAI request messages (Chat Completions `messages`, Responses `input`) in the OTel GenAI message shapes
(`tracekit.messages`), and the token details of OpenAI usage: shared by the OpenAI SDK and the OpenAI Agents SDK
instrumentors, whose model calls carry the same shapes."""

from __future__ import annotations

from typing import Any, Mapping

from tracekit.messages import message, reasoning_part, text_part, tool_call_part, tool_call_response_part

__all__ = ["get_field", "chat_content_parts", "chat_input_messages", "responses_input_messages", "usage_details"]


def get_field(obj: Any, key: str, default: Any = None) -> Any:
    """A field of an SDK object or of a plain dict (requests are dicts, responses are models)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def usage_details(usage: Any) -> tuple[Any, Any, Any]:
    """(cache read, cache write, reasoning) tokens of a Chat Completions, Responses or Agents SDK usage (object or
    dict): `{prompt,input}_tokens_details.cached_tokens` / `.cache_write_tokens` and
    `{completion,output}_tokens_details.reasoning_tokens`."""
    inputs = get_field(usage, "prompt_tokens_details") or get_field(usage, "input_tokens_details")
    outputs = get_field(usage, "completion_tokens_details") or get_field(usage, "output_tokens_details")
    return (get_field(inputs, "cached_tokens"), get_field(inputs, "cache_write_tokens"),
            get_field(outputs, "reasoning_tokens"))


def chat_content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content (a string, or a list of text / image / audio / file blocks) as OTel parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content:
        block_type = get_field(block, "type")
        if block_type in ("text", "input_text", "output_text"):
            parts.append(text_part(str(get_field(block, "text", ""))))
        elif block_type == "refusal":
            parts.append(text_part(str(get_field(block, "refusal", ""))))
        elif block_type in ("image_url", "input_image"):
            url = get_field(block, "image_url")
            url = get_field(url, "url", url)
            if isinstance(url, str) and url.startswith("data:"):
                mime = url[5:].split(";", 1)[0]
                parts.append({"type": "blob", "modality": "image", "mime_type": mime, "content": url.split(",", 1)[-1]})
            elif url:
                parts.append({"type": "uri", "modality": "image", "uri": str(url)})
            elif get_field(block, "file_id"):
                parts.append({"type": "file", "modality": "image", "file_id": get_field(block, "file_id")})
        elif block_type in ("input_audio",):
            audio = get_field(block, "input_audio")
            parts.append({"type": "blob", "modality": "audio", "content": get_field(audio, "data", "")})
        elif block_type in ("file", "input_file"):
            file_id = get_field(block, "file_id") or get_field(get_field(block, "file"), "file_id")
            parts.append({"type": "file", "modality": "document", "file_id": file_id or ""})
        else:
            parts.append({"type": "generic", "generic_type": str(block_type)})
    return parts


def chat_input_messages(messages: Any) -> list[dict[str, Any]]:
    """Chat Completions `messages` (dicts or SDK objects) as OTel input messages, tool calls and results included."""
    result = []
    for msg in messages or ():
        role = str(get_field(msg, "role", "user"))
        if role == "tool":
            parts = [tool_call_response_part(get_field(msg, "tool_call_id"), get_field(msg, "content"))]
        else:
            parts = chat_content_parts(get_field(msg, "content"))
            for call in get_field(msg, "tool_calls") or ():
                function = get_field(call, "function") or {}
                parts.append(tool_call_part(get_field(call, "id"), str(get_field(function, "name", "")),
                                            get_field(function, "arguments")))
        result.append(message(role, parts, name=get_field(msg, "name")))
    return result


def responses_input_messages(items: Any) -> list[dict[str, Any]]:
    """Responses `input` (a string, or message / function call / function output / reasoning items) as OTel input
    messages."""
    if isinstance(items, str):
        return [message("user", [text_part(items)])]
    result: list[dict[str, Any]] = []
    for item in items or ():
        item_type = get_field(item, "type", "message")
        if item_type == "message" or (get_field(item, "role")
                                      and item_type not in ("function_call", "function_call_output")):
            result.append(message(str(get_field(item, "role", "user")), chat_content_parts(get_field(item, "content"))))
        elif item_type == "function_call":
            call = tool_call_part(get_field(item, "call_id"), str(get_field(item, "name", "")),
                                  get_field(item, "arguments"))
            result.append(message("assistant", [call]))
        elif item_type == "function_call_output":
            response = tool_call_response_part(get_field(item, "call_id"), get_field(item, "output"))
            result.append(message("tool", [response]))
        elif item_type == "reasoning":
            summary = " ".join(str(get_field(s, "text", "")) for s in get_field(item, "summary") or ())
            result.append(message("assistant", [reasoning_part(summary)]))
        else:
            result.append(message("assistant", [{"type": "generic", "generic_type": str(item_type)}]))
    return result
