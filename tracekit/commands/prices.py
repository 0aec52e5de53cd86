"""`tracekit prices`: the price data model calls are costed with (genai-prices), and refreshing it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from tracekit.commands._options import add_db_argument

HELP = "the LLM prices model calls are costed with: show one, refresh them (genai-prices)"

DESCRIPTION = """\
Every model call is priced from its tokens when it is stored (the `cost_usd` column of spans), with genai-prices,
Pydantic's maintained database of LLM API prices: providers, model aliases and dated versions, cache-read and
cache-write prices, price changes over time. A model the database does not know costs NULL ("—"), never 0.

  tracekit prices show MODEL [--provider P]   the price used for a model, and what 1M input/output tokens cost
  tracekit prices update [--reprice]          fetch the newest price data (needs network); without network the
                                              data packaged with genai-prices stays in use. --reprice: then reprice
  tracekit prices reprice                     price the spans already stored again with the prices in use (spans
                                              stored before prices existed have none); the collector must not run

exit status: 0 done, 1 the update could not be fetched (the packaged prices stay in use), 2 unknown model or
the store cannot be opened.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `prices` command."""
    parser = subparsers.add_parser("prices", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the price of one model")
    show.add_argument("model", help="a model name as spans carry it (gpt-4o, claude-sonnet-4-5, ...)")
    show.add_argument("--provider", default=None,
                      help="gen_ai.provider.name (openai, azure.ai.openai, anthropic, ...); default: any")
    add_db_argument(show)
    show.set_defaults(handler=run_show)
    update = actions.add_parser("update", help="fetch the newest price data")
    update.add_argument("--url", default=None, help="where to fetch from (default: genai-prices' published data)")
    update.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the download (default 15)")
    update.add_argument("--reprice", action="store_true", help="price the spans already in the store again")
    add_db_argument(update)
    update.set_defaults(handler=run_update)
    reprice = actions.add_parser("reprice", help="price the spans already in the store with the prices in use")
    add_db_argument(reprice)
    reprice.set_defaults(handler=lambda args: _reprice(args.db))


def run_show(args: argparse.Namespace) -> int:
    from tracekit import cost, semconv

    attributes = {semconv.GEN_AI_REQUEST_MODEL: args.model, semconv.GEN_AI_USAGE_INPUT_TOKENS: 1_000_000,
                  semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1_000_000}
    if args.provider:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = args.provider
    price = cost.price_call(attributes, operation=semconv.OP_CHAT)
    if price is None:
        print(f"tracekit prices: no price known for {args.model!r}"
              + (f" from {args.provider!r}" if args.provider else ""), file=sys.stderr)
        return 2
    print(f"{price.provider} {price.model}: {price.rates}")
    print(f"1M input + 1M output tokens: ${price.input_usd:,.4f} + ${price.output_usd:,.4f}")
    print(f"price data: {_data_source()}")
    return 0


def _data_source() -> str:
    import genai_prices

    from tracekit import cost

    path = cost.prices_file()
    if path.is_file():
        return f"{path} (tracekit prices update)"
    return f"packaged with genai-prices {genai_prices.__version__}"


def run_update(args: argparse.Namespace) -> int:
    from genai_prices.types import _providers_from_raw  # genai-prices' own loader for its published data
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    from tracekit import cost

    url = args.url or DEFAULT_UPDATE_URL
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 (https or a given URL)
            payload = response.read()
        providers = _providers_from_raw(json.loads(payload))
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        print(f"tracekit prices update: could not fetch {url}: {reason}. No network? The prices in use stay as "
              f"they were: {_data_source()}.", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"tracekit prices update: {url} did not return genai-prices data ({str(error)[:200]}); "
              f"the prices in use stay as they were: {_data_source()}.", file=sys.stderr)
        return 1
    path = cost.prices_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(payload)
    os.replace(temporary, path)
    cost.reload_prices()
    print(f"updated: {len(providers)} providers, {sum(len(p.models) for p in providers)} models -> {path}")
    if args.reprice:
        return _reprice(args.db)
    return 0


def _reprice(db: str | None) -> int:
    from tracekit.errors import StoreError
    from tracekit.store.database import open_store
    from tracekit.store.paths import resolve_db_path

    from tracekit import cost

    path = resolve_db_path(db)
    try:
        con = open_store(path)
    except StoreError as error:
        print(f"tracekit prices update --reprice: {error}", file=sys.stderr)
        return 2
    try:
        rows = con.execute(
            "SELECT trace_id, span_id, attributes, operation_name, provider_name, request_model, response_model, "
            "start_time_ns FROM spans WHERE coalesce(input_tokens, 0) + coalesce(output_tokens, 0) > 0").fetchall()
        updates = []
        for trace_id, span_id, attributes, operation, provider, request_model, response_model, start in rows:
            price = cost.price_call(json.loads(attributes), operation=operation, provider=provider,
                                    request_model=request_model, response_model=response_model,
                                    start_time_ns=start)
            updates.append((None if price is None else price.total_usd, trace_id, span_id))
        con.execute("BEGIN TRANSACTION")
        con.executemany("UPDATE spans SET cost_usd = ? WHERE trace_id = ? AND span_id = ?", updates)
        con.execute("COMMIT")
    finally:
        con.close()
    print(f"repriced {sum(1 for u in updates if u[0] is not None)} of {len(updates)} spans with tokens in {path}")
    return 0
