"""ClickHouse side: migrations, row mapping, writers and read queries."""
