"""Composition root: settings, local services, ClickHouse client factory, CLI, HTTP app."""
