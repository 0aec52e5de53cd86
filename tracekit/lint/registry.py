"""The GenAI conventions' definitions the linter checks against, read from published sources, not typed in here.

Two sources, merged:
- the `opentelemetry-semantic-conventions` package's `_incubating` gen_ai attributes module (installed with
  tracekit): every key defined up to the move of GenAI to its own repository, and the deprecations with their
  replacement, parsed from the module's own docstrings ("Deprecated: Replaced by `gen_ai.provider.name`...").
  Since the move, that package marks every gen_ai key "Moved to ..."; that is not a deprecation of the key.
- genai_conventions.json beside this module: what open-telemetry/semantic-conventions-genai added or renamed after
  the move, and the per-operation requirement levels and span kinds of its spans.yaml (source, release and licence
  are stated in the file).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tracekit import semconv

_DATA = Path(__file__).with_name("genai_conventions.json")
_PACKAGE_MODULE = "opentelemetry.semconv._incubating.attributes.gen_ai_attributes"
_KEY = re.compile(r'^[A-Z0-9_]+: Final = "(gen_ai\.[a-z0-9_.]+)"\n"""\n(.*?)"""', re.S | re.M)
_REPLACED = re.compile(r"Deprecated: Replaced by `([a-z0-9_.]+)`")
_REMOVED = re.compile(r"Deprecated: (Removed|Obsoleted)")

# What tracekit's instrumentors emit on purpose beyond the conventions (tracekit/semconv.py says why for each):
# the Azure-compatible gen_ai.system beside gen_ai.provider.name, and two keys of its own. Known, so not findings.
TRACEKIT_EXTENSIONS = frozenset({semconv.GEN_AI_TASK_NAME, semconv.GEN_AI_TRANSFER_SOURCE_NAME})
# Operation names outside the OpenTelemetry list that the conventions allow as custom values and tracekit knows:
# Microsoft Foundry's multi-agent operations (docs/conventions.md maps them to OpenTelemetry's).
KNOWN_CUSTOM_OPERATIONS = frozenset({semconv.OP_EXECUTE_TASK, semconv.OP_AGENT_TO_AGENT, semconv.OP_AGENT_STATE,
                                     semconv.OP_AGENT_PLANNING, semconv.OP_AGENT_ORCHESTRATION})


@dataclass(frozen=True)
class OperationRules:
    kinds: tuple[str, ...]
    required: tuple[str, ...]
    conditionally_required: tuple[str, ...]
    recommended: tuple[str, ...]


@dataclass(frozen=True)
class Conventions:
    attributes: frozenset[str]
    templates: tuple[str, ...]
    deprecated: dict[str, str | None]          # key -> replacement (None: removed without one)
    operations: dict[str, OperationRules]
    content: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""
    release: str = ""
    package_version: str = ""

    def known(self, key: str) -> bool:
        return key in self.attributes or key.startswith(self.templates) or key in TRACEKIT_EXTENSIONS


def _package_definitions() -> tuple[set[str], dict[str, str | None], str]:
    module = importlib.import_module(_PACKAGE_MODULE)
    source = inspect.getsource(module)
    keys: set[str] = set()
    deprecated: dict[str, str | None] = {}
    for key, doc in _KEY.findall(source):
        keys.add(key)
        replaced = _REPLACED.search(doc)
        if replaced:
            deprecated[key] = replaced.group(1)
        elif _REMOVED.search(doc):
            deprecated[key] = None
    from importlib.metadata import version

    return keys, deprecated, version("opentelemetry-semantic-conventions")


@functools.cache
def conventions() -> Conventions:
    data = json.loads(_DATA.read_text())
    keys, deprecated, package_version = _package_definitions()
    keys |= set(data["attributes"])
    deprecated.update(data["deprecated"])
    operations: dict[str, OperationRules] = {}
    for name, raw in data["operations"].items():
        raw = data["operations"][raw["same_as"]] if "same_as" in raw else raw
        operations[name] = OperationRules(tuple(raw["kind"]), tuple(raw.get("required", ())),
                                          tuple(raw.get("conditionally_required", ())),
                                          tuple(raw.get("recommended", ())))
    content = {name: tuple(values) for name, values in data["content"].items()}
    return Conventions(attributes=frozenset(keys), templates=tuple(data["attribute_templates"]),
                       deprecated=deprecated, operations=operations, content=content, source=data["source"],
                       release=data["release"], package_version=package_version)
