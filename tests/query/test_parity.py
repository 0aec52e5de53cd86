"""Row-by-row parity: the views against what the real Azure Monitor exporter sends for the same spans and logs.

The same SDK spans go (1) over OTLP/gRPC into the real collector, and (2) through the real
azure-monitor-opentelemetry-exporter to a local fake ingestion endpoint. Every envelope must then appear in the
matching view with the same table, ids, names, duration, success, type/target and customDimensions.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter, AzureMonitorTraceExporter
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.export.fake_ingestion import FakeIngestion
from tests.query.workload import make_workload, server_span_workload, special_mapping_workload

_QUIET_EXPORTER_ENV = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_OPENTELEMETRY_RESOURCE_METRIC_DISABLED": "true",
}


def _duration_ms(text: str) -> float:
    """The exporter's "d.hh:mm:ss.fff" duration in milliseconds."""
    days, rest = text.split(".", 1)
    clock, millis = rest.rsplit(".", 1)
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return float((((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000 + int(millis))


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """(envelopes from the Azure exporter, rows of every view) for one workload."""
    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings

    workload = make_workload(runs=9, seed=11)
    spans = workload.spans + server_span_workload() + special_mapping_workload()
    monkeypatch = pytest.MonkeyPatch()
    for key, value in _QUIET_EXPORTER_ENV.items():
        monkeypatch.setenv(key, value)
    try:
        with FakeIngestion(check_stale=False) as server:  # the workload's times may be days old
            trace_exporter = AzureMonitorTraceExporter(connection_string=server.connection_string,
                                                       disable_offline_storage=True)
            log_exporter = AzureMonitorLogExporter(connection_string=server.connection_string,
                                                   disable_offline_storage=True)
            assert trace_exporter.export(spans) == SpanExportResult.SUCCESS
            assert log_exporter.export(workload.logs).name == "SUCCESS"
            trace_exporter.shutdown()
            log_exporter.shutdown()
            envelopes = list(server.accepted)
    finally:
        monkeypatch.undo()

    settings = CollectorSettings(db_path=tmp_path_factory.mktemp("parity") / "t.duckdb", grpc="127.0.0.1:0",
                                 http="127.0.0.1:0")
    with Collector(settings).running() as collector:
        span_exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)
        assert span_exporter.export(spans) == SpanExportResult.SUCCESS
        otlp_logs = OTLPLogExporter(endpoint=collector.grpc_endpoint, insecure=True)
        assert otlp_logs.export(workload.logs) == LogRecordExportResult.SUCCESS
        span_exporter.shutdown()
        otlp_logs.shutdown()
        reader = collector.reader()
        rows = {table: reader.sql(f'SELECT * FROM "{table}"').to_pylist()
                for table in ("requests", "dependencies", "traces", "exceptions", "customEvents",
                              "AppDependencies", "AppRequests")}
    return envelopes, rows, spans, workload


def _by_name(envelopes, name):
    return [e for e in envelopes if e["name"] == f"Microsoft.ApplicationInsights.{name}"]


def _check_context(envelope: dict, row: dict) -> None:
    tags = envelope["tags"]
    assert row["operation_Id"] == tags["ai.operation.id"]
    # Ingestion fills a missing parent id with the operation id (azure-monitor.md §3.1); the views do the same.
    assert row["operation_ParentId"] == tags.get("ai.operation.parentId", tags["ai.operation.id"])
    assert row["operation_Name"] == tags.get("ai.operation.name", "")
    assert row["cloud_RoleName"] == tags.get("ai.cloud.role", "")
    assert row["cloud_RoleInstance"] == tags.get("ai.cloud.roleInstance", "")
    assert row["application_Version"] == tags.get("ai.application.ver", "")
    assert row["session_Id"] == tags.get("ai.session.id", "")
    # A non-string end-user id goes out as a JSON number; the table column holds its text.
    assert row["user_Id"] == str(tags.get("ai.user.id", ""))
    assert row["user_AuthenticatedId"] == str(tags.get("ai.user.authUserId", ""))
    assert row["timestamp"] == _time(envelope["time"])
    assert row["itemCount"] == 1


def test_every_span_envelope_has_its_row(captured):
    envelopes, rows, spans, _ = captured
    span_envelopes = _by_name(envelopes, "RemoteDependency") + _by_name(envelopes, "Request")
    assert len(span_envelopes) == len(spans)
    assert len(rows["dependencies"]) + len(rows["requests"]) == len(spans)
    dependencies = {row["id"]: row for row in rows["dependencies"]}
    requests = {row["id"]: row for row in rows["requests"]}
    for envelope in span_envelopes:
        data = envelope["data"]["baseData"]
        is_request = envelope["data"]["baseType"] == "RequestData"
        row = (requests if is_request else dependencies)[data["id"]]
        assert row["name"] == data["name"]
        assert row["duration"] == _duration_ms(data["duration"])
        assert row["success"] == data["success"]
        assert json.loads(row["customDimensions"]) == data.get("properties", {})
        if is_request:
            assert row["resultCode"] == data["responseCode"]
            assert row["url"] == data.get("url", "")
        else:
            assert row["resultCode"] == data["resultCode"]
            assert row["type"] == data.get("type", "")
            assert row["target"] == data.get("target", "")
            assert row["data"] == data.get("data", "")
        _check_context(envelope, row)


def test_span_events_become_traces_and_exceptions(captured):
    envelopes, rows, _, _ = captured
    messages = _by_name(envelopes, "Message")
    exceptions = _by_name(envelopes, "Exception")
    assert messages and exceptions
    assert len(rows["traces"]) == len(messages)
    assert len(rows["exceptions"]) == len(exceptions)
    traces = {(row["operation_ParentId"], row["timestamp"], row["message"]): row for row in rows["traces"]}
    for envelope in messages:
        data = envelope["data"]["baseData"]
        row = traces[(envelope["tags"]["ai.operation.parentId"], _time(envelope["time"]), data["message"])]
        assert json.loads(row["customDimensions"]) == data.get("properties", {})
        _check_context(envelope, row)
    by_parent = {(row["operation_ParentId"], row["timestamp"]): row for row in rows["exceptions"]}
    for envelope in exceptions:
        data = envelope["data"]["baseData"]
        row = by_parent[(envelope["tags"]["ai.operation.parentId"], _time(envelope["time"]))]
        detail = data["exceptions"][0]
        assert row["type"] == detail["typeName"]
        assert row["message"] == detail["message"]
        assert json.loads(row["details"])[0]["stack"] == detail["stack"]
        assert json.loads(row["customDimensions"]) == data.get("properties", {})
        _check_context(envelope, row)


def test_evaluation_log_records_become_custom_events(captured):
    envelopes, rows, _, workload = captured
    events = _by_name(envelopes, "Event")
    assert len(events) == len(workload.logs) == len(rows["customEvents"]) > 0
    remaining = list(rows["customEvents"])
    for envelope in events:
        data = envelope["data"]["baseData"]
        match = [row for row in remaining
                 if row["operation_ParentId"] == envelope["tags"]["ai.operation.parentId"]
                 and json.loads(row["customDimensions"]) == data["properties"]]
        assert len(match) == 1, data
        row = match[0]
        remaining.remove(row)
        assert row["name"] == data["name"] == "gen_ai.evaluation.result"
        assert row["operation_Id"] == envelope["tags"]["ai.operation.id"]
        assert row["timestamp"] == _time(envelope["time"])


def test_workspace_views_rename_the_same_rows(captured):
    _, rows, _, _ = captured
    classic = {row["id"]: row for row in rows["dependencies"]}
    assert len(rows["AppDependencies"]) == len(classic)
    for row in rows["AppDependencies"]:
        source = classic[row["Id"]]
        assert (row["TimeGenerated"], row["Name"], row["DurationMs"], row["Success"], row["DependencyType"],
                row["Target"], row["OperationId"], row["ParentId"], row["AppRoleName"], row["Properties"],
                row["ItemCount"]) == (
            source["timestamp"], source["name"], source["duration"], source["success"], source["type"],
            source["target"], source["operation_Id"], source["operation_ParentId"], source["cloud_RoleName"],
            source["customDimensions"], source["itemCount"])
        assert row["Type"] == "AppDependencies"
    assert [row["Id"] for row in rows["AppRequests"]] == [row["id"] for row in rows["requests"]]
