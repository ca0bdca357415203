"""Captures: the batched queue, records, HAR, sinks (files, SQLite), exporters, conversion."""
