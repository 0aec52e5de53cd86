"""The collector's settings: every one has a flag and an environment variable (flags win)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tracekit.collector.processors.anyvalue import AttributeLimits

MIB = 1024 * 1024

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}


def parse_size(text: str) -> int:
    """'16MiB', '2GB', '512k', '1048576' -> bytes (binary units; 'GB' is read as GiB)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 16MiB, 2GB, 1048576)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()[:1]])


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """'HOST:PORT', ':PORT', 'PORT' or 'HOST' -> (host, port); the host defaults to 127.0.0.1."""
    text = text.strip()
    if text.startswith("["):  # [::1]:4317
        host, _, port = text[1:].partition("]")
        return host, int(port.lstrip(":") or default_port)
    if text.isdigit():
        return "127.0.0.1", int(text)
    host, sep, port = text.rpartition(":")
    if not sep:
        return text or "127.0.0.1", default_port
    return host or "127.0.0.1", int(port)


def split_hosts(text: str) -> tuple[str, ...]:
    """'tracekit.internal, 192.0.2.7' -> ('tracekit.internal', '192.0.2.7')."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass
class CollectorSettings:
    """How a collector listens, stores, and protects itself. Defaults are safe for a laptop."""

    db_path: Path
    grpc: str | None = "127.0.0.1:4317"          # None: no gRPC receiver
    http: str | None = "127.0.0.1:4318"          # None: no HTTP receiver
    read_api: str = "127.0.0.1:0"                # where `tracekit query` and the TUI reach the store
    max_request_bytes: int = 32 * MIB            # one OTLP request, after decompression
    queue_bytes: int = 256 * MIB                 # request bytes accepted but not yet committed
    memory_limit: str = "448MB"                  # DuckDB's memory_limit for the collector's database instance
    decode_workers: int = 0                      # >0: decode in that many worker processes
    checkpoint_rows: int = 245_760               # span rows between checkpoints under load (CHECKPOINT_SPAN_ROWS)
    checkpoint_wal_bytes: int = 256 * MIB        # a WAL this large is checkpointed whatever the rows (store_writer)
    retention_days: float | None = None
    max_db_bytes: int | None = None
    retention_interval_seconds: float = 60.0
    auth_token: str | None = None                # bearer token the receivers require, when set
    write_state_file: bool = True
    forward_azure_monitor: str | None = None     # a connection string
    forward_otlp: str | None = None              # an OTLP endpoint URL
    allowed_hosts: tuple[str, ...] = ()          # Host names answered besides loopback ("*": any); DNS rebinding
    redaction: str = "default"                   # "default" (built-in rules), "off", or a policy file path
    attribute_limits: AttributeLimits = AttributeLimits()  # attributes kept per span/event/link/log record/map
    header_timeout_seconds: float = 30.0         # HTTP headers / a gRPC handshake within this; idle connections close
    body_timeout_seconds: float = 30.0           # an HTTP body / a gRPC request message must arrive within this
    alert_rules: str | None = None               # a rule file (tracekit.alerts) checked on each rule's frequency
    evaluation_rules: str | None = None          # continuous evaluation rules (tracekit.evaluators.rules)
    extra: dict[str, str] = field(default_factory=dict)

    def redaction_policy(self):  # -> RedactionPolicy
        """The policy applied before storage."""
        from tracekit.redaction import RedactionPolicy

        if self.redaction == "default":
            return RedactionPolicy.default()
        if self.redaction == "off":
            return RedactionPolicy.disabled()
        return RedactionPolicy.from_file(self.redaction)

    @classmethod
    def from_env(cls, db_path: Path) -> "CollectorSettings":
        """Defaults overridden by TRACEKIT_* environment variables."""
        env = os.environ
        settings = cls(db_path=db_path)
        if "TRACEKIT_GRPC" in env:
            settings.grpc = env["TRACEKIT_GRPC"] or None
        if "TRACEKIT_HTTP" in env:
            settings.http = env["TRACEKIT_HTTP"] or None
        if "TRACEKIT_MAX_REQUEST_SIZE" in env:
            settings.max_request_bytes = parse_size(env["TRACEKIT_MAX_REQUEST_SIZE"])
        if "TRACEKIT_QUEUE_SIZE" in env:
            settings.queue_bytes = parse_size(env["TRACEKIT_QUEUE_SIZE"])
        if "TRACEKIT_MEMORY_LIMIT" in env:
            settings.memory_limit = env["TRACEKIT_MEMORY_LIMIT"]
        if "TRACEKIT_DECODE_WORKERS" in env:
            settings.decode_workers = int(env["TRACEKIT_DECODE_WORKERS"])
        if "TRACEKIT_CHECKPOINT_ROWS" in env:
            settings.checkpoint_rows = int(env["TRACEKIT_CHECKPOINT_ROWS"])
        if "TRACEKIT_CHECKPOINT_WAL_SIZE" in env:
            settings.checkpoint_wal_bytes = parse_size(env["TRACEKIT_CHECKPOINT_WAL_SIZE"])
        if "TRACEKIT_RETENTION_DAYS" in env:
            settings.retention_days = float(env["TRACEKIT_RETENTION_DAYS"])
        if "TRACEKIT_MAX_DB_SIZE" in env:
            settings.max_db_bytes = parse_size(env["TRACEKIT_MAX_DB_SIZE"])
        if env.get("TRACEKIT_ALLOWED_HOSTS"):
            settings.allowed_hosts = split_hosts(env["TRACEKIT_ALLOWED_HOSTS"])
        if "TRACEKIT_AUTH_TOKEN" in env:
            settings.auth_token = env["TRACEKIT_AUTH_TOKEN"] or None
        if env.get("TRACEKIT_REDACTION_FILE"):
            settings.redaction = env["TRACEKIT_REDACTION_FILE"]
        elif env.get("TRACEKIT_REDACTION", "").strip().lower() in {"off", "false", "0", "none"}:
            settings.redaction = "off"
        settings.attribute_limits = attribute_limits_from_env(env)
        if "TRACEKIT_HEADER_TIMEOUT" in env:
            settings.header_timeout_seconds = float(env["TRACEKIT_HEADER_TIMEOUT"])
        if "TRACEKIT_BODY_TIMEOUT" in env:
            settings.body_timeout_seconds = float(env["TRACEKIT_BODY_TIMEOUT"])
        if env.get("TRACEKIT_ALERTS"):
            settings.alert_rules = env["TRACEKIT_ALERTS"]
        if env.get("TRACEKIT_EVALUATION_RULES"):
            settings.evaluation_rules = env["TRACEKIT_EVALUATION_RULES"]
        if "APPLICATIONINSIGHTS_CONNECTION_STRING" in env and "TRACEKIT_FORWARD_AZURE_MONITOR" in env:
            settings.forward_azure_monitor = env["APPLICATIONINSIGHTS_CONNECTION_STRING"]
        return settings


def attribute_limits_from_env(env: "os._Environ[str] | dict[str, str]") -> AttributeLimits:
    """The limits as the OpenTelemetry SDK reads them: OTEL_ATTRIBUTE_COUNT_LIMIT (or TRACEKIT_ATTRIBUTE_COUNT_LIMIT,
    which wins) for every kind, then OTEL_SPAN_ / OTEL_EVENT_ / OTEL_LINK_ / OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT for
    their own kind."""
    def number(name: str, default: int) -> int:
        text = env.get(name, "").strip()
        if not text:
            return default
        value = int(text)
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")
        return value

    base = number("TRACEKIT_ATTRIBUTE_COUNT_LIMIT", number("OTEL_ATTRIBUTE_COUNT_LIMIT", AttributeLimits().span))
    return AttributeLimits(span=number("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", base),
                           event=number("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", base),
                           link=number("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", base),
                           log_record=number("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", base),
                           kvlist=base)
