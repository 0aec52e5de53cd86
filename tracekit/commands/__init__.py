"""One module per `tracekit` subcommand. Each defines `register(subparsers)`; tracekit.cli discovers them."""
