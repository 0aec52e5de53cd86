"""What a model call cost, from its tokens, priced with genai-prices (Pydantic's maintained LLM price database).

Token semantics are the GenAI conventions': `gen_ai.usage.input_tokens` is the whole input, cached tokens included
(`gen_ai.usage.cache_read.input_tokens` and `gen_ai.usage.cache_write.input_tokens` are subsets of it), and
`gen_ai.usage.output_tokens` the whole output, reasoning included (`gen_ai.usage.reasoning.output_tokens` is a
subset). genai-prices' `Usage` counts the same way, so the numbers pass through unchanged. One exception: a sender
that copied Anthropic's own counts (input without cache) reports cache subsets larger than the total; the cache
counts are then added to the input, as the conventions' Anthropic refinement says an instrumentation must.

Which spans are priced: model calls (chat, text_completion, generate_content, embeddings) and spans with tokens and
a model but no operation name. Agent and workflow spans are not: their usage, when present, aggregates the model
calls under them and pricing it too would count those twice.

The price is looked up by provider and response model, else request model, at the call's start time (the database
keeps dated prices). A model or provider the database does not know costs None (NULL in the store, "—" on screen),
never 0. A provider that is named but has no counterpart in the database (a local server, for instance) is None too:
matching its model names against other providers would bill a local model as if it were a hosted one.
"""

from __future__ import annotations

import functools
import json
import os
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from tracekit import semconv

# gen_ai.provider.name (and the older gen_ai.system values) -> genai-prices provider id.
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "azure.ai.foundry": "azure",
    "microsoft.foundry": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral",
    "moonshot_ai": "moonshotai",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
}

PRICED_OPERATIONS = semconv.INFERENCE_OPERATIONS | {semconv.OP_EMBEDDINGS}

# Cache and reasoning token counts under every name the read side knows (the conventions' own first), so a call is
# priced from the same counts the replay shows.
CACHE_READ_KEYS = semconv.CACHE_READ_TOKEN_KEYS
CACHE_WRITE_KEYS = semconv.CACHE_WRITE_TOKEN_KEYS
REASONING_KEYS = semconv.REASONING_TOKEN_KEYS

PRICES_FILE_ENV = "TRACEKIT_PRICES_FILE"


@dataclass(frozen=True)
class Price:
    """One priced call: the total in USD and what it was computed from (for span details)."""

    total_usd: float
    input_usd: float
    output_usd: float
    provider: str          # genai-prices' provider id
    model: str             # genai-prices' model id (the reference may have been an alias or a dated version)
    rates: str             # the price used, as genai-prices states it ("$2.5/input MTok, $10/output MTok, ...")
    tokens: Mapping[str, int]


def prices_file() -> Path:
    """Where `tracekit prices update` keeps newer price data than the packaged snapshot."""
    override = os.environ.get(PRICES_FILE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs  # here: the TUI imports this module before its first paint, which prices nothing

    return Path(platformdirs.user_data_dir("tracekit", appauthor=False)) / "genai-prices.json"


@functools.cache
def _load_prices() -> None:
    """Use the data `tracekit prices update` saved, if any; else genai-prices' packaged snapshot stays in use."""
    from genai_prices import data_snapshot
    from genai_prices.types import _providers_from_raw  # the loader genai-prices' own updater uses

    path = prices_file()
    if not path.is_file():
        return
    try:
        providers = _providers_from_raw(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return  # a damaged file: the packaged prices are still right, if older
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers, from_auto_update=True))


def reload_prices() -> None:
    """Forget the loaded price data (after an update wrote a new file)."""
    from genai_prices import data_snapshot

    data_snapshot.set_custom_snapshot(None)
    _load_prices.cache_clear()
    _rates.cache_clear()
    _calc_exactly.cache_clear()


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _first_int(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = _int(attributes.get(key))
        if value is not None:
            return value
    return None


def usage_tokens(attributes: Mapping[str, Any]) -> dict[str, int]:
    """The token counts of one span in genai-prices' `Usage` terms (input totals include the cache, as priced)."""
    tokens = {
        "input_tokens": _first_int(attributes, (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_PROMPT_TOKENS)),
        "output_tokens": _first_int(attributes,
                                    (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_COMPLETION_TOKENS)),
        "cache_read_tokens": _first_int(attributes, CACHE_READ_KEYS),
        "cache_write_tokens": _first_int(attributes, CACHE_WRITE_KEYS),
        "output_reasoning_tokens": _first_int(attributes, REASONING_KEYS),
    }
    counted = {key: value for key, value in tokens.items() if value is not None and value >= 0}
    cached = counted.get("cache_read_tokens", 0) + counted.get("cache_write_tokens", 0)
    if cached > counted.get("input_tokens", 0):
        counted["input_tokens"] = counted.get("input_tokens", 0) + cached  # Anthropic's own counting, see above
    if counted.get("output_reasoning_tokens", 0) > counted.get("output_tokens", 0):
        counted.pop("output_reasoning_tokens")  # not a subset: the output total is what is billed
    return counted


def is_priced_operation(operation: str | None) -> bool:
    return operation in PRICED_OPERATIONS if operation else True


def price_call(attributes: Mapping[str, Any], *, operation: str | None = None, provider: str | None = None,
               request_model: str | None = None, response_model: str | None = None,
               start_time_ns: int | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None) -> Price | None:
    """The price of one span's model call, or None when it is not a model call or its price is not known.

    The typed values default to the attributes' own (the store passes its typed columns, which already resolved
    the older names); `input_tokens`/`output_tokens` count when the attributes give none.
    """
    operation = operation or attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if not is_priced_operation(operation):
        return None
    tokens = usage_tokens(attributes)
    if input_tokens is not None and "input_tokens" not in tokens:  # the store's typed columns
        tokens["input_tokens"] = input_tokens
    if output_tokens is not None and "output_tokens" not in tokens:
        tokens["output_tokens"] = output_tokens
    if not tokens.get("input_tokens") and not tokens.get("output_tokens"):
        return None
    provider = provider or attributes.get(semconv.GEN_AI_PROVIDER_NAME) or attributes.get(semconv.GEN_AI_SYSTEM)
    models = [m for m in (response_model or attributes.get(semconv.GEN_AI_RESPONSE_MODEL),
                          request_model or attributes.get(semconv.GEN_AI_REQUEST_MODEL)) if isinstance(m, str) and m]
    if not models:
        return None
    priced, provider_id = _provider_id(provider)
    if not priced:
        return None
    day = _day(start_time_ns)
    key = tuple(sorted(tokens.items()))
    for model in dict.fromkeys(models):  # response model first; the request model may be an Azure deployment name
        price = _calc(provider_id, model, key, day)
        if price is not None:
            return price
    return None


def _provider_id(provider: Any) -> tuple[bool, str | None]:
    """(whether a call of `provider` can be priced, its genai-prices id: None when no provider is named)."""
    if not provider:
        return True, None
    provider_id = PROVIDER_IDS.get(str(provider).lower())
    return provider_id is not None, provider_id


def call_rates(*, operation: str | None, provider: str | None, request_model: str | None,
               response_model: str | None, start_time_ns: int) -> tuple[float, float, float, float] | None | bool:
    """How `price_call` prices the calls of one operation, provider and model pair on the day of `start_time_ns`
    that report only input and output tokens (typed columns, no cache or reasoning counts), for pricing many at once.

    A tuple (input USD per input token, input USD per output token, output USD per input token, output USD per output
    token) when the price is linear: a call's price is then `price_call`'s own arithmetic over them, in its order,
    `(a * input + b * output) + (c * input + d * output)`. None when such calls are never priced. True when the price
    is not linear (tiers): each call goes through `price_call`.
    """
    if not is_priced_operation(operation):
        return None
    models = [m for m in (response_model, request_model) if isinstance(m, str) and m]
    priced, provider_id = _provider_id(provider)
    if not priced:
        return None
    day = _day(start_time_ns)
    for model in dict.fromkeys(models):  # the order price_call tries them in
        rates = _rates(provider_id, model, day)
        if rates is None:
            continue
        if not rates.linear:
            return True
        inputs, outputs = rates.input_per_token, rates.output_per_token
        return (inputs["input_tokens"], inputs["output_tokens"], outputs["input_tokens"], outputs["output_tokens"])
    return None


def _day(start_time_ns: int | None) -> str:
    seconds = start_time_ns / 1e9 if start_time_ns else datetime.now(timezone.utc).timestamp()
    return _day_text(int(seconds // 86400))


@functools.lru_cache(maxsize=64)
def _day_text(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * 86400, timezone.utc).strftime("%Y-%m-%d")


# genai-prices computes a price with Decimal arithmetic over its unit registry: far too slow to run per span at
# ingest. But a model's price on a given day is, unless tiered, linear in the token counts. So for each (provider,
# model, day) the price is looked up once, its rate per token of each kind derived from a few calls to genai-prices
# itself and checked at a probe point; every span is then a handful of multiplications. Tiered or otherwise
# non-linear prices (and counts of other kinds) go through genai-prices for every call, remembered for repeats.
_KINDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "output_reasoning_tokens")
_MTOK = 1_000_000
# Each kind's basis usage: cached and reasoning tokens are subsets of the input and output totals.
_BASIS = {"input_tokens": {"input_tokens": _MTOK},
          "cache_read_tokens": {"input_tokens": _MTOK, "cache_read_tokens": _MTOK},
          "cache_write_tokens": {"input_tokens": _MTOK, "cache_write_tokens": _MTOK},
          "output_tokens": {"output_tokens": _MTOK},
          "output_reasoning_tokens": {"output_tokens": _MTOK, "output_reasoning_tokens": _MTOK}}
_SUBSET_OF = {"cache_read_tokens": "input_tokens", "cache_write_tokens": "input_tokens",
              "output_reasoning_tokens": "output_tokens"}
_PROBE = {"input_tokens": 123_457, "cache_read_tokens": 23_456, "cache_write_tokens": 3_456, "output_tokens": 7_891,
          "output_reasoning_tokens": 1_234}


@dataclass(frozen=True, eq=False)  # one object per (provider, model, day), from _rates' cache: hashed by identity
class _Rates:
    """A model's price on a day: USD per token of each kind, split into input and output, when linear."""

    provider: str
    model: str
    text: str
    model_price: Any
    linear: bool
    input_per_token: dict[str, float]
    output_per_token: dict[str, float]


def _calc(provider_id: str | None, model: str, tokens: tuple[tuple[str, int], ...], day: str) -> Price | None:
    rates = _rates(provider_id, model, day)
    if rates is None:
        return None
    counts = dict(tokens)
    if not rates.linear or set(counts) - set(_KINDS):
        return _calc_exactly(rates, tokens)
    input_usd = sum(rates.input_per_token[kind] * count for kind, count in counts.items())
    output_usd = sum(rates.output_per_token[kind] * count for kind, count in counts.items())
    return Price(total_usd=input_usd + output_usd, input_usd=input_usd, output_usd=output_usd,
                 provider=rates.provider, model=rates.model, rates=rates.text, tokens=counts)


@functools.lru_cache(maxsize=4096)
def _calc_exactly(rates: "_Rates", tokens: tuple[tuple[str, int], ...]) -> Price | None:
    from genai_prices import Usage

    try:
        result = rates.model_price.calc_price(Usage(**dict(tokens)))
    except (LookupError, ValueError):  # counts the price cannot take
        return None
    return Price(total_usd=float(result["total_price"]), input_usd=float(result["input_price"]),
                 output_usd=float(result["output_price"]), provider=rates.provider, model=rates.model,
                 rates=rates.text, tokens=dict(tokens))


@functools.lru_cache(maxsize=1024)
def _rates(provider_id: str | None, model: str, day: str) -> _Rates | None:
    """The price genai-prices applies to `model` on `day`, with its per-token rates when it is linear."""
    from genai_prices import Usage, calc_price

    _load_prices()
    when = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc, hour=12)
    try:
        found = calc_price(Usage(input_tokens=_MTOK, output_tokens=_MTOK), model_ref=model, provider_id=provider_id,
                           genai_request_timestamp=when)
    except (LookupError, ValueError):  # unknown model or provider
        return None
    model_price = found.model_price

    def priced(usage: dict[str, int]) -> tuple[float, float] | None:
        try:
            result = model_price.calc_price(Usage(**usage))
        except (LookupError, ValueError):
            return None
        return float(result["input_price"]), float(result["output_price"])

    basis = {kind: priced(usage) for kind, usage in _BASIS.items()}
    linear = all(value is not None for value in basis.values())
    input_rate: dict[str, float] = {}
    output_rate: dict[str, float] = {}
    if linear:
        for kind, (input_usd, output_usd) in basis.items():
            whole = basis.get(_SUBSET_OF.get(kind, ""), (0.0, 0.0))
            input_rate[kind] = (input_usd - (whole[0] if kind in _SUBSET_OF else 0.0)) / _MTOK
            output_rate[kind] = (output_usd - (whole[1] if kind in _SUBSET_OF else 0.0)) / _MTOK
        exact = priced(_PROBE)
        derived = (sum(input_rate[k] * v for k, v in _PROBE.items()), sum(output_rate[k] * v for k, v in _PROBE.items()))
        linear = exact is not None and all(abs(a - b) <= 1e-12 + 1e-9 * abs(a) for a, b in zip(exact, derived))
    return _Rates(provider=found.provider.id, model=found.model.id, text=str(model_price), model_price=model_price,
                  linear=linear, input_per_token=input_rate, output_per_token=output_rate)


def has_cost_column(reader: Any) -> bool:
    """Whether the store prices model calls: a store of schema v3+ has a `cost_usd` column on spans (an older one
    opened read-only has not). Asked once per reader: a reader's store keeps its schema while it is open (a collector
    migrates before it serves reads, and a store opened read-only is not migrated), and the TUI asks on every page."""
    known = _COST_COLUMN.get(reader)
    if known is None:
        known = _COST_COLUMN[reader] = "cost_usd" in reader.rows("SELECT * FROM spans LIMIT 0").columns
    return known


_COST_COLUMN: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def format_cost(value: float | None) -> str:
    """A cost for people: "—" when unknown, more digits for fractions of a cent."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if value < 0.0001:
        return f"${value:.6f}"
    if value < 0.01:
        return f"${value:.5f}"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"
