"""Warehouse access: the reader/writer protocol and its DuckDB and PostgreSQL implementations.

Table and column names that come from configuration are validated and quoted here; no SQL is
built from unchecked text.
"""
