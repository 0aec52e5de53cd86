"""Exporters: where processed batches go — the store (store_writer.py), and from the store onwards (forwarders.py)."""
