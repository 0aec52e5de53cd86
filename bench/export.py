"""Export benchmark: spans/s from a store to Application Insights' protocol and to an OTLP collector.

    python bench/export.py [--spans 20000] [--batch-size 500]

1. Builds a store of agent-like spans (invoke_agent > chat / execute_tool / chat, ~14 attributes each, no events)
   with the real SDK and the collector's normalizer.
2. Azure: starts the fake ingestion server (tests/export/fake_ingestion.py, the real /v2.1/track protocol) in its
   own process and runs `run_export` (store -> rebuilt spans -> limits -> the real AzureMonitorTraceExporter ->
   per-item accounting -> cursor) against it. Baseline, same process and server: the bare exporter's `export()` on
   the same spans prebuilt in memory, in batches of the same size. Pacing is the exporter's own 10,000 envelopes/s.
3. OTLP: starts `tracekit collect` in its own process on a fresh store and runs `run_export` with the real
   OTLPSpanExporter (gRPC) against it, then checks the rows arrived. Baseline: the bare OTLPSpanExporter exporting the
   same prebuilt spans.
4. Stages, in this process: reading + rebuilding spans from the store, and the SDK's OTLP encoder alone, which
   bound the OTLP figure from above.
Targets: >= 5,000 spans/s to the Azure protocol, >= 20,000 spans/s over OTLP.
"""

from __future__ import annotations

import argparse
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


def bench_azure(db: Path, prebuilt: list, batch_size: int) -> tuple[float, float]:
    from tracekit.export.azure import AzureMonitorSender
    from tracekit.export.cursor import SidecarCursorStore, sidecar_path
    from tracekit.export.limits import AzureShaper
    from tracekit.export.runner import run_export
    from tracekit.export.selection import Selection, StoreSource
    from tracekit.store.reader import LocalReader

    queue: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve_fake, args=(queue, stop), daemon=True)
    server.start()
    connection_string = queue.get(timeout=30)
    try:
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

        # Baseline: the bare exporter on prebuilt spans, same batch size, same server, its own rate limiter.
        exporter = AzureMonitorTraceExporter(connection_string=connection_string, disable_offline_storage=True)
        started = time.perf_counter()
        for start in range(0, len(prebuilt), batch_size):
            exporter.export(prebuilt[start:start + batch_size])
        baseline = len(prebuilt) / (time.perf_counter() - started)
        exporter.shutdown()

        reader = LocalReader.open_file(db)
        sender = AzureMonitorSender(connection_string)
        started = time.perf_counter()
        summary = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(db)),
                             shaper=AzureShaper(), page_size=batch_size, restart=True, show_progress=False)
        ours = summary.spans_done / (time.perf_counter() - started)
        assert summary.complete and summary.delivered == len(prebuilt), summary.to_json()
        sender.close()
        reader.close()
    finally:
        stop.set()
        server.join(10)
    return ours, baseline


def bench_otlp(db: Path, prebuilt: list, batch_size: int, workdir: Path) -> tuple[float, float]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    from tracekit.export.cursor import SidecarCursorStore, sidecar_path
    from tracekit.export.otlp import OtlpSender
    from tracekit.export.runner import run_export
    from tracekit.export.selection import Selection, StoreSource
    from tracekit.store.reader import LocalReader, open_reader, read_state

    target = workdir / "target.duckdb"
    collector = subprocess.Popen([sys.executable, "-m", "tracekit.cli", "collect", "--db", str(target),
                                  "--grpc", "127.0.0.1:0", "--http", "off"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (read_state(target) or {}).get("grpc"):
            if time.monotonic() > deadline or collector.poll() is not None:
                raise SystemExit("the collector did not start")
            time.sleep(0.1)
        endpoint = read_state(target)["grpc"]
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        started = time.perf_counter()
        for start in range(0, len(prebuilt), batch_size):
            exporter.export(prebuilt[start:start + batch_size])
        baseline = len(prebuilt) / (time.perf_counter() - started)
        exporter.shutdown()

        reader = LocalReader.open_file(db)
        sender = OtlpSender(f"http://{endpoint}", protocol="grpc")
        started = time.perf_counter()
        summary = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(db)),
                             page_size=batch_size, restart=True, show_progress=False)
        ours = summary.spans_done / (time.perf_counter() - started)
        assert summary.complete, summary.to_json()
        sender.close()
        reader.close()
        stored = open_reader(target).sql("SELECT count(*) FROM spans").column(0)[0].as_py()
        assert stored == 2 * len(prebuilt), f"{stored} rows stored, expected {2 * len(prebuilt)}"
    finally:
        collector.terminate()
        collector.wait(30)
    return ours, baseline


def bench_stages(db: Path, prebuilt: list, batch_size: int) -> tuple[float, float]:
    """In-process ceilings: reading + rebuilding spans from the store, and the SDK's OTLP protobuf encoder."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tracekit.export.selection import Selection, StoreSource
    from tracekit.store.reader import LocalReader

    reader = LocalReader.open_file(db)
    source = StoreSource(reader, Selection())
    keys = source.list_keys()
    started = time.perf_counter()
    for start in range(0, len(keys), batch_size):
        source.fetch(keys[start:start + batch_size])
    read_rate = len(keys) / (time.perf_counter() - started)
    reader.close()
    started = time.perf_counter()
    for start in range(0, len(prebuilt), batch_size):
        encode_spans(prebuilt[start:start + batch_size]).SerializeToString()
    encode_rate = len(prebuilt) / (time.perf_counter() - started)
    return read_rate, encode_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500, help="Azure batch size (OTLP uses 4x)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = workdir / "source.duckdb"
        started = time.perf_counter()
        prebuilt = build_store(db, args.spans)
        print(f"store: {len(prebuilt):,} spans built in {time.perf_counter() - started:.1f} s")
        read_rate, encode_rate = bench_stages(db, prebuilt, args.batch_size * 4)
        print(f"stages (in process, no network): read + rebuild from the store {read_rate:,.0f} spans/s; "
              f"SDK OTLP encoder {encode_rate:,.0f} spans/s")
        ours, baseline = bench_azure(db, prebuilt, args.batch_size)
        print(f"azure monitor protocol: {ours:,.0f} spans/s end to end (target >= 5,000); bare exporter on "
              f"prebuilt spans {baseline:,.0f} spans/s; ratio {ours / baseline:.2f}")
        ours, baseline = bench_otlp(db, prebuilt, args.batch_size * 4, workdir)
        print(f"otlp/grpc to a tracekit collector: {ours:,.0f} spans/s end to end (target >= 20,000); bare "
              f"OTLPSpanExporter on prebuilt spans {baseline:,.0f} spans/s; ratio {ours / baseline:.2f}")


if __name__ == "__main__":
    main()
