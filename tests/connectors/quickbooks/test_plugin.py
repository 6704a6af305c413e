"""The connector registers through the entry point like any plugin, with complete schemas."""

from __future__ import annotations

import connectors.quickbooks as package
from connectors.quickbooks.plugin import CONNECTOR
from runtime.cli import build_parser
from runtime.registry import load_registry
from runtime.sandbox import load_sandbox


def test_registered_through_the_entry_point() -> None:
    """``quickbooks.*`` operations and sources are in the vocabulary with their schemas."""
    registry = load_registry()
    names = set(registry.operation_names())
    for op in ("create", "update", "get", "delete", "void", "query", "batch", "cdc", "find-or-create"):
        assert f"quickbooks.{op}" in names
    assert {"quickbooks.webhook", "quickbooks.changes"} <= set(registry.source_names())
    create = registry.operation_schema("quickbooks.create")
    assert create is not None and "idempotency-key" in create["required"]
    connection = registry.connection_schema("quickbooks")
    assert connection is not None
    assert connection["properties"]["client-secret"]["x-secret"] is True
    assert connection["properties"]["minor-version"]["default"] == 75
    sandbox = load_sandbox(CONNECTOR)
    assert sandbox is not None and sandbox.emulator is not None


def test_connect_command_is_added_to_the_cli() -> None:
    """The ``splice_cli`` hook adds ``quickbooks-connect``."""
    registry = load_registry()
    parser = build_parser(lambda sub: registry.plugin_manager.hook.splice_cli(subparsers=sub))
    args = parser.parse_args(["quickbooks-connect", "--client-id", "x", "--code", "c",
                              "--realm-id", "1"])
    assert callable(args.func) and args.realm_id == "1"


def test_public_names() -> None:
    """The package exports exactly its public names."""
    assert sorted(package.__all__) == ["QuickBooksClient", "QuickBooksSettings", "open_connection"]


def test_every_module_exports_what_it_defines() -> None:
    """``__all__`` of each connector module names existing objects, without repeats."""
    import importlib
    import pkgutil

    import connectors.quickbooks.emulator as emulator_package

    names = [f"connectors.quickbooks.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    names += [f"connectors.quickbooks.emulator.{m.name}"
              for m in pkgutil.iter_modules(emulator_package.__path__)]
    for name in names:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, name
        assert len(exported) == len(set(exported)), name
        assert all(hasattr(module, n) for n in exported), name
