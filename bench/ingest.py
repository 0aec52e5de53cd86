"""Ingest benchmark: sustained durable spans/s through the real collector over OTLP/gRPC.

    python bench/ingest.py [--seconds 20] [--in-flight 8] [--decode-workers 0] [--requests 16] [--content]

1. Starts `tracekit collect` in its own process on a fresh store (ephemeral port).
2. Builds distinct 512-span ExportTraceServiceRequests with GenAI-like attributes (~800 bytes/span) and serializes
   them up front, so the load process spends its CPU on sending, not on encoding; each send stamps a counter into
   the trace ids and start times, so every span sent is new (the collector stores a span once and would drop resent
   ones; distinct spans also differ in start time, which its check relies on to stay cheap). With `--content`,
   agents with content recording on: chat spans carry system instructions, ~3 KB of input messages and the output,
   tool spans their arguments and results (~3 KB a span on average), written from varied sentences, tool results and
   numbers (not repeated bytes); the figures then include MB/s.
3. A separate load process sends them over gRPC with several requests in flight for a fixed time, counting spans
   the collector acknowledged.
4. Counts the rows in the store (through the collector's read API): durable spans/s = stored spans / load time.
   Also prints each collector thread's share of a core during the load (named from the collector's status).
5. Samples the collector's RSS throughout, and measures in this process the decode-only ceiling (protobuf parse of the
   same bytes) and the normalize ceiling (parse + Arrow columns), printed as ratios to the durable rate, and the
   time by stage for the same requests (decode, the redaction processor with the default policy, store insert,
   checkpoint), each in microseconds a span and MB/s; the insert and checkpoint for all the requests in one commit
   group (as under load: larger than a row group, so written into the file at commit) and, as `_small`, for one
   commit group per request (a lighter load: through the WAL, then the checkpoint). The store's commit groups
   during the load are printed too: how many, and the share of spans in groups of a row group or more.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

SPANS_PER_REQUEST = 512
SERVICE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# Material for recorded content: what agents with content recording on send (instructions, user turns, tool calls
# and their results, answers). Sentences are combined at random with varied names and numbers, so no two spans
# carry the same bytes.
_INSTRUCTIONS = [
    "You are a travel planning assistant for a corporate travel desk.",
    "Always confirm the traveller's dates, origin and destination before searching.",
    "Prefer direct flights under the company's fare cap unless the traveller asks otherwise.",
    "When a tool fails, explain the failure briefly and offer an alternative.",
    "Never book without an explicit confirmation from the traveller.",
    "Quote prices in the traveller's currency and mention taxes separately.",
    "Keep answers short: three sentences or a compact list.",
    "Hotels must be within walking distance of the meeting venue when one is given.",
    "Respect loyalty programme preferences recorded in the traveller profile.",
    "If the weather forecast shows storms, suggest a flexible fare.",
    "Summarise the itinerary at the end of each planning session.",
    "Use the tools for facts; do not guess schedules or availability.",
]
_CITIES = ["Seattle", "Paris", "Tokyo", "Lisbon", "Nairobi", "Toronto", "Berlin", "Singapore", "Austin", "Oslo",
           "Madrid", "Seoul", "Dublin", "Lima", "Cairo", "Zurich"]
_ASKS = [
    "I need to get from {a} to {b} on {d} for a customer workshop, returning {r}.",
    "Can you find a hotel near the {b} convention centre for {n} nights?",
    "What's the weather going to be like in {b} around {d}? I might need a coat.",
    "My manager approved up to {p} USD for the trip to {b}; what are my options?",
    "Please rebook me: the {a} flight on {d} was cancelled and I still need to be in {b} by noon.",
    "Compare the morning and evening departures from {a} to {b} on {d}.",
    "Is there a train option between {a} and {b} that is cheaper than flying?",
    "Add a rental car in {b} from {d} to {r}, compact is fine.",
    "Send the confirmation to {e} and copy my assistant.",  # what redaction is for: an address in a prompt
]
_ANSWERS = [
    "I found {n} direct options from {a} to {b} on {d}; the cheapest is {p} USD with a {h}:{m:02d} departure.",
    "The forecast for {b} on {d} is {t} degrees with light rain in the afternoon, so a flexible fare is wise.",
    "Hotel {w} is {n} minutes' walk from the venue at {p} USD a night, breakfast included.",
    "Your itinerary: depart {a} {d} {h}:{m:02d}, arrive {b} the same evening, return {r}. Shall I book it?",
    "The evening departure saves {n} hours of waiting but costs {p} USD more than the morning flight.",
]
_HOTELS = ["Harbour View", "Le Petit Jardin", "Sakura Inn", "Alfama Suites", "Savannah Lodge", "Maple Court"]


def _content(rng: random.Random) -> dict[str, str]:
    def fill(template: str) -> str:
        a, b = rng.sample(_CITIES, 2)
        return template.format(a=a, b=b, d=f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                               r=f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                               n=rng.randrange(2, 9), p=rng.randrange(180, 2400), h=rng.randrange(6, 22),
                               m=rng.randrange(0, 60), t=rng.randrange(-5, 34), w=rng.choice(_HOTELS),
                               e=f"{rng.choice(['ann', 'raj', 'li', 'sam'])}.{rng.getrandbits(16):x}@example.com")

    def tool_result() -> str:
        return json.dumps({"results": [
            {"carrier": rng.choice(["AF", "LH", "UA", "JL", "TP", "KQ", "AC"]),
             "flight": f"{rng.randrange(10, 9999)}", "depart": f"{rng.randrange(5, 23):02d}:{rng.randrange(0, 60):02d}",
             "duration_min": rng.randrange(55, 900), "stops": rng.randrange(0, 3), "fare_usd": rng.randrange(90, 3200),
             "seats_left": rng.randrange(1, 40), "cabin": rng.choice(["economy", "premium", "business"])}
            for _ in range(rng.randrange(2, 6))], "currency": "USD", "source": "gds"})

    system = [{"type": "text", "content": " ".join(rng.sample(_INSTRUCTIONS, rng.randrange(6, 11)))}]
    messages: list[dict] = []
    for _ in range(rng.randrange(2, 5)):
        messages.append({"role": "user", "parts": [{"type": "text", "content": fill(rng.choice(_ASKS))}]})
        call_id = f"call_{rng.getrandbits(96):024x}"
        messages.append({"role": "assistant", "parts": [{"type": "tool_call", "id": call_id, "name": "search_flights",
                                                         "arguments": {"origin": rng.choice(_CITIES),
                                                                       "destination": rng.choice(_CITIES),
                                                                       "date": f"2026-{rng.randrange(1, 13):02d}-"
                                                                               f"{rng.randrange(1, 29):02d}"}}]})
        messages.append({"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id,
                                                    "response": tool_result()}]})
    output = [{"role": "assistant", "finish_reason": "stop",
               "parts": [{"type": "text", "content": " ".join(fill(rng.choice(_ANSWERS)) for _ in range(3))}]}]
    return {"system": json.dumps(system), "input": json.dumps(messages), "output": json.dumps(output),
            "tool_result": tool_result() + tool_result()}


def build_request(seed: int, content: bool = False) -> bytes:
    """One ExportTraceServiceRequest of agent-like traffic: invoke_agent > chat / execute_tool spans (with recorded
    message content when `content`)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("service.name", "bench-agents"), ("service.version", "1.4.2"),
                       ("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry")):
        resource_spans.resource.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tracekit.instrumentors.langchain"
    scope_spans.scope.version = "0.1.0"
    now = time.time_ns()
    agents = ["planner", "flight-agent", "hotel-agent", "weather-agent"]
    models = ["gpt-4o", "gpt-4o-mini", "o4-mini"]
    tools = ["search_flights", "get_weather", "book_hotel", "currency_convert"]
    trace_id = rng.randbytes(16)
    root_id = rng.randbytes(8)
    for index in range(SPANS_PER_REQUEST):
        if index % 32 == 0:
            trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        span.span_id = root_id if index % 32 == 0 else rng.randbytes(8)
        if index % 32:
            span.parent_span_id = root_id
        start = now - rng.randrange(10**9, 10**12)
        span.start_time_unix_nano = start
        span.end_time_unix_nano = start + rng.randrange(10**6, 5 * 10**9)
        agent = rng.choice(agents)
        attributes: list[tuple[str, object]]
        kind = index % 3
        if index % 32 == 0:
            span.name, span.kind = f"invoke_agent {agent}", Span.SPAN_KIND_INTERNAL
            attributes = [("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", agent),
                          ("gen_ai.agent.id", f"asst_{rng.getrandbits(64):016x}"),
                          ("gen_ai.conversation.id", f"conv_{rng.getrandbits(48):012x}"),
                          ("gen_ai.provider.name", "openai"), ("gen_ai.system", "openai")]
        elif kind == 1:
            model = rng.choice(models)
            span.name, span.kind = f"chat {model}", Span.SPAN_KIND_CLIENT
            attributes = [("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
                          ("gen_ai.system", "openai"), ("gen_ai.request.model", model),
                          ("gen_ai.response.model", model + "-2024-08-06"),
                          ("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(96):024x}"),
                          ("gen_ai.usage.input_tokens", rng.randrange(50, 4000)),
                          ("gen_ai.usage.output_tokens", rng.randrange(5, 800)),
                          ("gen_ai.request.temperature", 0.2), ("server.address", "api.openai.com"),
                          ("server.port", 443), ("gen_ai.response.finish_reasons", "stop")]
            if content:
                recorded = _content(rng)
                attributes += [("gen_ai.system_instructions", recorded["system"]),
                               ("gen_ai.input.messages", recorded["input"]),
                               ("gen_ai.output.messages", recorded["output"])]
        else:
            tool = rng.choice(tools)
            span.name, span.kind = f"execute_tool {tool}", Span.SPAN_KIND_INTERNAL
            attributes = [("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", tool),
                          ("gen_ai.tool.type", "function"), ("gen_ai.tool.call.id", f"call_{rng.getrandbits(80):020x}"),
                          ("gen_ai.agent.name", agent),
                          ("gen_ai.tool.call.arguments", json.dumps({"city": "Paris", "date": "2026-11-22",
                                                                     "passengers": rng.randrange(1, 5)})),
                          ("gen_ai.tool.call.result", _content(rng)["tool_result"] if content
                           else json.dumps({"ok": True, "items": rng.randrange(0, 9)}))]
            if rng.random() < 0.05:
                span.status.code = Status.STATUS_CODE_ERROR
                span.status.message = "tool failed"
                attributes.append(("error.type", "TimeoutError"))
        attributes.append(("code.function", "run_step"))
        attributes.append(("code.filepath", "/srv/app/agents/orchestrator/steps/run_step.py"))
        attributes.append(("code.lineno", rng.randrange(10, 900)))
        attributes.append(("thread.id", rng.randrange(1, 64)))
        attributes.append(("session.id", f"sess-{rng.getrandbits(64):016x}"))
        attributes.append(("enduser.pseudo.id", f"user-{rng.getrandbits(32):08x}"))
        attributes.append(("deployment.environment", "staging"))
        attributes.append(("app.request.path", "/api/v2/trips/plan?origin=SEA&destination=CDG&adults=2&cabin=economy"))
        for key, value in attributes:
            if isinstance(value, bool):
                any_value = AnyValue(bool_value=value)
            elif isinstance(value, int):
                any_value = AnyValue(int_value=value)
            elif isinstance(value, float):
                any_value = AnyValue(double_value=value)
            else:
                any_value = AnyValue(string_value=str(value))
            span.attributes.append(KeyValue(key=key, value=any_value))
    return request.SerializeToString()


def stamp_plan(payload: bytes) -> tuple[list[bytes], list[int]]:
    """How `stamped` rewrites the serialized request: the bytes between the places it writes (8 bytes of each trace
    id, the two low bytes of each span's start time; random bytes and times occur nowhere else), and their sizes."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = ExportTraceServiceRequest.FromString(payload).resource_spans[0].scope_spans[0].spans
    places = []
    for trace_id in {span.trace_id for span in spans}:
        position = payload.find(trace_id)
        while position >= 0:
            places.append((position, 8))
            position = payload.find(trace_id, position + 16)
    for span in spans:  # start_time_unix_nano: field 7, fixed64 (tag 0x39), little-endian
        places.append((payload.index(b"\x39" + span.start_time_unix_nano.to_bytes(8, "little")) + 1, 2))
    places.sort()
    chunks, end = [], 0
    for offset, size in places:
        chunks.append(payload[end:offset])
        end = offset + size
    chunks.append(payload[end:])
    return chunks, [size for _, size in places]


def stamped(plan: tuple[list[bytes], list[int]], stamp: int) -> bytes:
    """The planned request as a new set of spans: `stamp` in each trace id and in the nanoseconds of each start time
    (under 66 us, and every end time is at least 1 ms later), so neither ids nor start times repeat across sends."""
    chunks, sizes = plan
    prefix = stamp.to_bytes(8, "big")
    pieces = {8: prefix, 2: prefix[6:]}
    parts: list[bytes] = [b""] * (2 * len(sizes) + 1)
    parts[0::2] = chunks
    parts[1::2] = [pieces[size] for size in sizes]
    return b"".join(parts)


def load_process(target: str, payloads: list[bytes], seconds: float, in_flight: int, result_queue) -> None:
    """Send payloads round-robin with `in_flight` concurrent requests for `seconds`; report acknowledged spans.

    Each send stamps a counter into the trace ids and start times, so every span sent is a new span: the collector
    stores a span (trace id, span id) once, and resending the same requests would store nothing new."""
    import grpc

    plans = [stamp_plan(payload) for payload in payloads]
    sends = itertools.count()

    def fresh(index: int) -> bytes:
        return stamped(plans[index], next(sends))

    async def main() -> tuple[int, int, float, float]:
        acknowledged = refused = 0
        deadline = time.perf_counter() + seconds
        async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
            export = channel.unary_unary(SERVICE)

            async def worker(offset: int) -> None:
                nonlocal acknowledged, refused
                index = offset
                while time.perf_counter() < deadline:
                    try:
                        await export(fresh(index % len(payloads)), timeout=30)
                        acknowledged += SPANS_PER_REQUEST
                    except grpc.aio.AioRpcError as error:
                        if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            raise
                        refused += 1
                        await asyncio.sleep(0.05)
                    index += in_flight

            started = time.perf_counter()
            cpu_started = time.process_time()
            await asyncio.gather(*(worker(i) for i in range(in_flight)))
            return acknowledged, refused, time.perf_counter() - started, time.process_time() - cpu_started

    result_queue.put(asyncio.run(main()))


def _cpu_seconds(process: "psutil.Process") -> float:
    """User + system CPU of a process and its children so far."""
    times = process.cpu_times()
    return times.user + times.system + sum(c.cpu_times().user + c.cpu_times().system
                                           for c in process.children(recursive=True))


def thread_cpu(process: "psutil.Process") -> dict[int, float]:
    """User + system CPU seconds of each thread of `process` so far, by OS thread id."""
    return {thread.id: thread.user_time + thread.system_time for thread in process.threads()}


def thread_names(state: dict) -> dict[int, str]:
    """The collector's Python threads by OS thread id, from its read API's status."""
    import urllib.request

    request = urllib.request.Request(f"{state['read_api']}/v1/status",
                                     headers={"Authorization": f"Bearer {state['token']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {int(tid): name for tid, name in json.load(response).get("threads", {}).items()}


def print_thread_cpu(before: dict[int, float], after: dict[int, float], names: dict[int, str], elapsed: float) -> None:
    """Each busy thread's share of a core during the load: which part of the collector is the bottleneck."""
    shares = sorted(((after[tid] - before.get(tid, 0.0)) / elapsed, tid) for tid in after)
    print("collector threads (share of one core during the load; unnamed threads are DuckDB's and gRPC's own):")
    for share, tid in reversed(shares):
        if share >= 0.02:
            print(f"  {names.get(tid, f'(unnamed, thread id {tid})'):<32} {100 * share:5.1f} %")


def start_collector(db: Path, decode_workers: int, checkpoint_rows: int | None = None,
                    python: str = sys.executable) -> tuple[subprocess.Popen, dict]:
    """`tracekit collect` of `python`'s tracekit on `db`, and its state file once it listens."""
    state_path = db.with_name(db.name + ".collector.json")
    env = dict(os.environ)
    if checkpoint_rows is not None:
        env["TRACEKIT_CHECKPOINT_ROWS"] = str(checkpoint_rows)
    process = subprocess.Popen(
        [python, "-m", "tracekit.cli", "collect", "--db", str(db), "--grpc", "127.0.0.1:0", "--http", "off",
         "--decode-workers", str(decode_workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    for _ in range(1200):  # up to a minute: a collector starts slowly on a loaded machine
        if state_path.exists():
            return process, json.loads(state_path.read_text())
        if process.poll() is not None:
            raise SystemExit(f"collector failed: {process.stderr.read().decode()}")
        time.sleep(0.05)
    raise SystemExit("collector did not start")


def count_spans(state: dict) -> tuple[int, int, float]:
    """Spans stored, commit groups, and the share of the spans whose commit group filled at least one row group of
    the store (written into the file at commit rather than through the WAL; tracekit/store/database.py)."""
    from tracekit.store import database
    from tracekit.store.reader import RemoteReader

    row_group = getattr(database, "ROW_GROUP_ROWS", 122_880)  # a checkout from before small row groups
    reader = RemoteReader(state["read_api"], state["token"], "bench")
    row = reader.sql(f"SELECT sum(n) AS n, count(*) AS groups, sum(n) FILTER (WHERE n >= {row_group}) AS whole "
                     "FROM (SELECT count(*) AS n FROM spans GROUP BY ingest_seq)").to_pylist()[0]
    return int(row["n"] or 0), int(row["groups"] or 0), (row["whole"] or 0) / max(row["n"] or 0, 1)


def ceilings(payloads: list[bytes]) -> tuple[float, float, float | None]:
    """Spans/s for protobuf parse alone, parse + Python normalize, parse + compiled normalize (None if not built)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tracekit.collector.processors import normalize

    def rate(work) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for payload in payloads:
                work(payload)
            runs.append(len(payloads) * SPANS_PER_REQUEST / (time.perf_counter() - started))
        return statistics.median(runs)

    parse = rate(lambda p: ExportTraceServiceRequest.FromString(p))
    python = rate(lambda p: normalize._decode_traces_python(ExportTraceServiceRequest.FromString(p)))
    compiled = None
    if normalize._fastdecode is not None:
        compiled = rate(lambda p: normalize.decode_traces_payload(p, ExportTraceServiceRequest.FromString(p)))
    return parse, python, compiled


def stages(payloads: list[bytes], attributes_compression: str | None = None) -> dict[str, float]:
    """Microseconds a span for each stage the collector runs on these requests, in this process: decode (parse +
    Arrow columns), the redaction processor with the default policy and cost in CPU time of this thread (steadier
    than wall time on a shared machine), the store insert and the checkpoint in CPU time of the whole process (DuckDB
    works on its own threads too), on a store opened as the collector opens it, for one commit group of all the
    requests and (`_small`) one commit group per request; and the store's bytes a span after the checkpoint.
    `attributes_compression`: store spans.attributes with that DuckDB compression instead of the schema's."""
    from tracekit.collector.exporters.store_writer import next_sequence, write_batches
    from tracekit.collector.processors.cost import CostProcessor
    from tracekit.collector.processors.decode import decode_payload
    from tracekit.collector.processors.redaction import BatchRedactor
    from tracekit.redaction import RedactionPolicy
    from tracekit.store.database import COLLECTOR_CHECKPOINT_THRESHOLD, open_store

    spans = len(payloads) * SPANS_PER_REQUEST
    timings: dict[str, list[float]] = {"decode": [], "redaction": [], "cost": [], "insert": [], "checkpoint": [],
                                       "insert_small": [], "checkpoint_small": []}
    sizes = []
    redactor, pricer = BatchRedactor(RedactionPolicy.default()), CostProcessor()
    # Outside the timing: compiling the screen, loading prices (and pandas, which pyarrow loads on first use).
    pricer.process("traces", redactor.process("traces", decode_payload("traces", payloads[0])))
    for _ in range(3):
        started = time.thread_time()
        batches = [decode_payload("traces", payload) for payload in payloads]
        timings["decode"].append(time.thread_time() - started)
        for stage, processor in (("redaction", redactor), ("cost", pricer)):
            started = time.thread_time()
            for batch in batches:
                processor.process("traces", batch)
            timings[stage].append(time.thread_time() - started)
        # One commit group of all the requests (as under load), then one commit group per request (a light load).
        for suffix, groups in (("", [batches]), ("_small", [[batch] for batch in batches])):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "stages.duckdb"
                con = open_store(path, checkpoint_threshold=COLLECTOR_CHECKPOINT_THRESHOLD)
                if attributes_compression:
                    _compress_attributes(con, attributes_compression)
                started = time.process_time()
                for group in groups:
                    con.execute("BEGIN TRANSACTION")
                    write_batches(con, group, next_sequence(con), set())
                    con.execute("COMMIT")
                timings["insert" + suffix].append(time.process_time() - started)
                started = time.process_time()
                con.execute("CHECKPOINT")
                timings["checkpoint" + suffix].append(time.process_time() - started)
                con.close()
                if not suffix:
                    sizes.append(path.stat().st_size / spans)
    figures = {stage: 1e6 * statistics.median(values) / spans for stage, values in timings.items()}
    return {**figures, "store_bytes": statistics.median(sizes)}


def _compress_attributes(con, method: str) -> None:
    """The spans table created again with its attributes column stored with DuckDB compression `method` (`auto`:
    DuckDB's own choice, dictionary + FSST for this JSON; the store's schema says ZSTD)."""
    from tracekit.store.schema import SPAN_COLUMNS_DDL

    using = "" if method == "auto" else f" USING COMPRESSION {method}"
    columns = SPAN_COLUMNS_DDL.replace("attributes JSON NOT NULL,", f"attributes JSON NOT NULL{using},")
    named = {line.split()[0] for line in SPAN_COLUMNS_DDL.strip().splitlines()}
    extra = [f"{name} {kind}" for name, kind in con.execute(  # what later schema steps added (cost_usd)
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'spans' "
        "AND database_name = current_database() ORDER BY column_index"
    ).fetchall() if name not in named]
    con.execute("DROP TABLE spans")
    con.execute(f"CREATE TABLE spans ({', '.join([columns, *extra])})")


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Run the load against a collector of this interpreter's tracekit and return the figures."""
    payloads = [build_request(seed, args.content) for seed in range(args.requests)]
    size = sum(map(len, payloads)) / len(payloads) / SPANS_PER_REQUEST
    print(f"payload: {len(payloads)} requests x {SPANS_PER_REQUEST} spans, {size:.0f} bytes/span"
          f"{' (recorded content)' if args.content else ''}")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        collector, state = start_collector(db, args.decode_workers, args.checkpoint_rows)
        peak_rss = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_rss
            proc = psutil.Process(collector.pid)
            while not stop.is_set():
                try:
                    rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    break
                peak_rss = max(peak_rss, rss)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        load = multiprocessing.get_context("spawn").Process(
            target=load_process, args=(state["grpc"], payloads, args.seconds, args.in_flight, results))
        collector_proc = psutil.Process(collector.pid)
        cpu_before = _cpu_seconds(collector_proc)
        threads_before = thread_cpu(collector_proc)
        load.start()
        acknowledged, refused, elapsed, load_cpu = results.get()
        collector_cpu = _cpu_seconds(collector_proc) - cpu_before
        threads_after = thread_cpu(collector_proc)
        load.join()
        stored, groups, whole_share = count_spans(state)
        names = thread_names(state)  # after the load: the decode thread starts with the first request
        stop.set()
        collector.terminate()
        collector.wait(timeout=60)

    durable_rate = stored / elapsed
    parse_rate, normalize_rate, compiled_rate = ceilings(payloads)
    print(f"load: {elapsed:.1f}s, {args.in_flight} requests in flight, decode workers {args.decode_workers}")
    print(f"acknowledged spans      {acknowledged:>12,}   (refused requests, retried: {refused})")
    print(f"stored spans            {stored:>12,}   (must be >= acknowledged: {stored >= acknowledged})")
    print(f"durable spans/s         {durable_rate:>12,.0f}   ({durable_rate * size / 1e6:,.1f} MB/s of OTLP)")
    print(f"commit groups           {groups:>12,}   ({stored / max(groups, 1):,.0f} spans each on average; "
          f"{100 * whole_share:.0f} % of the spans in groups of a row group or more)")
    print(f"peak collector RSS      {peak_rss / 2**20:>12,.0f} MiB")
    # CPU per span is steadier than wall-clock rates when other work shares the cores.
    collector_us, load_us = 1e6 * collector_cpu / stored, 1e6 * load_cpu / max(acknowledged, 1)
    cores = os.cpu_count() or 1
    print(f"collector CPU           {collector_us:>12.1f} us/span   (load process {load_us:.1f} us/span; "
          f"CPU-bound ceiling on {cores} cores: {cores * 1e6 / (collector_us + load_us):,.0f} spans/s)")
    print(f"load average            {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print_thread_cpu(threads_before, threads_after, names, elapsed)
    print(f"decode-only ceiling     {parse_rate:>12,.0f} spans/s   durable/decode = {durable_rate / parse_rate:.3f}")
    print(f"normalize ceiling       {normalize_rate:>12,.0f} spans/s   durable/normalize = "
          f"{durable_rate / normalize_rate:.3f}   (Python, {1e6 / normalize_rate:.1f} us/span)")
    if compiled_rate is not None:
        print(f"normalize ceiling (compiled) {compiled_rate:>7,.0f} spans/s   durable/compiled = "
              f"{durable_rate / compiled_rate:.3f}   ({1e6 / compiled_rate:.1f} us/span, "
              f"{compiled_rate / normalize_rate:.1f}x the Python path)")
    by_stage = stages(payloads, args.attributes_compression)
    store_bytes = by_stage.pop("store_bytes")
    print(f"time by stage (decode, redaction, cost: CPU of one thread; insert and checkpoint: CPU of the process, "
          f"for one commit group of {args.requests * SPANS_PER_REQUEST:,} spans, and _small for commit groups of "
          f"{SPANS_PER_REQUEST}; median of 3):")
    for stage, micros in by_stage.items():
        print(f"  {stage:<12} {micros:>8.2f} us/span   {size / micros:>8,.0f} MB/s")
    print(f"  store file   {store_bytes:>8,.0f} bytes/span after the checkpoint"
          f"{f' (attributes: {args.attributes_compression})' if args.attributes_compression else ''}")
    return {"durable_spans_per_s": durable_rate, "collector_us_per_span": collector_us,
            "peak_collector_rss_mib": peak_rss / 2**20, "bytes_per_span": size,
            **{f"{stage}_us_per_span": micros for stage, micros in by_stage.items()}, "store_bytes_per_span": store_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--requests", type=int, default=16, help="distinct pre-serialized requests")
    parser.add_argument("--decode-workers", type=int, default=0)
    parser.add_argument("--checkpoint-rows", type=int, default=None,
                        help="span rows between the collector's checkpoints (default: the collector's)")
    parser.add_argument("--content", action="store_true",
                        help="spans with recorded message content (~3 KB a span), as agents with content on send")
    parser.add_argument("--attributes-compression", metavar="METHOD",
                        help="time the insert and checkpoint stages with spans.attributes stored with this DuckDB "
                             "compression (auto for DuckDB's own choice, uncompressed, ...) instead of the "
                             "schema's (ZSTD)")
    parser.add_argument("--against", metavar="PYTHON",
                        help="also run the same measurement with another interpreter whose tracekit is a baseline "
                             "checkout (e.g. main's), in this run, and print the ratios")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # figures for --against
    args = parser.parse_args()

    figures = measure(args)
    if args.json:
        print("FIGURES " + json.dumps(figures))
    if args.against:
        command = [args.against, __file__, "--json", "--seconds", str(args.seconds), "--in-flight",
                   str(args.in_flight), "--requests", str(args.requests), "--decode-workers", str(args.decode_workers)]
        if args.content:
            command.append("--content")
        if args.checkpoint_rows is not None:
            command += ["--checkpoint-rows", str(args.checkpoint_rows)]
        if args.attributes_compression:
            command += ["--attributes-compression", args.attributes_compression]
        print(f"\n--- baseline: {args.against} ---", flush=True)
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode:
            raise SystemExit(f"the baseline run failed:\n{finished.stdout}{finished.stderr}")
        output = finished.stdout
        print(output.split("FIGURES ")[0], end="")
        baseline = json.loads(output.split("FIGURES ")[1])
        print("\n--- this checkout / baseline ---")
        for name, value in figures.items():
            if name in baseline and baseline[name]:
                print(f"  {name:<28} {value:>10,.2f} / {baseline[name]:>10,.2f} = {value / baseline[name]:.2f}x")


if __name__ == "__main__":
    main()
