"""Ingest steps: decode, validate, normalize OTLP requests into Arrow batches for the store writer."""
