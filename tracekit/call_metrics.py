"""What one model call used and how fast it answered, read under every name instrumentations record it.

The conventions' names come first (`gen_ai.usage.*`, `gen_ai.request.stream`, `gen_ai.response.time_to_first_chunk`);
then the older and other names in `tracekit.semconv` (`cache_creation`, OpenLLMetry's flat names, OpenInference's
`llm.token_count.*`, OpenLIT's and Strands' `gen_ai.server.time_to_first_token`, the Vercel AI SDK's
`ai.response.msToFirstChunk`, Langfuse's completion start time). The replay's turns and the TUI's span details
show the result, so both say the same about a call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

import orjson

from tracekit import semconv


@dataclass(frozen=True)
class CallMetrics:
    """Token counts (cache and reasoning are subsets of input and output) and streaming facts; None: not recorded."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    stream: bool | None = None
    time_to_first_chunk_s: float | None = None

    @property
    def empty(self) -> bool:
        return all(value is None for value in self.__dict__.values())


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
    number = int(value)
    return number if number >= 0 else None


def _first_count(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of `keys` holding a count (a later name may hold it when an earlier one holds something else)."""
    return next((number for number in map(_count, map(attributes.get, keys)) if number is not None), None)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 else None


def _stream(attributes: Mapping[str, Any]) -> bool | None:
    for key in semconv.STREAM_KEYS:
        value = attributes.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    parameters = attributes.get(semconv.OPENINFERENCE_INVOCATION_PARAMETERS)  # OpenInference: the request's JSON
    if isinstance(parameters, str) and '"stream"' in parameters:
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(parameters)
            stream = parsed.get("stream") if isinstance(parsed, dict) else None
            return stream if isinstance(stream, bool) else None
    return None


def _time_to_first_chunk(attributes: Mapping[str, Any], start_ns: int | None, duration_ns: int | None) -> float | None:
    """Seconds from the request to the first chunk, whichever unit the sender used."""
    duration_s = duration_ns / 1e9 if duration_ns else None
    for key in semconv.TIME_TO_FIRST_CHUNK_SECONDS_KEYS:
        seconds = _seconds(attributes.get(key))
        if seconds is None:
            continue
        # Strands sends `gen_ai.server.time_to_first_token` in milliseconds. The first chunk cannot come after the
        # call ended, so a value longer than the span that fits in it as milliseconds is milliseconds.
        if duration_s is not None and seconds > duration_s * 1.01 and seconds / 1000 <= duration_s * 1.01:
            return seconds / 1000
        return seconds
    for key in semconv.TIME_TO_FIRST_CHUNK_MS_KEYS:
        milliseconds = _seconds(attributes.get(key))
        if milliseconds is not None:
            return milliseconds / 1000
    for key in semconv.COMPLETION_START_TIME_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and start_ns is not None:
            try:
                first_ns = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
            except ValueError:
                continue
            if first_ns >= start_ns:
                return (first_ns - start_ns) / 1e9
    return None


def call_metrics(attributes: Mapping[str, Any], *, start_ns: int | None = None, duration_ns: int | None = None,
                 input_tokens: int | None = None, output_tokens: int | None = None) -> CallMetrics:
    """The metrics of one model call from its attributes; `input_tokens` / `output_tokens` from typed columns win."""
    return CallMetrics(
        input_tokens=input_tokens if input_tokens is not None else _first_count(attributes,
                                                                                 semconv.INPUT_TOKEN_KEYS),
        output_tokens=output_tokens if output_tokens is not None else _first_count(attributes,
                                                                                    semconv.OUTPUT_TOKEN_KEYS),
        cache_read_tokens=_first_count(attributes, semconv.CACHE_READ_TOKEN_KEYS),
        cache_write_tokens=_first_count(attributes, semconv.CACHE_WRITE_TOKEN_KEYS),
        reasoning_tokens=_first_count(attributes, semconv.REASONING_TOKEN_KEYS),
        stream=_stream(attributes),
        time_to_first_chunk_s=_time_to_first_chunk(attributes, start_ns, duration_ns),
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"


def describe(metrics: CallMetrics) -> list[str]:
    """The call's tokens and streaming as short phrases for a turn header or span details:
    `1,200 → 900 (700 reasoning) tokens`, `cache 1,000 read, 200 written`, `streamed`, `first chunk 420ms`."""
    pieces: list[str] = []
    if metrics.input_tokens is not None or metrics.output_tokens is not None:
        reasoning = f" ({metrics.reasoning_tokens:,} reasoning)" if metrics.reasoning_tokens else ""
        pieces.append(f"{metrics.input_tokens or 0:,} → {metrics.output_tokens or 0:,}{reasoning} tokens")
    elif metrics.reasoning_tokens:
        pieces.append(f"{metrics.reasoning_tokens:,} reasoning tokens")
    cache = [f"{count:,} {what}" for count, what in ((metrics.cache_read_tokens, "read"),
                                                       (metrics.cache_write_tokens, "written")) if count]
    if cache:
        pieces.append("cache " + ", ".join(cache))
    if metrics.stream is not None or metrics.time_to_first_chunk_s is not None:
        streaming = "streamed" if metrics.stream or metrics.stream is None else "not streamed"
        if metrics.time_to_first_chunk_s is not None:
            streaming += f", first chunk {_duration(metrics.time_to_first_chunk_s)}"
        pieces.append(streaming)
    return pieces
