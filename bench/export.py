"""Export benchmark: spans/s from a store to Application Insights' protocol and to an OTLP collector.

    python bench/export.py [--spans 20000] [--batch-size N] [--only otlp|azure] [--protocol grpc]

1. Builds a store of agent-like spans (invoke_agent > chat / execute_tool / chat, ~14 attributes each, no events)
   with the real SDK and the collector's normalizer.
2. Azure: starts the fake ingestion server (tests/export/fake_ingestion.py, the real /v2.1/track protocol) in its
   own process and runs `run_export` (store -> pages of rows -> rebuilt SDK spans -> limits -> envelopes built by
   EnvelopeBuilder and checked against the exporter per shape -> the exporter's own client -> per-item accounting ->
   cursor) against
   it, in wall time and CPU time. Baseline, same process and server: the bare exporter's `export()` on the same
   spans prebuilt in memory, in batches of the same size. Pacing is the exporter's own 10,000 envelopes/s. Then the
   path's stages in CPU time, with the exporter's own `_span_to_envelope` beside the builder.
3. OTLP stages, in this process, in CPU time (robust on a shared machine): reading a page of rows from the store,
   encoding it to protobuf (otlp_encode), sending the encoded requests over gRPC to `tracekit collect` (wall time
   there is the collector's ingest rate); and, as the baseline on the same pages, the SDK path: ReadableSpans
   rebuilt from the rows and the SDK's OTLP encoder.
4. OTLP end to end: `tracekit collect` in its own process on a fresh store; `run_export` with OtlpSender (store ->
   rows -> redaction hook -> protobuf -> gRPC or HTTP -> cursor) against it, in wall time and in CPU time of this
   process; baseline in the same run: the SDK path (rebuilt ReadableSpans through the SDK's OTLPSpanExporter) to the
   same collector. The collector stores each span once, so its store must end with exactly the selection.
Targets: >= 5,000 spans/s to the Azure protocol, >= 20,000 spans/s over OTLP.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake ingestion server and store builder live with the tests

from tracekit.export.azure import QUIET_ENV  # noqa: E402
from tracekit.export.limits import AZURE_PAGE_SIZE  # noqa: E402
from tracekit.export.otlp import PAGE_SIZE as OTLP_PAGE_SIZE  # noqa: E402  (the CLI's default for `export otlp`)

os.environ.update(QUIET_ENV)


def build_store(db: Path, spans: int) -> list:
    """A store of `spans` agent spans; returns the SDK spans too (for the baselines)."""
    from tests.export.helpers import RESOURCE, write_store
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench.agents", "1.0")
    common = {"gen_ai.provider.name": "openai", "gen_ai.conversation.id": "conv-1", "server.address": "api.openai.com",
              "gen_ai.agent.id": "asst_123", "deployment": "eastus2"}
    for turn in range(spans // 4):
        with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.INTERNAL, attributes={
                **common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                "gen_ai.agent.description": "plans trips", "turn": turn}):
            for name, extra in (("chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}),
                                ("execute_tool get_weather", {"gen_ai.operation.name": "execute_tool",
                                                              "gen_ai.tool.name": "get_weather",
                                                              "gen_ai.tool.call.arguments": '{"city": "Paris"}'}),
                                ("chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})):
                kind = SpanKind.CLIENT if name.startswith("chat") else SpanKind.INTERNAL
                with tracer.start_as_current_span(name, kind=kind, attributes={
                        **common, **extra, "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 97,
                        "gen_ai.response.id": f"resp_{turn}", "gen_ai.response.finish_reasons": ["stop"]}):
                    pass
    finished = list(memory.get_finished_spans())
    write_store(db, finished, chunk=2000)
    return finished


def _serve_fake(port_queue: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    from tests.export.fake_ingestion import FakeIngestion

    with FakeIngestion(check_stale=False) as fake:
        port_queue.put(fake.connection_string)
        stop.wait()


def bench_azure(db: Path, prebuilt: list, batch_size: int) -> None:
    """End to end to the fake ingestion server, in wall and CPU time, against the bare exporter on prebuilt spans;
    then the path's stages in CPU time."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    from tracekit.export.azure import AzureMonitorSender
    from tracekit.export.cursor import SidecarCursorStore, sidecar_path
    from tracekit.export.runner import run_export
    from tracekit.export.selection import Selection, StoreSource
    from tracekit.store.reader import LocalReader

    queue: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve_fake, args=(queue, stop), daemon=True)
    server.start()
    connection_string = queue.get(timeout=30)
    spans = len(prebuilt)
    try:
        # Baseline: the bare exporter on prebuilt spans, same batch size, same server, its own rate limiter.
        exporter = AzureMonitorTraceExporter(connection_string=connection_string, disable_offline_storage=True)
        base_wall, base_cpu, _ = _timed(lambda: [exporter.export(prebuilt[start:start + batch_size])
                                                 for start in range(0, spans, batch_size)])
        exporter.shutdown()
        # The prebuilt SDK spans (~100k objects) would make every garbage collection of our run slower than in a
        # real `tracekit export` process, which never holds them: drop them first (the list is the caller's).
        prebuilt.clear()
        gc.collect()

        reader = LocalReader.open_file(db)
        sender = AzureMonitorSender(connection_string)
        wall, cpu, summary = _timed(lambda: run_export(
            StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(db)), page_size=batch_size,
            restart=True))
        assert summary.complete and summary.delivered == spans, summary.to_json()
        builder = sender.envelope_builder
        print("azure monitor protocol, end to end (store -> rows -> SDK spans -> limits -> envelopes -> fake "
              "ingestion):")
        print(f"  tracekit export : {spans / wall:>7,.0f} spans/s wall, {spans / cpu:>7,.0f} spans per CPU-second "
              f"(target >= 5,000); fast envelopes for {builder.fast:,} spans, the exporter's for {builder.converted:,}")
        print(f"  bare exporter   : {spans / base_wall:>7,.0f} spans/s wall, {spans / base_cpu:>7,.0f} spans per "
              "CPU-second (AzureMonitorTraceExporter.export on prebuilt spans)")
        print(f"  ratio           : {base_wall / wall:.1f}x wall, {base_cpu / cpu:.1f}x CPU")
        sender.close()
        # What `tracekit export azure-monitor` does by default: the built-in redaction policy (pages screened first).
        from tracekit.redaction import RedactionPolicy
        from tracekit.redaction.columns import TableRedactor

        sender = AzureMonitorSender(connection_string)
        red_wall, red_cpu, summary = _timed(lambda: run_export(
            StoreSource(reader, Selection(), redactor=TableRedactor(RedactionPolicy.default())), sender,
            SidecarCursorStore(sidecar_path(db)), page_size=batch_size, restart=True))
        assert summary.complete and summary.delivered == spans, summary.to_json()
        sender.close()
        print(f"  with the default redaction policy: {spans / red_wall:,.0f} spans/s wall, "
              f"{spans / red_cpu:,.0f} spans per CPU-second")
        bench_azure_stages(reader, connection_string, batch_size)
        reader.close()
    finally:
        stop.set()
        server.join(10)


def bench_azure_stages(reader, connection_string: str, batch_size: int) -> None:
    """The Azure path's stages in CPU time of this process, on the same pages: read rows, rebuild SDK spans,
    limits, envelopes (ours, then the exporter's `_span_to_envelope` as the baseline), JSON, and posting to the
    fake."""
    from tracekit.export.azure import AzureMonitorSender
    from tracekit.export.envelopes import EnvelopeBuilder, wire_json
    from tracekit.export.limits import AzureShaper, LimitReport
    from tracekit.export.rebuild import ResourceCache, rebuild_spans
    from tracekit.export.rows import RowReader
    from tracekit.export.selection import Selection, StoreSource

    source = StoreSource(reader, Selection())
    keys = source.list_keys()
    n = len(keys)
    chunks = [keys[start:start + batch_size] for start in range(0, n, batch_size)]
    rows = RowReader(source)
    _, read_cpu, pages = _timed(lambda: [rows.fetch(chunk, with_main_agents=True) for chunk in chunks])
    resources = ResourceCache()
    _, rebuild_cpu, rebuilt = _timed(lambda: [rebuild_spans(page, resources) for page in pages])
    shaper, report = AzureShaper(), LimitReport()
    _, shape_cpu, shaped = _timed(lambda: [
        [shaper.span(span, report, page.main_agents.get((span.trace_id_hex, span.span_id_hex))) for span in spans]
        for page, spans in zip(pages, rebuilt)])
    sender = AzureMonitorSender(connection_string)
    exporter = sender.traces
    builder = EnvelopeBuilder(exporter)
    _, build_cpu, bodies = _timed(lambda: [[e for span in page for e in builder.envelopes(span)] for page in shaped])
    _, exporter_cpu, _ = _timed(lambda: [[exporter._span_to_envelope(span) for span in page] for page in shaped])
    _, json_cpu, texts = _timed(lambda: [wire_json(body) for body in bodies])
    send_wall, send_cpu, _ = _timed(lambda: [exporter._transmit(body) for body in bodies])
    sender.close()
    print(f"stages, azure path (CPU time of this process; {n:,} spans, pages of {batch_size:,}):")
    print(f"  read a page of rows (+ main agents) {read_cpu / n * 1e6:>4.1f} us/span")
    print(f"  rebuild SDK spans from the rows  {rebuild_cpu / n * 1e6:>7.1f} us/span")
    print(f"  limits (order, trim, attributes) {shape_cpu / n * 1e6:>7.1f} us/span")
    print(f"  envelopes, fast builder          {build_cpu / n * 1e6:>7.1f} us/span  ({builder.fast:,} fast, "
          f"{builder.converted:,} by the exporter)")
    print(f"  envelopes, exporter (baseline)   {exporter_cpu / n * 1e6:>7.1f} us/span  "
          f"({exporter_cpu / build_cpu:.0f}x the fast builder)")
    print(f"  JSON body (the client's encoder) {json_cpu / n * 1e6:>7.1f} us/span  "
          f"({sum(map(len, texts)) / n:,.0f} bytes/span)")
    print(f"  post to the fake (JSON + HTTP)   {send_cpu / n * 1e6:>7.1f} us/span  (wall {n / send_wall:,.0f} spans/s)")
    total = read_cpu + rebuild_cpu + shape_cpu + build_cpu + send_cpu
    print(f"  all of the above but the baseline {total / n * 1e6:>6.1f} us/span = {n / total:,.0f} spans per CPU-second")


def _start_collector(target: Path) -> tuple[subprocess.Popen, str]:
    from tracekit.store.reader import read_state

    collector = subprocess.Popen([sys.executable, "-m", "tracekit.cli", "collect", "--db", str(target),
                                  "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (read_state(target) or {}).get("grpc"):
        if time.monotonic() > deadline or collector.poll() is not None:
            collector.kill()
            raise SystemExit("the collector did not start")
        time.sleep(0.1)
    return collector, read_state(target)


def _timed(work) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def bench_otlp(db: Path, spans: int, batch_size: int, workdir: Path, protocols: list[str]) -> None:
    """End to end to `tracekit collect` in its own process: the SDK path (baseline) and the direct path."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    from tracekit.export.cursor import SidecarCursorStore
    from tracekit.export.otlp import OtlpSender
    from tracekit.export.rebuild import ResourceCache, rebuild_spans
    from tracekit.export.rows import RowReader
    from tracekit.export.runner import run_export
    from tracekit.export.selection import Selection, StoreSource
    from tracekit.store.reader import LocalReader, open_reader

    target = workdir / "target.duckdb"
    collector, state = _start_collector(target)
    try:
        for protocol in protocols:
            endpoint = f"http://{state['grpc']}" if protocol == "grpc" else state["http"]
            reader = LocalReader.open_file(db)
            source = StoreSource(reader, Selection())
            keys = source.list_keys()

            def sdk_path() -> int:
                # Baseline: the SDK path: SDK spans rebuilt from the same rows, the SDK's exporter.
                exporter = (OTLPSpanExporter(endpoint=state["grpc"], insecure=True) if protocol == "grpc" else
                            HttpSpanExporter(endpoint=state["http"] + "/v1/traces"))
                rows, resources = RowReader(source), ResourceCache()
                for start in range(0, len(keys), batch_size):
                    exporter.export(rebuild_spans(rows.fetch(keys[start:start + batch_size], with_logs=False),
                                                  resources))
                exporter.shutdown()
                return len(keys)

            base_wall, base_cpu, _ = _timed(sdk_path)
            sender = OtlpSender(endpoint, protocol=protocol)
            cursors = SidecarCursorStore(workdir / f"cursor-{protocol.replace('/', '-')}.json")
            wall, cpu, summary = _timed(lambda: run_export(source, sender, cursors, page_size=batch_size,
                                                           restart=True))
            assert summary.complete and summary.spans_done == spans, summary.to_json()
            sender.close()
            reader.close()
            print(f"otlp/{protocol} to a tracekit collector, end to end (store -> rows -> protobuf -> collector):")
            print(f"  direct encoding: {spans / wall:>9,.0f} spans/s wall, {spans / cpu:>9,.0f} spans per CPU-second "
                  f"of the exporting process (target >= 20,000)")
            print(f"  SDK path       : {spans / base_wall:>9,.0f} spans/s wall, {spans / base_cpu:>9,.0f} spans per "
                  f"CPU-second (rebuild ReadableSpans + OTLPSpanExporter)")
            print(f"  ratio          : {base_wall / wall:.1f}x wall, {base_cpu / cpu:.1f}x CPU")
            if protocol == "grpc":
                # What `tracekit export otlp` does by default: the built-in redaction policy on every value.
                from tracekit.redaction import RedactionPolicy
                from tracekit.redaction.columns import TableRedactor

                reader = LocalReader.open_file(db)
                source = StoreSource(reader, Selection(), redactor=TableRedactor(RedactionPolicy.default()))
                sender = OtlpSender(endpoint, protocol=protocol)
                wall, cpu, summary = _timed(lambda: run_export(
                    source, sender, SidecarCursorStore(workdir / "cursor-redacted.json"), page_size=batch_size,
                    restart=True))
                assert summary.complete and summary.spans_done == spans, summary.to_json()
                sender.close()
                reader.close()
                print(f"  with the default redaction policy: {spans / wall:,.0f} spans/s wall, "
                      f"{spans / cpu:,.0f} spans per CPU-second")
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline:
            stored = open_reader(target).sql("SELECT count(*) FROM spans").column(0)[0].as_py()
            if stored >= spans:
                break
            time.sleep(0.2)
        # Every run sent the same spans; the collector keeps each once (collector/exporters/dedup.py).
        assert stored == spans, f"{stored} rows stored, expected {spans}"
    finally:
        collector.terminate()
        collector.wait(30)


def bench_stages(db: Path, batch_size: int, workdir: Path) -> None:
    """The direct path's stages in this process, in CPU time: read rows, encode protobuf, send; and the SDK
    path's read + rebuild and encoder on the same pages (the baseline)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tracekit.export.otlp import GrpcTransport
    from tracekit.export.otlp_encode import OtlpEncoder
    from tracekit.export.rebuild import ResourceCache, rebuild_spans
    from tracekit.export.rows import RowReader
    from tracekit.export.selection import Selection, StoreSource
    from tracekit.store.reader import LocalReader

    reader = LocalReader.open_file(db)
    source = StoreSource(reader, Selection())
    keys = source.list_keys()
    chunks = [keys[start:start + batch_size] for start in range(0, len(keys), batch_size)]
    rows = RowReader(source)
    _, read_cpu, pages = _timed(lambda: [rows.fetch(chunk) for chunk in chunks])
    encoder = OtlpEncoder()
    _, encode_cpu, bodies = _timed(lambda: [encoder.traces(page).SerializeToString() for page in pages])
    resources = ResourceCache()
    _, rebuild_cpu, sdk_pages = _timed(lambda: [rebuild_spans(rows.fetch(chunk, with_logs=False), resources)
                                                for chunk in chunks])
    _, sdk_encode_cpu, _ = _timed(lambda: [encode_spans(spans).SerializeToString() for spans in sdk_pages])
    reader.close()
    collector, state = _start_collector(workdir / "stages.duckdb")
    try:
        transport = GrpcTransport(state["grpc"], secure=False, headers={}, timeout=60, gzip_=False)
        send_wall, send_cpu, _ = _timed(lambda: [transport.export("traces", body) for body in bodies])
        transport.close()
    finally:
        collector.terminate()
        collector.wait(30)
    n = len(keys)
    print(f"stages, direct path (spans per CPU-second of this process; {n:,} spans, pages of {batch_size:,}):")
    print(f"  read rows from the store      {n / read_cpu:>10,.0f}")
    print(f"  encode protobuf               {n / encode_cpu:>10,.0f}   ({sum(map(len, bodies)) / n:,.0f} bytes/span)")
    print(f"  send over gRPC                {n / send_cpu:>10,.0f}   (wall {n / send_wall:,.0f}/s: collector ingest)")
    print(f"  all three                     {n / (read_cpu + encode_cpu + send_cpu):>10,.0f}")
    print("stages, SDK path (baseline, same pages):")
    print(f"  read + rebuild ReadableSpans  {n / rebuild_cpu:>10,.0f}")
    print(f"  SDK OTLP encoder              {n / sdk_encode_cpu:>10,.0f}")
    print(f"  ratio, read+encode            {(rebuild_cpu + sdk_encode_cpu) / (read_cpu + encode_cpu):>10.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="spans per request (default: the CLI's, 1,000 for Azure and 2,000 for OTLP)")
    parser.add_argument("--only", choices=("otlp", "azure"), help="run one destination's benchmark")
    parser.add_argument("--protocol", action="append", choices=("grpc", "http/protobuf"),
                        help="OTLP protocols to run (default: both)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = workdir / "source.duckdb"
        started = time.perf_counter()
        prebuilt = build_store(db, args.spans)
        print(f"store: {len(prebuilt):,} spans built in {time.perf_counter() - started:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f}")
        spans = len(prebuilt)
        if args.only != "otlp":
            bench_azure(db, prebuilt, args.batch_size or AZURE_PAGE_SIZE)
        # The prebuilt SDK spans (~1M objects) would make every garbage collection of the OTLP runs slower than in
        # a real `tracekit export` process: drop them first.
        del prebuilt
        gc.collect()
        if args.only != "azure":
            bench_stages(db, args.batch_size or OTLP_PAGE_SIZE, workdir)
            bench_otlp(db, spans, args.batch_size or OTLP_PAGE_SIZE, workdir, args.protocol or ["grpc", "http/protobuf"])

if __name__ == "__main__":
    main()
