"""The direct OTLP path: rows -> opentelemetry.proto -> gRPC/HTTP, against our real collector.

Fidelity (what the SDK objects used to lose), OTLP retry semantics under back-pressure (RESOURCE_EXHAUSTED with
RetryInfo, HTTP 429 with Retry-After), partial success, headers, failures that leave a batch pending, redaction.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.export.helpers import agent_run, make_providers, write_store
from tracekit.cli import main
from tracekit.collector.processors.normalize import decode_traces
from tracekit.collector.service import Collector
from tracekit.export.cursor import CursorRecord, SidecarCursorStore, cursor_id, sidecar_path
from tracekit.export.otlp import OtlpSender
from tracekit.export.otlp_encode import OtlpEncoder
from tracekit.redaction import RedactionPolicy
from tracekit.redaction.columns import TableRedactor
from tracekit.export.rows import RowReader
from tracekit.commands.export import print_summary
from tracekit.export.runner import run_export
from tracekit.export.selection import Selection, StoreSource
from tracekit.store.database import open_store
from tracekit.store.reader import LocalReader

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def _endpoint(collector, protocol: str) -> str:
    return f"http://{collector.grpc_endpoint}" if protocol == "grpc" else collector.http_endpoint


def _export(db: Path, sender: OtlpSender, **options):
    """Export the whole store `db` through `sender`, then close the sender (its counters stay readable)."""
    reader = LocalReader.open_file(db)
    redactor = options.pop("redactor", None)
    try:
        return run_export(StoreSource(reader, Selection(), redactor=redactor), sender, SidecarCursorStore(sidecar_path(db)),
                          **options)
    finally:
        sender.close()
        reader.close()


def _wait_for_rows(reader, table: str, count: int) -> int:
    deadline = time.monotonic() + 60  # returns once stored; a busy machine commits slowly
    found = 0
    while time.monotonic() < deadline:
        found = reader.sql(f"SELECT count(*) FROM {table}").column(0)[0].as_py()
        if found >= count:
            break
        time.sleep(0.05)
    return found


def write_request(db: Path, request: ExportTraceServiceRequest) -> None:
    """Store a hand-built OTLP request as the collector's writer would."""
    con = open_store(db)
    try:
        for name, table in decode_traces(request).tables.items():
            con.register("b", table)
            prefix = "" if name == "resources" else "1 AS ingest_seq, "
            con.execute(f"INSERT INTO {name} BY NAME SELECT {prefix}* FROM b")
            con.unregister("b")
    finally:
        con.close()


def _odd_request() -> ExportTraceServiceRequest:
    """Spans the SDK cannot make: kind UNSPECIFIED, trace flags and remote-parent bits, a link with a trace state."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = "hand.made"
    base = time.time_ns()
    root = scope_spans.spans.add(trace_id=TRACE_ID, span_id=bytes.fromhex("00f067aa0ba902b7"), name="unspecified",
                                 kind=Span.SPAN_KIND_UNSPECIFIED, start_time_unix_nano=base,
                                 end_time_unix_nano=base + 1000, flags=0x301, trace_state="vendor=a1",
                                 parent_span_id=bytes.fromhex("1111111111111111"))
    root.attributes.append(KeyValue(key="answer", value=AnyValue(int_value=42)))
    root.attributes.append(KeyValue(key="flag", value=AnyValue(bool_value=True)))
    child = scope_spans.spans.add(trace_id=TRACE_ID, span_id=bytes.fromhex("00f067aa0ba902b8"), name="consumer",
                                  kind=Span.SPAN_KIND_CONSUMER, start_time_unix_nano=base + 10,
                                  end_time_unix_nano=base + 20, flags=0x101,
                                  parent_span_id=bytes.fromhex("00f067aa0ba902b7"))
    child.links.add(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                    span_id=bytes.fromhex("b7ad6b7169203331"), trace_state="congo=t61rcWkgMzE", flags=0x301,
                    dropped_attributes_count=2)
    child.status.code = child.status.STATUS_CODE_OK
    return request


def test_direct_encoding_reproduces_what_the_sdk_sent(tmp_path: Path) -> None:
    """Stored SDK spans, encoded again from the rows, equal the SDK's own request span for span."""
    tracer_provider, _, spans, _ = make_providers()
    for index in range(3):
        agent_run(tracer_provider, agent=f"agent-{index}")
    original = encode_spans(spans.get_finished_spans())
    db = tmp_path / "s.duckdb"
    write_store(db, spans.get_finished_spans())
    reader = LocalReader.open_file(db)
    source = StoreSource(reader, Selection())
    page = RowReader(source).fetch(source.list_keys())
    reader.close()
    ours = OtlpEncoder().traces(page)

    def by_span(request: ExportTraceServiceRequest) -> dict[str, dict]:
        result = {}
        for resource_spans in request.resource_spans:
            resource = MessageToDict(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    result[span.span_id.hex()] = {"span": MessageToDict(span), "resource": resource,
                                                  "scope": MessageToDict(scope_spans.scope)}
        return result

    expected, got = by_span(original), by_span(ours)
    assert len(got) == 9 and got == expected


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_kind_unspecified_flags_and_link_trace_states_survive(tmp_path: Path, collector, protocol: str) -> None:
    db = tmp_path / "odd.duckdb"
    write_request(db, _odd_request())
    sender = OtlpSender(_endpoint(collector, protocol), protocol=protocol)
    summary = _export(db, sender)
    assert summary.complete and summary.delivered == 2
    query = ("SELECT span_id, kind, flags, trace_state FROM spans ORDER BY span_id",
             "SELECT linked_trace_id, linked_span_id, trace_state, flags, dropped_attributes_count FROM span_links")
    source = LocalReader.open_file(db)
    expected = [source.sql(q).to_pylist() for q in query]
    source.close()
    target = collector.reader()
    assert _wait_for_rows(target, "spans", 2) == 2
    assert [target.sql(q).to_pylist() for q in query] == expected
    assert expected[0][0]["kind"] == "UNSPECIFIED" and expected[0][0]["flags"] == 0x301
    assert expected[1][0]["trace_state"] == "congo=t61rcWkgMzE"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_full_queue_is_retried_with_the_servers_delay(store: Path, collector_settings, protocol: str) -> None:
    """queue_bytes=1 admits one request at a time: concurrent senders get RESOURCE_EXHAUSTED + RetryInfo (gRPC)
    or 429 + Retry-After (HTTP), wait at least that long, and every sender's copy is taken (and stored once)."""
    collector_settings.queue_bytes = 1
    reader = LocalReader.open_file(store)
    source = StoreSource(reader, Selection())
    keys = source.list_keys()
    rows = RowReader(source)
    pages = [rows.fetch(keys[start:start + 5]) for start in range(0, len(keys), 5)]
    reader.close()
    waits: list[tuple[float, float]] = []
    senders: list[OtlpSender] = []
    with Collector(collector_settings).running() as collector:
        def run() -> None:
            sender: OtlpSender

            def sleep(seconds: float) -> None:
                waits.append((sender.last_retry_after or 0.0, seconds))
                time.sleep(seconds)

            sender = OtlpSender(_endpoint(collector, protocol), protocol=protocol, max_attempts=30, sleep=sleep)
            senders.append(sender)
            state = CursorRecord(destination=sender.destination, selection="test")
            for page in pages:
                sender.send(sender.prepare(page), state)
            sender.close()
            assert not state.pending

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        refused = collector.pipeline.admission.refused
        received = dict(collector.pipeline.received)
        target = collector.reader()
        spans = _wait_for_rows(target, "spans", 60)
        logs = _wait_for_rows(target, "logs", 20)
    assert refused > 0 and sum(sender.retries for sender in senders) > 0, "the queue never filled: nothing tested"
    assert all(sender.last_retry_after for sender in senders if sender.retries), "the server's delay was not read"
    assert all(waited >= asked for asked, waited in waits)
    # every sender's copy was taken; the store keeps each span and log record once
    assert (received["traces"], received["logs"]) == (4 * 60, 4 * 20)
    assert (spans, logs) == (60, 20)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_partial_success_is_counted_and_not_retried(store: Path, collector, protocol: str, capsys) -> None:
    nested: object = "deep"
    for _ in range(40):  # deeper than the collector accepts: that span alone is rejected
        nested = [nested]
    con = open_store(store)
    victim = con.execute("SELECT span_id FROM spans WHERE name = 'chat gpt-4o' ORDER BY span_id LIMIT 1").fetchone()[0]
    con.execute("UPDATE spans SET attributes = json_object('too.deep', ?::JSON) WHERE span_id = ?",
                [json.dumps(nested), victim])
    con.close()
    sender = OtlpSender(_endpoint(collector, protocol), protocol=protocol)
    summary = _export(store, sender)
    assert summary.complete and summary.retries == 0
    assert summary.rejected_by_destination == 1 and "nested deeper" in summary.rejection_message
    assert summary.to_json()["rejected_by_destination"] == 1
    target = collector.reader()
    assert _wait_for_rows(target, "spans", 59) == 59
    assert target.sql("SELECT count(*) FROM spans WHERE span_id = ?", [victim]).column(0)[0].as_py() == 0
    print_summary(summary)
    assert "rejected by the destination" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_headers_reach_the_endpoint(store: Path, collector_settings, protocol: str, monkeypatch, capsys) -> None:
    collector_settings.auth_token = "s3cret"
    with Collector(collector_settings).running() as collector:
        endpoint = _endpoint(collector, protocol)
        # No header: refused for good (not retried), the batch stays pending, exit status 1.
        assert main(["export", "otlp", "--db", str(store), "--endpoint", endpoint, "--protocol", protocol,
                     "--no-progress", "--json"]) == 1
        refusal = "gRPC UNAUTHENTICATED" if protocol == "grpc" else "HTTP 401"
        assert refusal in json.loads(capsys.readouterr().out)["last_error"]
        # --header, as the CLI passes it: resumes and completes.
        assert main(["export", "otlp", "--db", str(store), "--endpoint", endpoint, "--protocol", protocol,
                     "--header", "Authorization=Bearer%20s3cret", "--no-progress"]) == 0
        target = collector.reader()
        assert _wait_for_rows(target, "spans", 60) == 60
        # OTEL_EXPORTER_OTLP_HEADERS for a sender built without headers (the collector's forwarder).
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret")
        sender = OtlpSender(endpoint, protocol=protocol)
        summary = _export(store, sender, restart=True)
        assert summary.complete and summary.spans_done == 60
        # the collector took the second copy too (and stores each span once)
        assert collector.pipeline.received["traces"] == 120 and _wait_for_rows(target, "spans", 60) == 60


def test_http_refusal_names_the_status(store: Path, collector_settings) -> None:
    collector_settings.auth_token = "s3cret"
    with Collector(collector_settings).running() as collector:
        sender = OtlpSender(collector.http_endpoint, protocol="http/protobuf", headers={})
        summary = _export(store, sender)
    assert not summary.complete and summary.retries == 0
    assert summary.last_error.startswith("traces: HTTP 401: missing or wrong bearer token")


def test_unreachable_endpoint_leaves_the_batch_pending_then_resumes(store: Path, collector) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    waits: list[float] = []
    sender = OtlpSender(f"http://127.0.0.1:{dead}", protocol="grpc", max_attempts=3, timeout=2,
                        sleep=waits.append)
    summary = _export(store, sender, page_size=25)
    assert not summary.complete and summary.spans_done == 0 and summary.pending > 0
    assert sender.retries == 2 and len(waits) == 2 and waits[1] > 0 and "UNAVAILABLE" in summary.last_error
    saved = SidecarCursorStore(sidecar_path(store)).load(cursor_id(sender.destination, Selection().describe()))
    assert saved is not None and saved.position is None and len(saved.pending) == summary.pending > 25
    # When the endpoint is back (here: the same destination name pointed at a live collector) the run resumes
    # from the pending batch.
    live = OtlpSender(f"http://{collector.grpc_endpoint}", protocol="grpc")
    live.destination = sender.destination
    resumed = _export(store, live, page_size=25)
    assert resumed.complete and resumed.spans_done == 60 and resumed.delivered == 60 + 40 + 20
    assert _wait_for_rows(collector.reader(), "logs", 20) == 20


def test_redaction_applies_before_anything_leaves(tmp_path: Path, collector) -> None:
    tracer_provider, logger_provider, spans, logs = make_providers()
    for index in range(12):  # 36 spans: enough for the one-regex screen of a page to run (>= 32 rows)
        agent_run(tracer_provider, logger_provider,
                  big="mail ann@example.com, key sk-abcdefghijklmnopqrstuvwx" if index == 5 else None)
    db = tmp_path / "secret.duckdb"
    write_store(db, spans.get_finished_spans(), logs.get_finished_logs())
    redactor = TableRedactor(RedactionPolicy.default())
    sender = OtlpSender(f"http://{collector.grpc_endpoint}", protocol="grpc")
    summary = _export(db, sender, redactor=redactor)
    assert summary.complete and summary.redacted >= 2
    target = collector.reader()
    assert _wait_for_rows(target, "spans", 36) == 36
    sent = target.sql("SELECT attributes->>'gen_ai.input.messages' FROM spans WHERE name = 'chat gpt-4o' "
                      "AND attributes->>'gen_ai.input.messages' IS NOT NULL").column(0).to_pylist()
    assert len(sent) == 1
    assert "ann@example.com" not in sent[0] and "sk-abcdefghijklmnopqrstuvwx" not in sent[0] and "[REDACTED" in sent[0]


def test_otlp_json_files_keep_them_too(tmp_path: Path) -> None:
    db = tmp_path / "odd.duckdb"
    write_request(db, _odd_request())
    out = tmp_path / "odd.jsonl"
    assert main(["export", "otlp-json", "--db", str(db), "-o", str(out), "--no-progress"]) == 0
    spans = [span for scope in json.loads(out.read_bytes().splitlines()[0])["resourceSpans"][0]["scopeSpans"]
             for span in scope["spans"]]
    assert [(span.get("kind", 0), span["flags"]) for span in spans] == [(0, 0x301), (5, 0x101)]  # 0: omitted
    copy = tmp_path / "copy.duckdb"
    assert main(["import", str(out), "--db", str(copy)]) == 0
    query = ("SELECT span_id, kind, flags, trace_state, attributes::VARCHAR AS a FROM spans ORDER BY span_id",
             "SELECT linked_trace_id, linked_span_id, trace_state, flags, dropped_attributes_count FROM span_links")
    rows = []
    for path in (db, copy):
        reader = LocalReader.open_file(path)
        rows.append([reader.sql(q).to_pylist() for q in query])
        reader.close()
    assert rows[0] == rows[1]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM), made with `cryptography`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_endpoints_use_tls_and_check_the_certificate(store: Path, tmp_path: Path, monkeypatch) -> None:
    """An https:// endpoint is spoken to over TLS; an unknown certificate is refused at once (not retried), and
    OTEL_EXPORTER_OTLP_CERTIFICATE names the CA to trust. The TLS server is a minimal OTLP/HTTP receiver that
    decodes each request with opentelemetry-proto (no collector TLS here)."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (ExportLogsServiceRequest,
                                                                        ExportLogsServiceResponse)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    received = {"spans": 0, "logs": 0}

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                received["spans"] += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
                answer = ExportTraceServiceResponse().SerializeToString()
            else:
                request = ExportLogsServiceRequest.FromString(body)
                received["logs"] += sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
                answer = ExportLogsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_CERTIFICATE", raising=False)
        untrusted = OtlpSender(endpoint, protocol="http/protobuf")
        refused = _export(store, untrusted)
        assert not refused.complete and refused.retries == 0 and "certificate was refused" in refused.last_error
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(cert))
        trusted = OtlpSender(endpoint, protocol="http/protobuf")
        summary = _export(store, trusted)
    finally:
        server.shutdown()
        server.server_close()
    assert summary.complete and received == {"spans": 60, "logs": 20}
