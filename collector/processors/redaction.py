"""Redaction before storage: the collector's second line of defence after the in-process processors.

Senders may not run tracekit's redacting processors (another language's SDK, a library that records prompts), so the
collector masks every column a sender controls in a decoded batch before it is written: names, messages, trace
states, attribute maps (keys and nested values), log bodies, metric details, resources and scopes. The work is
tracekit.redaction.columns', the same function every exporter runs on the pages it reads from the store.
"""

from __future__ import annotations

from tracekit.collector.processors.normalize import Batch
from tracekit.redaction import RedactionPolicy
from tracekit.redaction.columns import TableRedactor


class BatchRedactor:
    """The redaction processor: applies one policy to the tables of each decoded batch."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._tables = TableRedactor(policy)

    def process(self, signal: str, batch: Batch) -> Batch:
        """Mask `batch` in place; what was masked is counted in `batch.masked`."""
        batch.masked += self._tables.redact_tables(batch.tables)
        return batch
