"""An application held inside a tool call: tracekit.configure(), one finished trace, then an agent whose tool waits
for a file. Run as `python app_in_flight.py ENDPOINT INSIDE_FILE GATE_FILE` by tests/live."""

import sys
import time
from pathlib import Path

import tracekit

endpoint, inside, gate = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
telemetry = tracekit.configure("live-app", endpoint=endpoint, metrics=False)

with tracekit.agent("warmup"):
    pass

with tracekit.agent("researcher", conversation_id="conv-live"):
    with tracekit.tool("lookup"):
        pass
    with tracekit.tool("wait_for_approval"):
        inside.write_text("inside")
        while not gate.exists():
            time.sleep(0.02)

telemetry.shutdown()
