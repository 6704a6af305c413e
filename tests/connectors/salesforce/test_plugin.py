"""The plugin as the runtime sees it: one connector, schemas generated from the specs, secrets flagged."""

from __future__ import annotations

from importlib.metadata import entry_points

import connectors.salesforce as package
from connectors.salesforce.plugin import splice_connectors
from runtime.sandbox import load_sandbox


def test_registered_under_the_entry_point() -> None:
    """``splice.connectors`` names this plugin module."""
    names = {ep.name: ep.value for ep in entry_points(group="splice.connectors")}
    assert names["salesforce"] == "connectors.salesforce.plugin"


def test_vocabulary_and_schemas() -> None:
    """Every operation and source has a closed parameter schema; secrets are marked and static."""
    (connector,) = splice_connectors()
    assert connector.name == "salesforce"
    sandbox = load_sandbox(connector)
    assert sandbox is not None and sandbox.emulator is not None
    assert [op.name for op in connector.operations] == [
        "query", "get", "create", "update", "upsert", "delete", "collections", "bulk-query"]
    assert [s.name for s in connector.sources] == ["changes", "change-events"]
    assert connector.connection is not None
    settings = connector.connection.schema()["properties"]
    for secret in ("client-secret", "private-key", "refresh-token"):
        assert settings[secret]["x-secret"] is True and settings[secret]["x-dynamic"] is False
    query = next(op for op in connector.operations if op.name == "query").schema()
    assert query["required"] == ["query"] and query["additionalProperties"] is False
    assert "binds" in query["properties"] and "connection" in query["properties"]
    changes = connector.sources[0].schema()
    assert changes["properties"]["overlap"]["default"] == "2m"


def test_exported_members() -> None:
    """The package's public names are exactly its ``__all__``."""
    assert sorted(package.__all__) == sorted(
        ["QueryStream", "SalesforceClient", "SalesforceError", "SalesforceSettings", "bind", "quote"])
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_source_parameters_used_by_the_code_are_declared() -> None:
    """Every parameter the sources read is in their schema (flows with them validate)."""
    (connector,) = splice_connectors()
    changes, events = (s.schema()["properties"] for s in connector.sources)
    assert {"object", "fields", "where", "interval", "overlap", "batch-size", "since",
            "include-deleted"} <= set(changes)
    assert {"object", "channel", "fields", "where", "overlap", "batch-size", "start", "ignore-origins",
            "ignore-own-writes", "fetch-records", "fallback-interval", "retry-stream-after",
            "retry-delay"} <= set(events)
