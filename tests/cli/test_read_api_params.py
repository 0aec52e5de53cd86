"""Commands with a time range (`tracekit query --since`, `dashboards show`) through a running collector's read API:
they used to crash with "datetime is not JSON serializable" whenever a collector ran, which is the README's setup."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.conversation import scenarios
from tracekit.cli import main
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.query.kql import run_kql
from tracekit.store.reader import LocalReader, open_reader


def test_since_through_the_read_api_matches_the_file(tmp_path: Path, capsys) -> None:
    db = tmp_path / "traces.duckdb"
    now = dt.datetime.fromtimestamp(scenarios.BASE_NS / 1e9 + 3600, dt.timezone.utc)
    query = "spans | summarize n = count()"
    with Collector(CollectorSettings(db_path=db, grpc="127.0.0.1:0", http=None)).running() as collector:
        scenarios.record(collector.grpc_endpoint, scenarios.response_chain, scenarios.v137_shape)
        remote = open_reader(db)
        assert type(remote).__name__ == "RemoteReader"
        through_api = [run_kql(remote, query, since=dt.timedelta(hours=hours), now=now).column("n")[0].as_py()
                       for hours in (0.5, 2)]
        assert main(["query", "--db", str(db), "--since", "1h", "--format", "csv", query]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "n"
        assert main(["dashboards", "show", "agents", "--db", str(db)]) == 0
    local = LocalReader.open_file(db)
    try:
        on_file = [run_kql(local, query, since=dt.timedelta(hours=hours), now=now).column("n")[0].as_py()
                   for hours in (0.5, 2)]
    finally:
        local.close()
    assert through_api == on_file
    assert on_file[0] == 0 and on_file[1] > 0, on_file   # the bound applies, and the data is there
