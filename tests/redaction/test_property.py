"""Property: for OTLP requests with secrets planted anywhere (every column, every nesting level, all three signals)
sent to a real collector, nothing planted reaches the store, the OTLP/JSON export, or what the real Azure Monitor
exporter sends to a local ingestion endpoint.

Each generated plan goes to two collectors: one with the default policy (its store must be clean) and one with
redaction off, from which the exports are then made with the default export policy (so the exports' own redaction
is what is tested there, not the collector's). Bounded: eight plans, a few seconds of sending.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.export.fake_ingestion import FakeIngestion
from tests.redaction.planted import KEY_PLACES, SECRET_KEYS, SECRETS, TEXT_PLACES, Plan, found, post, requests, store_text
from tracekit.cli import main
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings

_ONE_LINE = {"span.trace_state", "span.link_trace_state", "span.attr_key"}

_text_secret = st.tuples(st.sampled_from(TEXT_PLACES), st.sampled_from(sorted(SECRETS))).filter(
    lambda pair: not (pair[0] in _ONE_LINE and pair[1] == "private_key"))
_keyed_secret = st.tuples(st.sampled_from(KEY_PLACES), st.sampled_from(SECRET_KEYS))
_wrapping = st.sampled_from(["{}", "note {} end", "{}\n", "key={};", "(\"{}\")", "[{}]", "<{}>"])


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    rng = random.Random(draw(st.integers(0, 2**32)))
    plan = Plan()
    for place, name in draw(st.lists(_text_secret, min_size=1, max_size=6)):
        text, needle = SECRETS[name](rng)
        plan.texts.append((place, draw(_wrapping).format(text)))
        plan.needles.append(needle)
    for place, key in draw(st.lists(_keyed_secret, max_size=4)):
        value = "v" + "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(18))
        plan.keyed.append((place, key, value))
        plan.needles.append(value)
    return plan


def _settings(tmp_path: Path, name: str, **options) -> CollectorSettings:
    return CollectorSettings(db_path=tmp_path / f"{name}.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0", **options)


def test_nothing_planted_is_stored_or_exported(tmp_path: Path) -> None:
    needles: list[str] = []
    with Collector(_settings(tmp_path, "masked")).running() as masked, \
            Collector(_settings(tmp_path, "open", redaction="off")).running() as open_:

        @settings(max_examples=8, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(plan=plans())
        def each_plan_is_masked_before_storage(plan: Plan) -> None:
            for request in requests(plan):
                post(masked.http_endpoint, request)
                post(open_.http_endpoint, request)
            assert found(plan.needles, store_text(masked.reader())) == []
            # The same requests unmasked: every planted value was delivered and stored somewhere.
            assert found(plan.needles, store_text(open_.reader())) == plan.needles
            needles.extend(plan.needles)

        each_plan_is_masked_before_storage()
        assert len(needles) >= 8

        out = tmp_path / "export.jsonl"
        assert main(["export", "otlp-json", "--db", str(open_.settings.db_path), "-o", str(out),
                     "--no-progress"]) == 0
        assert found(needles, out.read_text()) == []
        with FakeIngestion() as fake:
            assert main(["export", "azure-monitor", "--db", str(open_.settings.db_path), "--connection-string",
                         fake.connection_string, "--no-progress"]) == 0
            sent = json.dumps(fake.telemetry())
        assert found(needles, sent) == [] and sent.count("baseData") >= 8
