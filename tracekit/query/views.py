"""Application Insights-shaped views over the store, so KQL written for Azure Monitor runs here unchanged.

The collector creates the macros and views in the store itself shortly after it starts (`install_in_store`, from
collector/query_views.py, stamped with a digest of their SQL in tracekit_meta), so readers find them ready; on a
store without this version's views `install(con)` creates them as TEMP objects on the reader's connection instead
(TEMP names come first):

* classic tables `requests`, `dependencies`, `traces`, `exceptions`, `customEvents`, `customMetrics`;
* workspace tables `AppRequests`, `AppDependencies`, `AppTraces`, `AppExceptions`, `AppEvents`, `AppMetrics`
  (the same rows with the workspace column names);
* helper views for agent questions: `span_agents` (the `invoke_agent` span that owns each span) and
  `conversations` (one row per conversation id).

The mapping is the one the Azure Monitor exporter (azure-monitor-opentelemetry-exporter 1.0.0b58) applies when it
turns a span into an envelope, see ../shared/reference/azure-monitor.md §2 and §6 and docs/kql.md: SERVER/CONSUMER
spans are requests, CLIENT/PRODUCER/INTERNAL spans dependencies, a span event named "exception" an exception, any
other span event a trace; log records with `microsoft.custom_event.name` are customEvents, other log records traces
(or exceptions when they carry exception.* attributes), as the exporter's log path does. `customDimensions` is the
exporter's filtered attribute map with every value stringified the way Python's `str()` does it. The columns the
exporter derives from HTTP, database, messaging, RPC, peer and Azure SDK attributes (name, type, target, data...)
come from tracekit.query.span_mapping.

Every public view has a `tk_<name>_wide` twin that adds `__tk_*` columns (the raw attribute JSON and typed store
columns). tracekit.query.kql reads those to answer `customDimensions["key"]` without building the whole
customDimensions object per row; the public views are the wide ones minus those columns.
"""

from __future__ import annotations

import hashlib
import socket

import duckdb

from tracekit.query.names import CLASSIC_TABLES, WORKSPACE_TABLES, view_names  # noqa: F401 (views.view_names())
from tracekit.query.pystr import py_str_sql
from tracekit.query.span_mapping import SPAN_DERIVED, SPAN_MAPPING_MACROS
from tracekit.semconv import TRACEKIT_COST_USD as COST_MEASUREMENT

# --- the exporter's attribute filters (EXP/export/trace/_exporter.py, EXP/export/logs/_exporter.py) -------------------
SPAN_EXCLUDED_PREFIXES = ("http.", "db.", "message.", "messaging.", "rpc.", "enduser.", "net.", "peer.",
                          "exception.", "thread.", "fass.", "code.")
SPAN_EXCLUDED_KEYS = ("session.id", "_MS.sampleRate", "microsoft.custom_measurements", "client.address",
                      "client.port", "server.address", "server.port", "url.full", "url.path", "url.query",
                      "url.scheme", "url.template", "error.type", "network.local.address", "network.local.port",
                      "network.protocol.name", "network.peer.address", "network.peer.port",
                      "network.protocol.version", "network.transport", "user_agent.original",
                      "user_agent.synthetic.type")
LOG_EXCLUDED_KEYS = ("exception.type", "exception.message", "exception.stacktrace", "exception.escaped",
                     "microsoft.custom_event.name", "_MS.event_marker", "microsoft.custom_measurements",
                     "microsoft.availability.id", "microsoft.availability.name", "microsoft.availability.duration",
                     "microsoft.availability.success", "microsoft.availability.runLocation",
                     "microsoft.availability.message", "enduser.id", "enduser.pseudo.id", "session.id")
# Values are cut at 8 KiB, except these GenAI content keys, cut at 256 KiB (EXP/_utils.py::_filter_custom_properties).
LONG_VALUE_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                   "gen_ai.tool.definitions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                   "gen_ai.evaluation.explanation")
MAX_KEY_LENGTH = 150
SDK_VERSION = "tracekit"

HIDDEN_PREFIX = "__tk_"


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def span_key_excluded(key: str) -> bool:
    """Whether the exporter leaves this span/event attribute out of customDimensions (mirrors tk_span_key_excluded)."""
    return (not key or len(key) > MAX_KEY_LENGTH or key.startswith(SPAN_EXCLUDED_PREFIXES)
            or key in SPAN_EXCLUDED_KEYS)


def value_limit(key: str) -> int:
    """How many characters of an attribute value reach customDimensions."""
    return 256 * 1024 if key in LONG_VALUE_KEYS else 8 * 1024


def _span_key_excluded_sql(k: str) -> str:
    prefixes = " OR ".join(f"starts_with({k}, '{prefix}')" for prefix in SPAN_EXCLUDED_PREFIXES)
    return (f"({k} = '' OR length({k}) > {MAX_KEY_LENGTH} OR list_contains({_sql_list(SPAN_EXCLUDED_KEYS)}, {k}) "
            f"OR {prefixes})")


def _log_key_excluded_sql(k: str) -> str:
    return f"({k} = '' OR length({k}) > {MAX_KEY_LENGTH} OR list_contains({_sql_list(LOG_EXCLUDED_KEYS)}, {k}))"


def _value_limit_sql(k: str) -> str:
    return f"CASE WHEN list_contains({_sql_list(LONG_VALUE_KEYS)}, {k}) THEN {256 * 1024} ELSE {8 * 1024} END"


def _properties_sql(a: str, excluded: str) -> str:
    """customDimensions: the attributes the exporter keeps, each value as Python str(), cut to its limit."""
    return (f"to_json(map_from_entries(list_transform("
            f"list_filter(map_entries(CAST({a} AS MAP(VARCHAR, JSON))), "
            f"lambda e: NOT {excluded} AND json_type(e.value) <> 'NULL'), "
            f"lambda e: {{'k': e.key, 'v': left({py_str_sql('e.value')}, {_value_limit_sql('e.key')})}})))")


_MACROS = f"""
CREATE OR REPLACE TEMP MACRO tk_py_str(v) AS {py_str_sql('v')};
CREATE OR REPLACE TEMP MACRO tk_span_key_excluded(k) AS {_span_key_excluded_sql('k')};
CREATE OR REPLACE TEMP MACRO tk_span_properties(a) AS {_properties_sql('a', _span_key_excluded_sql('e.key'))};
CREATE OR REPLACE TEMP MACRO tk_log_properties(a) AS {_properties_sql('a', _log_key_excluded_sql('e.key'))};
-- customDimensions[path] of a span, straight from its attributes: what tk_span_properties(a)[path] would give,
-- at the cost of one attribute. tracekit.query.kql uses it for keys without a typed column.
-- The document is parsed once (json_extract); the rest works on the small extracted value.
CREATE OR REPLACE TEMP MACRO tk_dimension_value(v, lim) AS
    CASE WHEN v IS NULL OR json_type(v) = 'NULL' THEN CAST(NULL AS JSON) ELSE to_json(left(tk_py_str(v), lim)) END;
CREATE OR REPLACE TEMP MACRO tk_dimension(a, path, lim) AS
    CASE WHEN NOT contains(CAST(a AS VARCHAR), substr(path, 3)) THEN CAST(NULL AS JSON)
         ELSE tk_dimension_value(json_extract(a, path), lim) END;
-- One attribute as a string, only when it is a string (the exporter's isinstance(x, str) checks).
CREATE OR REPLACE TEMP MACRO tk_attr_str(a, path) AS
    CASE WHEN json_type(a, path) = 'VARCHAR' THEN a ->> path END;
-- An attribute's value as text whatever its type (str() of it), NULL when absent.
-- A string is read straight (a third of the cost of the general path); a missing path gives NULL either way.
CREATE OR REPLACE TEMP MACRO tk_attr_text(a, path) AS
    CASE json_type(a, path) WHEN 'VARCHAR' THEN a ->> path WHEN 'NULL' THEN NULL
         ELSE tk_py_str(json_extract(a, path)) END;
-- The envelope time the exporter writes: datetime.fromtimestamp(ns / 1e9), float rounding and all (µs, half-even).
CREATE OR REPLACE TEMP MACRO tk_exporter_time(ns) AS
    make_timestamp(CAST(floor(ns / 1e9) AS BIGINT) * 1000000
                   + CAST(round_even((ns / 1e9 - floor(ns / 1e9)) * 1e6, 0) AS BIGINT));
-- The exporter's duration: ns rounded half-up to whole milliseconds.
CREATE OR REPLACE TEMP MACRO tk_duration_ms(ns) AS CAST((ns + 500000) // 1000000 AS DOUBLE);
CREATE OR REPLACE TEMP MACRO tk_performance_bucket(ms) AS
    CASE WHEN ms < 250 THEN '<250ms' WHEN ms < 500 THEN '250ms-500ms' WHEN ms < 1000 THEN '500ms-1sec'
         WHEN ms < 3000 THEN '1sec-3sec' WHEN ms < 7000 THEN '3sec-7sec' WHEN ms < 15000 THEN '7sec-15sec'
         WHEN ms < 30000 THEN '15sec-30sec' WHEN ms < 60000 THEN '30sec-1min' WHEN ms < 120000 THEN '1min-2min'
         WHEN ms < 300000 THEN '2min-5min' ELSE '>=5min' END;
-- _MS.sampleRate -> itemCount (100 / rate), 1 without it. The cheap text test keeps the JSON parse off the hot path.
CREATE OR REPLACE TEMP MACRO tk_item_count(a) AS
    CASE WHEN contains(CAST(a AS VARCHAR), 'MS.sampleRate"')  -- a needle starting with a rare character scans faster
         THEN coalesce(CAST(round(100.0 / nullif(TRY_CAST(a ->> '$."_MS.sampleRate"' AS DOUBLE), 0)) AS BIGINT), 1)
         ELSE 1 END;
-- customMeasurements of a span: what tracekit priced its model call at (tracekit/cost.py), absent when unknown; the
-- Azure export sends the same measurement (docs/decisions/2026-12-07-cost-measurement.md). Built only for priced spans.
CREATE OR REPLACE TEMP MACRO tk_span_measurements(cost) AS
    CASE WHEN cost IS NOT NULL THEN json_object('{COST_MEASUREMENT}', cost) END;
-- OTel severity number -> Application Insights severityLevel (EXP/export/logs/_exporter.py::_get_severity_level).
CREATE OR REPLACE TEMP MACRO tk_severity_level(n) AS
    CASE WHEN n IS NULL OR n < 9 THEN 0 ELSE CAST(trunc((n - 1) / 4 - 1) AS INTEGER) END;
"""

# Resource -> cloud_RoleName / cloud_RoleInstance / application_Version (EXP/_utils.py::_populate_part_a_fields).
_RESOURCE_TAGS = """
CREATE OR REPLACE TEMP MACRO tk_resource_tags() AS TABLE
SELECT resource_id,
    CASE WHEN service_name IS NOT NULL AND NOT starts_with(service_name, 'unknown_service')
         THEN coalesce(service_namespace || '.', '') || service_name
         ELSE coalesce(attributes ->> '$."k8s.deployment.name"', attributes ->> '$."k8s.replicaset.name"',
                       attributes ->> '$."k8s.statefulset.name"', attributes ->> '$."k8s.job.name"',
                       attributes ->> '$."k8s.cronjob.name"', attributes ->> '$."k8s.daemonset.name"',
                       coalesce(service_namespace || '.', '') || service_name, '')
    END AS cloud_RoleName,
    coalesce(nullif(attributes ->> '$."k8s.pod.name"', ''), nullif(service_instance_id, ''), {hostname})
        AS cloud_RoleInstance,
    coalesce(service_version, '') AS application_Version
FROM (SELECT DISTINCT ON (resource_id) * FROM resources)
"""

# Context columns every classic table has; the values differ per source (span, event, log record).
_COMMON_EMPTY = """
    '' AS operation_SyntheticSource, '' AS user_AccountId,
    '' AS client_Type, '' AS client_Model, '' AS client_OS, '' AS client_IP, '' AS client_City,
    '' AS client_StateOrProvince, '' AS client_CountryOrRegion, '' AS client_Browser,
    '' AS appId, '' AS appName, '' AS iKey, '{sdk}' AS sdkVersion
""".format(sdk=SDK_VERSION)

# Columns lifted from the store for the query layer's customDimensions shortcuts (tracekit.query.kql).
TYPED_DIMENSIONS = {
    "gen_ai.operation.name": "operation_name",
    "gen_ai.request.model": "request_model",
    "gen_ai.response.model": "response_model",
    "gen_ai.response.id": "response_id",
    "gen_ai.agent.name": "agent_name",
    "gen_ai.agent.id": "agent_id",
    "gen_ai.tool.name": "tool_name",
    "gen_ai.tool.call.id": "tool_call_id",
}
# Integer store columns for token counts; used for customDimensions reads only when the attribute is an int literal.
TYPED_INTEGER_DIMENSIONS = {
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
}
# customMeasurements keys with a store column: tracekit.query.kql reads toreal(customMeasurements[key]) from it.
TYPED_MEASUREMENTS = {COST_MEASUREMENT: "cost_usd"}
_TYPED_COLUMNS = [*TYPED_DIMENSIONS.values(), *TYPED_INTEGER_DIMENSIONS.values(), *TYPED_MEASUREMENTS.values()]
_HIDDEN_SPAN_COLUMNS = ", ".join(
    [f"s.attributes AS {HIDDEN_PREFIX}attributes", f"s.start_time AS {HIDDEN_PREFIX}time",
     f"s.rowid AS {HIDDEN_PREFIX}rowid"]
    + [f"s.{column} AS {HIDDEN_PREFIX}{column}" for column in _TYPED_COLUMNS]
)

_SPAN_ITEMS = f"""
CREATE OR REPLACE TEMP MACRO tk_span_items() AS TABLE
SELECT
    tk_exporter_time(s.start_time_ns) AS timestamp,  -- the exporter's float conversion, to the µs
    s.span_id AS id,
    s.kind AS __kind,
    s.status_code AS __status_code,
    CASE WHEN s.kind IN ('SERVER', 'CONSUMER') THEN 'request' ELSE 'dependency' END AS itemType,
    tk_duration_ms(s.duration_ns) AS duration,
    tk_performance_bucket(tk_duration_ms(s.duration_ns)) AS performanceBucket,
    tk_span_properties(s.attributes) AS customDimensions,
    tk_span_measurements(s.cost_usd) AS customMeasurements,
    {", ".join(f"{expression} AS {column}" for column, expression in SPAN_DERIVED.items())},
    s.trace_id AS operation_Id,
    coalesce(nullif(s.parent_span_id, '0000000000000000'), s.trace_id) AS operation_ParentId,
    coalesce(r.application_Version, '') AS application_Version,
    coalesce(r.cloud_RoleName, '') AS cloud_RoleName,
    coalesce(r.cloud_RoleInstance, '') AS cloud_RoleInstance,
    s.trace_id || s.span_id AS itemId,
    tk_item_count(s.attributes) AS itemCount,
    {_COMMON_EMPTY},
    {_HIDDEN_SPAN_COLUMNS}
FROM tk_span_facts() s LEFT JOIN tk_resource_tags() r ON r.resource_id = s.resource_id
"""

_REQUEST_COLUMNS = ("timestamp, id, name, url, source, success, resultCode, duration, performanceBucket, itemType, "
                    "customDimensions, customMeasurements")
_DEPENDENCY_COLUMNS = ("timestamp, id, target, type, name, data, success, resultCode, duration, performanceBucket, "
                       "itemType, customDimensions, customMeasurements")
_CONTEXT_COLUMNS = ("operation_Name, operation_Id, operation_ParentId, operation_SyntheticSource, session_Id, "
                    "user_Id, user_AuthenticatedId, user_AccountId, application_Version, client_Type, client_Model, "
                    "client_OS, client_IP, client_City, client_StateOrProvince, client_CountryOrRegion, "
                    "client_Browser, cloud_RoleName, cloud_RoleInstance, appId, appName, iKey, sdkVersion, itemId, "
                    "itemCount")
_HIDDEN_SPAN_SELECT = ", ".join(
    [f"{HIDDEN_PREFIX}attributes", f"{HIDDEN_PREFIX}time", f"{HIDDEN_PREFIX}rowid"]
    + [f"{HIDDEN_PREFIX}{column}" for column in _TYPED_COLUMNS]
)

_SPAN_TABLES = f"""
CREATE OR REPLACE TEMP MACRO tk_requests_wide() AS TABLE
SELECT {_REQUEST_COLUMNS}, {_CONTEXT_COLUMNS}, {_HIDDEN_SPAN_SELECT}
FROM tk_span_items() WHERE __kind IN ('SERVER', 'CONSUMER');
CREATE OR REPLACE TEMP MACRO tk_dependencies_wide() AS TABLE
-- A dependency's success is its status alone; said directly, a filter on it reaches the scan.
SELECT {_DEPENDENCY_COLUMNS.replace("success", "__status_code <> 'ERROR' AS success")}, {_CONTEXT_COLUMNS},
       {_HIDDEN_SPAN_SELECT}
FROM tk_span_items() WHERE __kind NOT IN ('SERVER', 'CONSUMER');
"""

# Span events (EXP/export/trace/_exporter.py::_convert_span_events_to_envelopes) and log records
# (EXP/export/logs/_exporter.py::_convert_log_to_envelope), with what the two share.
_EVENT_BASE = f"""
CREATE OR REPLACE TEMP MACRO tk_event_items() AS TABLE
SELECT
    tk_exporter_time(e.time_ns) AS timestamp,
    e.name AS __event_name,
    e.attributes AS __attributes,
    s.resource_id AS __resource_id,
    'span_event' AS __source,
    NULL AS __body,
    CAST(NULL AS INTEGER) AS __severity_number,
    NULL AS __scope_name,
    tk_span_properties(e.attributes) AS customDimensions,
    '' AS operation_Name,
    e.trace_id AS operation_Id,
    e.span_id AS operation_ParentId,
    coalesce(tk_attr_str(e.attributes, '$."session.id"'), s.session_id, '') AS session_Id,
    '' AS user_Id, '' AS user_AuthenticatedId,
    e.trace_id || e.span_id || CAST(e.event_index AS VARCHAR) AS itemId,
    tk_item_count(s.attributes) AS itemCount,
    e.time AS __time
FROM span_events e
LEFT JOIN (SELECT trace_id, span_id, resource_id, attributes,
                  CASE WHEN contains(CAST(attributes AS VARCHAR), '"session.id"')
                       THEN tk_attr_str(attributes, '$."session.id"') END AS session_id
           FROM spans WHERE event_count > 0) s  -- only spans with events: the scan skips the other 98 %
    ON s.trace_id = e.trace_id AND s.span_id = e.span_id
UNION ALL BY NAME
SELECT
    tk_exporter_time(l.time_ns) AS timestamp,
    NULL AS __event_name,
    l.attributes AS __attributes,
    l.resource_id AS __resource_id,
    'log' AS __source,
    l.body AS __body,
    l.severity_number AS __severity_number,
    l.scope_name AS __scope_name,
    CASE WHEN l.scope_name IS NULL OR json_exists(l.attributes, '$.logger_name') THEN tk_log_properties(l.attributes)
         ELSE json_merge_patch(tk_log_properties(l.attributes), json_object('logger_name', l.scope_name))
    END AS customDimensions,
    coalesce(tk_attr_text(l.attributes, '$."ai.operation.name"'), '') AS operation_Name,
    coalesce(l.trace_id, '00000000000000000000000000000000') AS operation_Id,
    coalesce(l.span_id, '0000000000000000') AS operation_ParentId,
    coalesce(tk_attr_str(l.attributes, '$."session.id"'), '') AS session_Id,
    coalesce(tk_attr_text(l.attributes, '$."enduser.pseudo.id"'), '') AS user_Id,
    coalesce(tk_attr_text(l.attributes, '$."enduser.id"'), '') AS user_AuthenticatedId,
    'log' || CAST(l.ingest_seq AS VARCHAR) || '-' || CAST(l.time_ns AS VARCHAR) AS itemId,
    1 AS itemCount,
    l.time AS __time
FROM logs l
-- Start records and heartbeats of spans in flight (tracekit.live) are tracekit's plumbing, not the application's logs.
WHERE l.event_name IS NULL OR l.event_name NOT IN ('tracekit.span.started', 'tracekit.heartbeat')
"""

# A log record's body as the exporter's message: the string itself, else its JSON text.
_LOG_MESSAGE = "left(CASE WHEN json_type(__body) = 'VARCHAR' THEN __body ->> '$' ELSE CAST(__body AS VARCHAR) END, 32768)"

_EVENT_TABLES = f"""
CREATE OR REPLACE TEMP MACRO tk_event_rows() AS TABLE
SELECT i.*,
    coalesce(r.application_Version, '') AS application_Version,
    coalesce(r.cloud_RoleName, '') AS cloud_RoleName,
    coalesce(r.cloud_RoleInstance, '') AS cloud_RoleInstance,
    {_COMMON_EMPTY},
    (i.__source = 'log' AND (json_exists(i.__attributes, '$."exception.type"')
                             OR json_exists(i.__attributes, '$."exception.message"'))) AS __log_exception,
    (i.__source = 'log' AND (json_exists(i.__attributes, '$."microsoft.custom_event.name"')
                             OR json_exists(i.__attributes, '$."_MS.event_marker"'))) AS __log_event
FROM tk_event_items() i LEFT JOIN tk_resource_tags() r ON r.resource_id = i.__resource_id;

CREATE OR REPLACE TEMP MACRO tk_traces_wide() AS TABLE
SELECT timestamp,
    CASE WHEN __source = 'span_event' THEN left(__event_name, 32768)
         ELSE coalesce(nullif(trim({_LOG_MESSAGE}), ''), 'n/a') END AS message,
    CASE WHEN __source = 'span_event' THEN CAST(NULL AS INTEGER) ELSE tk_severity_level(__severity_number) END
        AS severityLevel,
    'trace' AS itemType, customDimensions, CAST(NULL AS JSON) AS customMeasurements,
    {_CONTEXT_COLUMNS}, __attributes AS {HIDDEN_PREFIX}attributes, __time AS {HIDDEN_PREFIX}time
FROM tk_event_rows()
WHERE (__source = 'span_event' AND __event_name <> 'exception')
   OR (__source = 'log' AND NOT __log_exception AND NOT __log_event);

CREATE OR REPLACE TEMP MACRO tk_exceptions_wide() AS TABLE
-- The exception.* attributes are read once, in the inner query: each tk_attr_text is a large expression to bind.
SELECT timestamp,
    left(__type, 1024) AS type,
    left(CASE WHEN __source = 'log' AND __body IS NOT NULL AND {_LOG_MESSAGE} <> '' THEN {_LOG_MESSAGE}
              ELSE __message END, 32768) AS message,
    __type AS problemId,
    '' AS handledAt, '' AS assembly, '' AS method,
    left(__type, 1024) AS outerType,
    left(__message, 32768) AS outerMessage,
    '' AS outerAssembly, '' AS outerMethod,
    left(__type, 1024) AS innermostType,
    left(__message, 32768) AS innermostMessage,
    '' AS innermostAssembly, '' AS innermostMethod,
    CASE WHEN __source = 'span_event' THEN CAST(NULL AS INTEGER) ELSE tk_severity_level(__severity_number) END
        AS severityLevel,
    to_json([struct_pack(
        type := left(__type, 1024),
        message := left(__message, 32768),
        hasFullStack := __stack IS NOT NULL,
        stack := left(coalesce(__stack, 'None'), 32768))]) AS details,
    'exception' AS itemType, customDimensions, CAST(NULL AS JSON) AS customMeasurements,
    {_CONTEXT_COLUMNS}, __attributes AS {HIDDEN_PREFIX}attributes, __time AS {HIDDEN_PREFIX}time
FROM (
    SELECT *,
        coalesce(nullif(tk_attr_text(__attributes, '$."exception.type"'), ''), 'Exception') AS __type,
        coalesce(nullif(tk_attr_text(__attributes, '$."exception.message"'), ''), 'Exception') AS __message,
        tk_attr_text(__attributes, '$."exception.stacktrace"') AS __stack
    FROM tk_event_rows()
    WHERE (__source = 'span_event' AND __event_name = 'exception') OR __log_exception
);

CREATE OR REPLACE TEMP MACRO tk_customEvents_wide() AS TABLE
SELECT timestamp,
    coalesce(nullif(tk_attr_text(__attributes, '$."microsoft.custom_event.name"'), ''), {_LOG_MESSAGE}, '') AS name,
    'customEvent' AS itemType, customDimensions, CAST(NULL AS JSON) AS customMeasurements,
    {_CONTEXT_COLUMNS}, __attributes AS {HIDDEN_PREFIX}attributes, __time AS {HIDDEN_PREFIX}time
FROM tk_event_rows()
WHERE __log_event AND NOT __log_exception;
"""

# Metric points -> customMetrics (one row per point; histograms give count/sum/min/max as the Azure exporter does).
_METRICS = f"""
CREATE OR REPLACE TEMP MACRO tk_customMetrics_wide() AS TABLE
SELECT tk_exporter_time(m.time_ns) AS timestamp,
    m.metric_name AS name,
    coalesce(m.value, m.sum) AS value,
    CAST(coalesce(m.count, 1) AS BIGINT) AS valueCount,
    coalesce(m.sum, m.value) AS valueSum,
    coalesce(m.min, m.value) AS valueMin,
    coalesce(m.max, m.value) AS valueMax,
    CAST(0.0 AS DOUBLE) AS valueStdDev,
    'customMetric' AS itemType,
    tk_span_properties(m.attributes) AS customDimensions,
    '' AS operation_Name, '' AS operation_Id, '' AS operation_ParentId, '' AS operation_SyntheticSource,
    '' AS session_Id, '' AS user_Id, '' AS user_AuthenticatedId, '' AS user_AccountId,
    coalesce(r.application_Version, '') AS application_Version,
    '' AS client_Type, '' AS client_Model, '' AS client_OS, '' AS client_IP, '' AS client_City,
    '' AS client_StateOrProvince, '' AS client_CountryOrRegion, '' AS client_Browser,
    coalesce(r.cloud_RoleName, '') AS cloud_RoleName, coalesce(r.cloud_RoleInstance, '') AS cloud_RoleInstance,
    '' AS appId, '' AS appName, '' AS iKey, '{SDK_VERSION}' AS sdkVersion,
    'metric' || CAST(m.ingest_seq AS VARCHAR) || '-' || CAST(m.time_ns AS VARCHAR) AS itemId,
    m.attributes AS {HIDDEN_PREFIX}attributes, m.time AS {HIDDEN_PREFIX}time
FROM metric_points m LEFT JOIN tk_resource_tags() r ON r.resource_id = m.resource_id
"""

# Workspace (Log Analytics) column names for the classic ones (azure-monitor.md §3.1, §3.2).
WORKSPACE_RENAMES: dict[str, str] = {
    "timestamp": "TimeGenerated", "id": "Id", "name": "Name", "url": "Url", "source": "Source",
    "success": "Success", "resultCode": "ResultCode", "duration": "DurationMs",
    "performanceBucket": "PerformanceBucket", "target": "Target", "type": "DependencyType", "data": "Data",
    "message": "Message", "severityLevel": "SeverityLevel", "customDimensions": "Properties",
    "customMeasurements": "Measurements", "operation_Name": "OperationName", "operation_Id": "OperationId",
    "operation_ParentId": "ParentId", "operation_SyntheticSource": "SyntheticSource", "session_Id": "SessionId",
    "user_Id": "UserId", "user_AuthenticatedId": "UserAuthenticatedId", "user_AccountId": "UserAccountId",
    "application_Version": "AppVersion", "client_Type": "ClientType", "client_Model": "ClientModel",
    "client_OS": "ClientOS", "client_IP": "ClientIP", "client_City": "ClientCity",
    "client_StateOrProvince": "ClientStateOrProvince", "client_CountryOrRegion": "ClientCountryOrRegion",
    "client_Browser": "ClientBrowser", "cloud_RoleName": "AppRoleName", "cloud_RoleInstance": "AppRoleInstance",
    "iKey": "IKey", "sdkVersion": "SDKVersion", "itemCount": "ItemCount", "problemId": "ProblemId",
    "handledAt": "HandledAt", "assembly": "Assembly", "method": "Method", "outerType": "OuterType",
    "outerMessage": "OuterMessage", "outerAssembly": "OuterAssembly", "outerMethod": "OuterMethod",
    "innermostType": "InnermostType", "innermostMessage": "InnermostMessage",
    "innermostAssembly": "InnermostAssembly", "innermostMethod": "InnermostMethod", "details": "Details",
}
# Classic columns with no workspace counterpart, and per-table overrides (AppExceptions.type -> ExceptionType).
_WORKSPACE_DROPPED = {"itemType", "itemId", "appId", "appName"}
_WORKSPACE_OVERRIDES = {("AppExceptions", "type"): "ExceptionType", ("AppMetrics", "valueSum"): "Sum",
                        ("AppMetrics", "valueMin"): "Min", ("AppMetrics", "valueMax"): "Max",
                        ("AppMetrics", "valueCount"): "ItemCount"}
_WORKSPACE_TABLE_DROPPED = {("AppMetrics", "value"), ("AppMetrics", "valueStdDev")}


def _hostname() -> str:
    return "'" + socket.gethostname().replace("'", "''") + "'"


_EVENT_CONTEXT = "itemType, customDimensions, customMeasurements, " + _CONTEXT_COLUMNS
_METRIC_CONTEXT = ", ".join(c for c in _CONTEXT_COLUMNS.split(", ") if c != "itemCount")

# The public columns of each classic table, in Application Insights' order (the TEMP views select exactly these).
PUBLIC_COLUMNS: dict[str, list[str]] = {
    table: [column.strip() for column in columns.split(",")]
    for table, columns in {
        "requests": _REQUEST_COLUMNS + ", " + _CONTEXT_COLUMNS,
        "dependencies": _DEPENDENCY_COLUMNS + ", " + _CONTEXT_COLUMNS,
        "traces": "timestamp, message, severityLevel, " + _EVENT_CONTEXT,
        "exceptions": "timestamp, type, message, problemId, handledAt, assembly, method, outerType, outerMessage, "
                      "outerAssembly, outerMethod, innermostType, innermostMessage, innermostAssembly, "
                      "innermostMethod, severityLevel, details, " + _EVENT_CONTEXT,
        "customEvents": "timestamp, name, " + _EVENT_CONTEXT,
        "customMetrics": "timestamp, name, value, valueCount, valueSum, valueMin, valueMax, valueStdDev, itemType, "
                         "customDimensions, " + _METRIC_CONTEXT,
    }.items()
}


def _workspace_select(workspace: str, classic: str) -> str:
    """The SELECT list that renames a classic table's columns to the workspace table's."""
    select = []
    for column in PUBLIC_COLUMNS[classic]:
        if column in _WORKSPACE_DROPPED or (workspace, column) in _WORKSPACE_TABLE_DROPPED:
            continue
        target = _WORKSPACE_OVERRIDES.get((workspace, column)) or WORKSPACE_RENAMES.get(column, column)
        select.append(f'"{column}" AS "{target}"')
    select += [f"'{workspace}' AS \"Type\"", "'' AS \"ResourceGUID\"", "'' AS \"TenantId\"",
               "'' AS \"SourceSystem\"", "'' AS \"_ResourceId\""]
    return ", ".join(select)


def wide_source(table: str) -> str:
    """SQL for a FROM clause: the view's rows with the hidden `__tk_*` columns (raw attributes, store time, typed
    columns) that tracekit.query.kql uses for time ranges and customDimensions shortcuts."""
    if table in WORKSPACE_TABLES:
        classic = WORKSPACE_TABLES[table]
        return f"(SELECT {_workspace_select(table, classic)}, COLUMNS('^{HIDDEN_PREFIX}') FROM tk_{classic}_wide())"
    return f"tk_{table}_wide()"


_HELPERS = """
-- The invoke_agent span that owns each span (itself when it is one): the nearest agent ancestor.
CREATE OR REPLACE TEMP VIEW span_agents AS
WITH RECURSIVE walk(trace_id, span_id, ancestor_id, depth) AS (
    SELECT trace_id, span_id, span_id, 0 FROM spans
    UNION ALL
    SELECT w.trace_id, w.span_id, p.parent_span_id, w.depth + 1
    FROM walk w JOIN spans p ON p.trace_id = w.trace_id AND p.span_id = w.ancestor_id
    WHERE p.parent_span_id IS NOT NULL AND coalesce(p.operation_name, '') <> 'invoke_agent' AND w.depth < 64
)
SELECT w.trace_id AS operation_Id, w.span_id AS id, a.span_id AS agent_span_id, a.agent_name, a.agent_id
FROM walk w JOIN spans a ON a.trace_id = w.trace_id AND a.span_id = w.ancestor_id
WHERE a.operation_name = 'invoke_agent';

-- One row per conversation: when it ran, how many traces and spans, which agents, tokens used, errors.
CREATE OR REPLACE TEMP VIEW conversations AS
SELECT conversation_id,
    min(start_time) AS first_seen, max(end_time) AS last_seen,
    count(DISTINCT trace_id) AS traces, count(*) AS spans,
    list_sort(list_distinct(list(agent_name) FILTER (WHERE agent_name IS NOT NULL))) AS agents,
    coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
    count(*) FILTER (WHERE status_code = 'ERROR') AS errors
FROM spans WHERE conversation_id IS NOT NULL
GROUP BY conversation_id;
"""


# Columns of requests/dependencies as SQL over the store's `spans` (alias s) and tk_resource_tags() (alias r). A
# query that reads only these gets a lean source (see lean_source): binding the full view's expressions costs more
# than scanning a million spans.
_LEAN_SPAN_COLUMNS: dict[str, str] = {
    "timestamp": "tk_exporter_time(s.start_time_ns)",
    "id": "s.span_id",
    "duration": "tk_duration_ms(s.duration_ns)",
    "performanceBucket": "tk_performance_bucket(tk_duration_ms(s.duration_ns))",
    "operation_Id": "s.trace_id",
    "operation_ParentId": "coalesce(nullif(s.parent_span_id, '0000000000000000'), s.trace_id)",
    "itemId": "s.trace_id || s.span_id",
    "itemCount": "tk_item_count(s.attributes)",
    "customDimensions": "tk_span_properties(s.attributes)",
    "customMeasurements": "tk_span_measurements(s.cost_usd)",
    "cloud_RoleName": "coalesce(r.cloud_RoleName, '')",
    "cloud_RoleInstance": "coalesce(r.cloud_RoleInstance, '')",
    "application_Version": "coalesce(r.application_Version, '')",
    f"{HIDDEN_PREFIX}attributes": "s.attributes",
    f"{HIDDEN_PREFIX}time": "s.start_time",
    f"{HIDDEN_PREFIX}rowid": "s.rowid",  # the spans row, over spans and tk_span_facts() alike
    **{f"{HIDDEN_PREFIX}{column}": f"s.{column}" for column in _TYPED_COLUMNS},
    **SPAN_DERIVED,
}
# What a derived column is for every row of one table: a dependency's success is its status alone, a request has no
# type/target/data. These need no tk_span_facts(), whose binding alone costs ~150 ms.
_LEAN_ONLY_FOR = {("dependencies", "itemType"): "'dependency'",
                  ("dependencies", "success"): "s.status_code <> 'ERROR'",
                  ("dependencies", "url"): "''", ("dependencies", "source"): "''",
                  ("requests", "itemType"): "'request'",
                  ("requests", "type"): "''", ("requests", "target"): "''", ("requests", "data"): "''"}
_LEAN_EMPTY = {"operation_SyntheticSource", "user_AccountId", "client_Type", "client_Model",
               "client_OS", "client_IP", "client_City", "client_StateOrProvince", "client_CountryOrRegion",
               "client_Browser", "appId", "appName", "iKey"}


_LOG_MESSAGE_L = ("left(CASE WHEN json_type(l.body) = 'VARCHAR' THEN l.body ->> '$' "
                  "ELSE CAST(l.body AS VARCHAR) END, 32768)")
# customEvents columns computed straight from a log record (alias l) and its resource (alias r).
_LEAN_EVENT_COLUMNS: dict[str, str] = {
    "timestamp": "tk_exporter_time(l.time_ns)",
    "name": f"coalesce(nullif(tk_attr_text(l.attributes, '$.\"microsoft.custom_event.name\"'), ''), "
            f"{_LOG_MESSAGE_L}, '')",
    "itemType": "'customEvent'",
    "itemCount": "1",
    "operation_Id": "coalesce(l.trace_id, '00000000000000000000000000000000')",
    "operation_ParentId": "coalesce(l.span_id, '0000000000000000')",
    "customMeasurements": "CAST(NULL AS JSON)",
    "cloud_RoleName": "coalesce(r.cloud_RoleName, '')",
    "cloud_RoleInstance": "coalesce(r.cloud_RoleInstance, '')",
    "application_Version": "coalesce(r.application_Version, '')",
    f"{HIDDEN_PREFIX}attributes": "l.attributes",
    f"{HIDDEN_PREFIX}time": "l.time",
}
# Which log records are customEvents (as in tk_event_rows): an event marker, and no exception attributes. The text
# tests keep the JSON parse to candidate rows.
_LEAN_EVENT_FILTER = (
    "(contains(CAST(l.attributes AS VARCHAR), '\"microsoft.custom_event.name\"') "
    "OR contains(CAST(l.attributes AS VARCHAR), '\"_MS.event_marker\"')) "
    "AND (json_exists(l.attributes, '$.\"microsoft.custom_event.name\"') "
    "OR json_exists(l.attributes, '$.\"_MS.event_marker\"')) "
    "AND NOT (json_exists(l.attributes, '$.\"exception.type\"') "
    "OR json_exists(l.attributes, '$.\"exception.message\"'))"
)


_EXCEPTION_TYPE = "coalesce(nullif(tk_attr_text(x.a, '$.\"exception.type\"'), ''), 'Exception')"
# exceptions columns computed from a span event named "exception" or a log record with exception.* attributes (x).
_LEAN_EXCEPTION_COLUMNS: dict[str, str] = {
    "timestamp": "tk_exporter_time(x.ns)",
    "type": f"left({_EXCEPTION_TYPE}, 1024)",
    "outerType": f"left({_EXCEPTION_TYPE}, 1024)",
    "innermostType": f"left({_EXCEPTION_TYPE}, 1024)",
    "problemId": _EXCEPTION_TYPE,
    "itemType": "'exception'",
    "operation_Id": "x.operation_id",
    "operation_ParentId": "x.parent_id",
    "operation_Name": "x.operation_name",
    "itemCount": "x.item_count",
    f"{HIDDEN_PREFIX}attributes": "x.a",
    f"{HIDDEN_PREFIX}time": "x.t",
}
def _lean_exception_rows(with_item_count: bool) -> str:
    """Span events named "exception" and log records with exception.* attributes, as rows x of lean sources."""
    if with_item_count:  # the span's _MS.sampleRate; only spans with events can own one
        span_part = ("SELECT e.time_ns AS ns, e.time AS t, e.trace_id AS operation_id, e.span_id AS parent_id, "
                     "'' AS operation_name, e.attributes AS a, coalesce(tk_item_count(s.attributes), 1) AS item_count "
                     "FROM span_events e LEFT JOIN (SELECT trace_id, span_id, attributes FROM spans "
                     "WHERE event_count > 0) s ON s.trace_id = e.trace_id AND s.span_id = e.span_id "
                     "WHERE e.name = 'exception'")
    else:
        span_part = ("SELECT e.time_ns AS ns, e.time AS t, e.trace_id AS operation_id, e.span_id AS parent_id, "
                     "'' AS operation_name, e.attributes AS a, 1 AS item_count FROM span_events e "
                     "WHERE e.name = 'exception'")
    return (span_part + " UNION ALL "
            "SELECT l.time_ns, l.time, coalesce(l.trace_id, '00000000000000000000000000000000'), "
            "coalesce(l.span_id, '0000000000000000'), "
            "coalesce(tk_attr_text(l.attributes, '$.\"ai.operation.name\"'), ''), l.attributes, 1 FROM logs l "
            "WHERE contains(CAST(l.attributes AS VARCHAR), '\"exception.') "
            "AND (json_exists(l.attributes, '$.\"exception.type\"') "
            "OR json_exists(l.attributes, '$.\"exception.message\"'))")


def lean_source(table: str, columns: set[str]) -> str | None:
    """A FROM-clause subquery giving only `columns` of requests/dependencies/customEvents (or their App* twins),
    hidden `__tk_*` columns included, or None when one of them needs the full view."""
    classic = WORKSPACE_TABLES.get(table, table)
    if classic not in ("requests", "dependencies", "customEvents", "exceptions"):
        return None
    lean = {"customEvents": _LEAN_EVENT_COLUMNS, "exceptions": _LEAN_EXCEPTION_COLUMNS}.get(classic,
                                                                                         _LEAN_SPAN_COLUMNS)
    renames = {}
    if table in WORKSPACE_TABLES:
        backwards = {(_WORKSPACE_OVERRIDES.get((table, c)) or WORKSPACE_RENAMES.get(c, c)): c
                     for c in PUBLIC_COLUMNS[classic]}
        renames = {name: backwards[name] for name in columns if name in backwards}
        constants = {"Type": f"'{table}'", "ResourceGUID": "''", "TenantId": "''", "SourceSystem": "''",
                     "_ResourceId": "''"}
    else:
        constants = {}
    known = set(PUBLIC_COLUMNS[classic]) | set(lean) | set(renames) | set(constants)
    select, joins_resource, needs_facts = [], False, False
    for name in sorted(columns & known):  # other names are the query's own aliases
        source = renames.get(name, name)
        if name in constants:
            expression = constants[name]
        elif (classic, source) in _LEAN_ONLY_FOR:
            expression = _LEAN_ONLY_FOR[(classic, source)]
        elif source in lean:
            expression = lean[source]
            needs_facts |= source in SPAN_DERIVED
        elif source in _LEAN_EMPTY:
            expression = "''"
        elif source == "sdkVersion":
            expression = f"'{SDK_VERSION}'"
        else:
            return None
        joins_resource |= "r." in expression
        select.append(f'{expression} AS "{name}"')
    if not select:
        select.append("1 AS __tk_row")
    if classic == "exceptions":
        if joins_resource:
            return None
        rows = _lean_exception_rows("itemCount" in columns or "ItemCount" in columns)
        return f"(SELECT {', '.join(select)} FROM ({rows}) x)"
    if classic == "customEvents":
        join = " LEFT JOIN tk_resource_tags() r ON r.resource_id = l.resource_id" if joins_resource else ""
        return f"(SELECT {', '.join(select)} FROM logs l{join} WHERE {_LEAN_EVENT_FILTER})"
    kinds = "IN ('SERVER', 'CONSUMER')" if classic == "requests" else "NOT IN ('SERVER', 'CONSUMER')"
    join = " LEFT JOIN tk_resource_tags() r ON r.resource_id = s.resource_id" if joins_resource else ""
    # The exporter-derived columns read tk_span_facts(); binding it costs more than scanning spans, so only then.
    source = "tk_span_facts()" if needs_facts else "spans"
    return f"(SELECT {', '.join(select)} FROM {source} s{join} WHERE s.kind {kinds})"


def log_key_excluded(key: str) -> bool:
    """Whether the log exporter leaves this log record attribute out of customDimensions."""
    return not key or len(key) > MAX_KEY_LENGTH or key in LOG_EXCLUDED_KEYS


def _statements() -> list[str]:
    """Every statement that creates the macros and views, in order (as TEMP objects)."""
    statements = [_MACROS, _RESOURCE_TAGS.format(hostname=_hostname()), SPAN_MAPPING_MACROS, _SPAN_ITEMS,
                  _SPAN_TABLES, _EVENT_BASE, _EVENT_TABLES, _METRICS, _HELPERS]
    for table, columns in PUBLIC_COLUMNS.items():
        listed = ", ".join(f'"{column}"' for column in columns)
        statements.append(f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT {listed} FROM tk_{table}_wide()')
    for workspace, classic in WORKSPACE_TABLES.items():
        statements.append(f'CREATE OR REPLACE TEMP VIEW "{workspace}" AS '
                          f"SELECT {_workspace_select(workspace, classic)} FROM tk_{classic}_wide()")
    return statements


def version() -> str:
    """A digest of the views' SQL: a store whose stamp differs holds another tracekit's views (or none)."""
    return hashlib.sha256("\n".join(_statements()).encode()).hexdigest()[:16]


VERSION_KEY = "views_version"


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Make the App Insights-shaped views and macros available to queries on reader connection `con`: nothing to
    do when the store holds this tracekit's views (the collector creates them, see install_in_store), else they
    are created as TEMP objects on `con` (a store written by another version; safe on read-only opens)."""
    try:
        con.execute("SET enable_progress_bar = false")  # readers print results, not DuckDB's progress bar
    except duckdb.Error:
        pass  # the collector locks its configuration; its connection prints nothing anyway
    if stored_version(con) == version():
        return
    _price_column_shim(con)
    for statement in _statements():
        con.execute(statement)


def _price_column_shim(con: duckdb.DuckDBPyConnection) -> None:
    """A store from before schema v3 (opened read-only, so not migrated) has no `spans.cost_usd`: a TEMP `spans`
    view (TEMP names come first) gives it as NULL, unpriced, so the views, lean sources and SQL read one shape."""
    if "cost_usd" in [column[0] for column in con.execute("SELECT * FROM spans LIMIT 0").description]:
        return
    catalog = con.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
    # `rowid` passes the table's row id on: the views and lean sources read `s.rowid` (a view has none of its own).
    con.execute(f'CREATE OR REPLACE TEMP VIEW spans AS SELECT *, rowid AS rowid, CAST(NULL AS DOUBLE) AS cost_usd '
                f'FROM "{catalog}".main.spans')


def stored_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The views version stamped in the store, or None."""
    try:
        row = con.execute("SELECT value FROM main.tracekit_meta WHERE key = ?", [VERSION_KEY]).fetchone()
    except duckdb.Error:
        return None
    return row[0] if row else None


def install_in_store(con: duckdb.DuckDBPyConnection) -> bool:
    """Create the views and macros in the store itself (read-write connection; the collector's schema step), once
    per tracekit version, so readers find them ready instead of creating them on every connection.
    Returns whether they were (re)created."""
    current = version()
    if stored_version(con) == current:
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in _statements():
            con.execute(statement.replace("CREATE OR REPLACE TEMP ", "CREATE OR REPLACE "))
        con.execute("INSERT OR REPLACE INTO tracekit_meta VALUES (?, ?)", [VERSION_KEY, current])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True
