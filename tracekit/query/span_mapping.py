"""How the Azure Monitor trace exporter turns a span into a request or dependency row, as DuckDB SQL.

A transcription of `_convert_span_to_envelope` and its helpers in azure-monitor-opentelemetry-exporter
(`export/trace/_exporter.py`, `export/trace/_utils.py`, 1.0.0b58): the name, type, target, data, result code,
success, url, source and operation name of each span, branch for branch, Python quirks included (`a.get(x) or
a.get(y)` takes the first *truthy* value; a `server.address` without a `server.port` gives `host:None`; the
default HTTP port is 80/443 only when the span states its scheme). tests/query/test_parity.py holds every column to
the real exporter over GenAI, HTTP, database, messaging, RPC, peer and Azure SDK spans of every kind.

`SPAN_MAPPING_MACROS` defines `tk_span_facts()`: the store's spans plus, layer by layer, the facts the exporter
derives (each attribute it reads, as Python's str() / truthiness / number; then ports, URLs, targets). Each layer
reads columns of the one below, so no expression is copied into another (DuckDB inlines macros, and macros that
call each other several times grow exponentially). `SPAN_DERIVED` gives each output column as an expression over
`tk_span_facts()` (alias `s`), shared by the views and the lean sources of tracekit.query.views.

Speed: a span's attributes are parsed (one `json_extract` of the keys below) only when one regular expression
finds an HTTP, database, messaging, RPC, peer or Azure SDK key in its text; GenAI-only spans pay that one scan plus
a substring test for `gen_ai.system`. Each per-key expression is written once, in a lambda over the list of values,
so the macro stays small to bind. DuckDB computes only the columns a query reads.
"""

from __future__ import annotations

from tracekit.query.pystr import py_str_sql

# Every attribute the mapping reads besides gen_ai.system (read on its own: GenAI spans need nothing else).
KEYS = (
    "http.request.method", "http.method", "http.route", "http.url", "http.target", "http.host", "http.scheme",
    "http.server_name", "http.response.status_code", "http.status_code", "url.full", "url.scheme", "url.path",
    "url.query", "server.address", "server.port", "peer.service", "peer.address", "net.peer.name", "net.peer.ip",
    "net.peer.port", "net.host.name", "net.host.port", "db.system.name", "db.system", "db.query.text",
    "db.statement", "db.operation.name", "db.operation", "db.namespace", "db.name", "messaging.system",
    "messaging.destination", "messaging.destination.name", "message_bus.destination", "rpc.system", "az.namespace",
    "client.address",
)
# A span holds one of KEYS only if its text matches this (the others come with one of these families).
_GATE = r'"(http\.|db\.|messaging\.|message_bus\.|rpc\.|az\.namespace"|peer\.service"|net\.peer\.)'


_INDEX = {key: position + 1 for position, key in enumerate(KEYS)}  # 1-based, as DuckDB lists are


def P(key: str) -> str:  # noqa: N802 - the exporter's `key in attributes`
    return f"(s.__v[{_INDEX[key]}] IS NOT NULL)"


def V(key: str) -> str:  # noqa: N802 - str(attributes[key]), NULL when absent
    return f"s.__v[{_INDEX[key]}]"


def T(key: str) -> str:  # noqa: N802 - str(attributes.get(key)) when truthy, else NULL: what `get(k) or ...` keeps
    return f"CASE WHEN s.__b[{_INDEX[key]}] THEN s.__v[{_INDEX[key]}] END"


def N(key: str) -> str:  # noqa: N802 - the number the attribute holds (bools as 0/1), else NULL: `port != 443`
    return f"s.__n[{_INDEX[key]}]"


def I(key: str) -> str:  # noqa: N802, E743 - int() of the attribute, 0 where Python's int() raises ValueError
    return _JSON_INT.format(j=f"s.__j[{_INDEX[key]}]")


# Per attribute, from its JSON value j: truthiness, number, int().
_JSON_TRUTHY = ("CASE json_type({j}) WHEN 'VARCHAR' THEN ({j} ->> '$') <> '' "
                "WHEN 'BOOLEAN' THEN ({j} ->> '$') = 'true' WHEN 'ARRAY' THEN json_array_length({j}) > 0 "
                "WHEN 'OBJECT' THEN TRUE "
                "ELSE TRY_CAST({j} ->> '$' AS DOUBLE) <> 0 OR isnan(TRY_CAST({j} ->> '$' AS DOUBLE)) END")
_JSON_NUMBER = ("CASE json_type({j}) WHEN 'BOOLEAN' THEN CASE WHEN ({j} ->> '$') = 'true' THEN 1.0 ELSE 0.0 END "
                "WHEN 'BIGINT' THEN CAST({j} ->> '$' AS DOUBLE) WHEN 'UBIGINT' THEN CAST({j} ->> '$' AS DOUBLE) "
                "WHEN 'DOUBLE' THEN CAST({j} ->> '$' AS DOUBLE) END")
_JSON_INT = ("CASE json_type({j}) WHEN 'BOOLEAN' THEN CASE WHEN ({j} ->> '$') = 'true' THEN 1 ELSE 0 END "
             "WHEN 'VARCHAR' THEN coalesce(CASE WHEN regexp_full_match({j} ->> '$', '\\s*[+-]?[0-9]+\\s*') "
             "THEN TRY_CAST(trim({j} ->> '$') AS BIGINT) END, 0) "
             "ELSE coalesce(TRY_CAST(trunc(TRY_CAST({j} ->> '$' AS DOUBLE)) AS BIGINT), 0) END")
# Layer B: every KEYS value as str(), truthiness and number, in three lists (one lambda each: one copy of each
# expression to bind, however many keys), NULL for spans the gate passed over.
_PATHS = "[" + ", ".join(f"'$.\"{key}\"'" for key in KEYS) + "]"
_LAYER_B = (f"list_transform(s.__j, lambda j: {py_str_sql('j')}) AS __v,\n"
            f"        list_transform(s.__j, lambda j: {_JSON_TRUTHY.format(j='j')}) AS __b,\n"
            f"        list_transform(s.__j, lambda j: {_JSON_NUMBER.format(j='j')}) AS __n,\n"
            f"        tk_py_str(s.__gen_ai_system) AS gen_ai_system,\n"
            f"        {_JSON_TRUTHY.format(j='s.__gen_ai_system')} AS gen_ai_truthy")


_PEER_PORT_KEPT = (f"{P('net.peer.port')} AND {N('net.peer.port')} IS DISTINCT FROM s.http_default_port "
                   f"AND {N('net.peer.port')} IS DISTINCT FROM s.db_default_port")

# Layer C1: the scheme, default ports, the branch tests, the HTTP method and status, URLs.
_LAYER_C1 = {
    "scheme": f"coalesce({T('url.scheme')}, {T('http.scheme')})",
    "http_default_port": f"CASE coalesce({T('url.scheme')}, {T('http.scheme')}) WHEN 'http' THEN 80 "
                         "WHEN 'https' THEN 443 ELSE 0 END",
    "db_system": f"coalesce({T('db.system.name')}, {V('db.system')})",
    "db_default_port": f"tk_db_default_port(coalesce({T('db.system.name')}, {V('db.system')}, 'None'))",
    "has_http": f"{P('http.request.method')} OR {P('http.method')}",
    "http_method": f"coalesce({T('http.request.method')}, {V('http.method')}, 'None')",
    "http_status": (f"CASE WHEN {T('http.response.status_code')} IS NOT NULL THEN {I('http.response.status_code')} "
                    f"WHEN {T('http.status_code')} IS NOT NULL THEN {I('http.status_code')} ELSE 0 END"),
    "has_db": f"{P('db.system.name')} OR {P('db.system')}",
    "has_az": P("az.namespace"),
    "request_target": (f"CASE WHEN {P('url.path')} THEN CASE WHEN {T('url.path')} IS NOT NULL AND {P('url.query')} "
                       f"THEN {V('url.path')} || '?' || {V('url.query')} ELSE {V('url.path')} END "
                       f"WHEN {P('http.target')} THEN {V('http.target')} END"),
    "az_source": (f"coalesce({T('server.address')}, {T('net.peer.name')}, {T('peer.address')}) || '/' || "
                  f"coalesce({T('messaging.destination.name')}, {T('message_bus.destination')})"),
}
# Layer C2: _get_target_for_dependency_from_peer, _get_url_for_http_dependency, _get_url_for_http_request.
_LAYER_C2 = {
    "peer_target": (f"CASE WHEN {P('peer.service')} THEN {V('peer.service')} "
                    f"ELSE coalesce({V('net.peer.name')}, {V('net.peer.ip')}, '') "
                    f"|| CASE WHEN {_PEER_PORT_KEPT} THEN ':' || {V('net.peer.port')} ELSE '' END END"),
    "dependency_url": (
        f"CASE WHEN {P('url.full')} THEN {V('url.full')} WHEN {P('http.url')} THEN {V('http.url')} "
        f"WHEN s.scheme IS NOT NULL AND {P('http.target')} THEN CASE "
        f"WHEN {P('http.host')} THEN s.scheme || '://' || {V('http.host')} || {V('http.target')} "
        f"WHEN {P('net.peer.port')} AND {P('net.peer.name')} THEN s.scheme || '://' || {V('net.peer.name')} || ':' "
        f"|| {V('net.peer.port')} || {V('http.target')} "
        f"WHEN {P('net.peer.port')} AND {P('net.peer.ip')} THEN s.scheme || '://' || {V('net.peer.ip')} || ':' "
        f"|| {V('net.peer.port')} || {V('http.target')} "
        f"ELSE '' END ELSE '' END"),
    "request_url": (
        f"CASE WHEN {P('url.full')} THEN {V('url.full')} WHEN {P('http.url')} THEN {V('http.url')} "
        f"WHEN s.scheme IS NULL OR coalesce(s.request_target, '') = '' THEN '' "
        f"WHEN {P('server.address')} AND {V('server.address')} <> '' THEN s.scheme || '://' || {V('server.address')} "
        f"|| CASE WHEN {P('server.port')} THEN ':' || {V('server.port')} ELSE '' END || s.request_target "
        f"WHEN NOT {P('server.address')} AND coalesce({V('http.host')}, '') <> '' "
        f"THEN s.scheme || '://' || {V('http.host')} || s.request_target "
        f"WHEN {P('http.server_name')} THEN s.scheme || '://' || {V('http.server_name')} || ':' "
        f"|| coalesce({V('net.host.port')}, '') || s.request_target "
        f"WHEN {P('net.host.name')} THEN s.scheme || '://' || {V('net.host.name')} || ':' "
        f"|| coalesce({V('net.host.port')}, '') || s.request_target "
        f"ELSE '' END"),
}
_HOST_NETLOC = f"regexp_extract({V('http.host')}, '^[^/?#]*')"
# Layer C3: _get_target_and_path_for_http_dependency, _get_target_for_db_dependency, messaging, the HTTP path.
_LAYER_C3 = {
    "http_target": (
        f"coalesce(nullif(CASE "
        f"WHEN {P('server.address')} THEN {V('server.address')} || CASE WHEN {N('server.port')} "
        f"IS DISTINCT FROM s.http_default_port THEN ':' || coalesce({V('server.port')}, 'None') ELSE '' END "
        f"WHEN {P('peer.service')} THEN {V('peer.service')} "
        f"WHEN {P('http.host')} THEN CASE WHEN tk_netloc_port({_HOST_NETLOC}) = s.http_default_port "
        f"THEN tk_netloc_hostname({_HOST_NETLOC}) ELSE {V('http.host')} END "
        f"WHEN coalesce(tk_netloc_port(tk_url_netloc(s.dependency_url)), 0) <> 0 "
        f"AND tk_netloc_port(tk_url_netloc(s.dependency_url)) = s.http_default_port "
        f"THEN coalesce(tk_netloc_hostname(tk_url_netloc(s.dependency_url)), '') "
        f"ELSE tk_url_netloc(s.dependency_url) END, ''), s.peer_target)"),
    "db_server_target": (
        f"CASE WHEN s.peer_target <> '' THEN s.peer_target "
        f"WHEN {T('server.address')} IS NOT NULL THEN {T('server.address')} || CASE WHEN {T('server.port')} IS NOT NULL "
        f"AND {N('server.port')} IS DISTINCT FROM s.db_default_port THEN ':' || {V('server.port')} ELSE '' END "
        f"ELSE '' END"),
    "db_name": f"coalesce({T('db.namespace')}, {T('db.name')})",
    "messaging_target": (f"CASE WHEN s.peer_target <> '' THEN s.peer_target "
                         f"ELSE coalesce({V('messaging.destination')}, {V('messaging.system')}) END"),
    "http_path": "coalesce(nullif(tk_url_path(s.dependency_url), ''), '/')",
}
# Layer C4: a CLIENT span's target before the gen_ai.system fallback: the branch the exporter takes decides it.
_LAYER_C4 = {
    "client_target": (
        "CASE WHEN s.has_az THEN s.peer_target "
        "WHEN s.has_http THEN s.http_target "
        "WHEN s.has_db THEN CASE WHEN s.db_name IS NOT NULL "
        "THEN coalesce(nullif(s.db_server_target, '') || '|', '') || s.db_name "
        "ELSE coalesce(nullif(s.db_server_target, ''), s.db_system) END "
        f"WHEN {P('messaging.system')} THEN s.messaging_target "
        f"WHEN {P('rpc.system')} THEN coalesce(nullif(s.peer_target, ''), {V('rpc.system')}) "
        "ELSE s.peer_target END"),
}


# What each fact is for a span with none of KEYS (the gate passed over it): computed without reading anything.
_NO_KEYS = {"scheme": "NULL", "http_default_port": "0", "db_system": "NULL", "db_default_port": "0",
            "has_http": "FALSE", "http_method": "'None'", "http_status": "0", "has_db": "FALSE", "has_az": "FALSE",
            "request_target": "NULL", "az_source": "NULL", "peer_target": "''", "dependency_url": "''",
            "request_url": "''", "http_target": "''", "db_server_target": "''", "db_name": "NULL",
            "messaging_target": "NULL", "http_path": "'/'", "client_target": "''"}


def _select(columns: dict[str, str]) -> str:
    return ",\n        ".join(f"CASE WHEN s.__j IS NULL THEN {_NO_KEYS[name]} ELSE {expression} END AS {name}"
                               for name, expression in columns.items())


_SERVER = "s.kind IN ('SERVER', 'CONSUMER')"
_HTTP_BRANCH = "NOT s.has_az AND s.has_http"  # the exporter tests az.namespace first, then an HTTP method
_GEN_AI_TRUTHY = "CASE WHEN s.gen_ai_truthy THEN s.gen_ai_system END"
_OPERATION_NAME = f"""CASE
        WHEN s.kind = 'CLIENT' AND {_HTTP_BRANCH} THEN s.http_method || ' ' || s.http_path
        WHEN {_SERVER} AND {_HTTP_BRANCH} THEN CASE
            WHEN {P('http.route')} THEN s.http_method || ' ' || {V('http.route')}
            WHEN s.request_url <> '' THEN s.http_method || ' ' || coalesce(nullif(tk_url_path(s.request_url), ''), '/')
            ELSE s.name END
        ELSE s.name END"""

# Each request/dependency column that needs more than a stored column, over tk_span_facts() (alias s).
SPAN_DERIVED: dict[str, str] = {
    "name": f"left({_OPERATION_NAME}, 1024)",
    "operation_Name": _OPERATION_NAME,
    "success": f"""CASE WHEN {_SERVER} AND {_HTTP_BRANCH}
         THEN s.status_code <> 'ERROR' AND s.http_status <> 0 AND NOT (s.http_status BETWEEN 400 AND 499)
         ELSE s.status_code <> 'ERROR' END""",
    "resultCode": f"""CASE WHEN s.kind IN ('SERVER', 'CONSUMER', 'CLIENT') AND {_HTTP_BRANCH}
         THEN left(CAST(s.http_status AS VARCHAR), 1024) ELSE '0' END""",
    "type": f"""left(CASE
        WHEN s.kind = 'CLIENT' THEN coalesce(
            'GenAI | ' || {_GEN_AI_TRUTHY},  -- a truthy gen_ai.system overrides the mappings below
            CASE WHEN s.has_az THEN {V('az.namespace')} END,
            CASE WHEN s.has_http THEN 'HTTP' END,
            CASE WHEN s.has_db THEN CASE
                WHEN list_position(['mysql', 'postgresql', 'mongodb', 'redis'], s.db_system) IS NOT NULL THEN s.db_system
                WHEN tk_is_sql_db(coalesce(s.db_system, 'None')) THEN 'SQL'
                ELSE s.db_system END END,
            {V('messaging.system')},
            CASE WHEN {P('rpc.system')} THEN 'rpc.system' END,
            'GenAI | ' || s.gen_ai_system,
            'N/A')
        WHEN s.kind = 'PRODUCER' THEN CASE
            WHEN s.has_az THEN 'Queue Message | ' || {V('az.namespace')}
            ELSE 'Queue Message' || coalesce(' | ' || {T('messaging.system')}, '') END
        WHEN {_SERVER} THEN ''
        ELSE coalesce('GenAI | ' || s.gen_ai_system, 'InProc | ' || {V('az.namespace')}, 'InProc')
    END, 1024)""",
    "target": f"""CASE
        WHEN {_SERVER} THEN ''
        WHEN s.kind = 'CLIENT' THEN coalesce(left(nullif(s.client_target, ''), 1024),
                                             CASE WHEN s.has_az THEN s.az_source END,
                                             left({_GEN_AI_TRUTHY}, 1024), '')
        WHEN s.kind = 'PRODUCER' THEN left(coalesce(CASE WHEN s.has_az THEN s.az_source ELSE s.messaging_target END,
                                                    ''), 1024)
        ELSE left(s.peer_target, 1024) END""",
    "data": f"""CASE
        WHEN s.kind <> 'CLIENT' OR s.has_az THEN ''
        WHEN s.has_http THEN left(s.dependency_url, 8192)
        WHEN s.has_db THEN left(coalesce({V('db.query.text')}, {V('db.statement')}, {V('db.operation.name')},
                                         {V('db.operation')}, ''), 8192)
        ELSE '' END""",
    "url": f"CASE WHEN {_SERVER} AND {_HTTP_BRANCH} THEN left(s.request_url, 2048) ELSE '' END",
    "source": f"""CASE
        WHEN NOT ({_SERVER}) THEN ''
        WHEN s.has_az THEN coalesce(left(s.az_source, 1024), '')
        WHEN s.has_http THEN ''
        WHEN {P('messaging.system')} AND {T('messaging.destination')} IS NOT NULL THEN left(
            coalesce(coalesce({T('client.address')}, {T('net.peer.name')}, {T('net.peer.ip')}) || '/', '')
            || {V('messaging.destination')}, 1024)
        ELSE '' END""",
    "session_Id": ("coalesce(CASE WHEN contains(CAST(s.attributes AS VARCHAR), '\"session.id\"') "
                   "THEN tk_attr_str(s.attributes, '$.\"session.id\"') END, '')"),
    "user_Id": ("coalesce(CASE WHEN contains(CAST(s.attributes AS VARCHAR), '\"enduser.pseudo.id\"') "
                "THEN tk_attr_text(s.attributes, '$.\"enduser.pseudo.id\"') END, '')"),
    "user_AuthenticatedId": ("coalesce(CASE WHEN contains(CAST(s.attributes AS VARCHAR), '\"enduser.id\"') "
                             "THEN tk_attr_text(s.attributes, '$.\"enduser.id\"') END, '')"),
}

SPAN_MAPPING_MACROS = f"""
-- urlparse(u).path / .netloc / .port / .hostname, for the URL shapes HTTP instrumentations write.
CREATE OR REPLACE TEMP MACRO tk_url_path(u) AS
    regexp_extract(u, '^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?(?://[^/?#]*)?([^?#]*)', 1);
CREATE OR REPLACE TEMP MACRO tk_url_netloc(u) AS regexp_extract(u, '^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//([^/?#]*)', 1);
CREATE OR REPLACE TEMP MACRO tk_netloc_port(n) AS
    TRY_CAST(nullif(regexp_extract(regexp_replace(n, '^.*@', ''), ':([0-9]+)$', 1), '') AS BIGINT);
CREATE OR REPLACE TEMP MACRO tk_netloc_hostname(n) AS
    nullif(lower(regexp_replace(regexp_replace(regexp_replace(n, '^.*@', ''), ':[0-9]*$', ''), '^\\[|\\]$', '', 'g')), '');
-- _get_default_port_db and _is_sql_db (list_position: DuckDB plans IN and list_contains as a join every query pays)
CREATE OR REPLACE TEMP MACRO tk_db_default_port(d) AS
    CASE d WHEN 'postgresql' THEN 5432 WHEN 'cassandra' THEN 9042 WHEN 'mariadb' THEN 3306 WHEN 'mysql' THEN 3306
           WHEN 'mssql' THEN 1433 WHEN 'microsoft.sql_server' THEN 1433 WHEN 'memcached' THEN 11211
           WHEN 'db2' THEN 50000 WHEN 'ibm.db2' THEN 50000 WHEN 'oracle' THEN 1521 WHEN 'oracle.db' THEN 1521
           WHEN 'h2' THEN 8082 WHEN 'h2database' THEN 8082 WHEN 'derby' THEN 1527 WHEN 'redis' THEN 6379 ELSE 0 END;
CREATE OR REPLACE TEMP MACRO tk_is_sql_db(d) AS
    list_position(['db2', 'ibm.db2', 'derby', 'mariadb', 'mssql', 'microsoft.sql_server', 'oracle', 'oracle.db',
                   'sqlite', 'other_sql', 'hsqldb', 'h2', 'h2database'], d) IS NOT NULL;
CREATE OR REPLACE TEMP MACRO tk_span_facts() AS TABLE
SELECT *, {_select(_LAYER_C4)} FROM (
SELECT *, {_select(_LAYER_C3)} FROM (
SELECT *, {_select(_LAYER_C2)} FROM (
SELECT *, {_select(_LAYER_C1)} FROM (
SELECT *, {_LAYER_B} FROM (
SELECT s.*,
    -- the row's id under the name spans gives it, so `s.rowid` reads the same over spans and over this macro:
    -- tracekit.query.kql computes a few rows' expensive columns late, fetched back by it
    s.rowid AS rowid,
    -- one parse of the attributes for the few spans with such keys: a list of their values (NULL when absent)
    CASE WHEN regexp_matches(CAST(s.attributes AS VARCHAR), '{_GATE}')
         THEN json_extract(s.attributes, {_PATHS}) END AS __j,
    CASE WHEN contains(CAST(s.attributes AS VARCHAR), '"gen_ai.system"')
         THEN json_extract(s.attributes, '$."gen_ai.system"') END AS __gen_ai_system
FROM spans s) s) s) s) s) s;
"""
