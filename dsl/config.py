"""Config files: ``connections:`` (named connections of connectors) and project ``settings:``.

A project may split its config over several files; :mod:`dsl.project` merges what
:func:`build_config` returns and reports a connection or setting defined twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsl.builtins import SETTINGS_SCHEMA
from dsl.loader import Node
from dsl.model import ConnectionConfig, Settings
from dsl.source import SourceSpan
from dsl.templates import is_static
from dsl.validate import check_value, did_you_mean
from dsl.values import FileContext, to_value

__all__ = ["ConfigFile", "build_config", "make_settings"]

_NO_SETTINGS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass
class ConfigFile:
    """What one config file defines, with the position of each name (for duplicate reports)."""

    connections: dict[str, ConnectionConfig] = field(default_factory=dict)
    settings: dict[str, tuple[Any, SourceSpan]] = field(default_factory=dict)


def build_config(root: Node, ctx: FileContext) -> ConfigFile:
    """Check and build one config file's connections and settings."""
    out = ConfigFile()
    for key in root.value:
        if key not in ("connections", "settings"):
            ctx.error(root.keys[key], f"unknown key '{key}' in a config file" + did_you_mean(key, ["connections",
                                                                                                  "settings"]),
                      "'connections:' or 'settings:'")
    connections = root.value.get("connections")
    if connections is not None:
        if connections.kind != "map":
            ctx.error(connections.span, "'connections' must be a mapping of connection names",
                      "'<name>: { connector: <connector>, ... }'")
        else:
            for name, node in connections.value.items():
                connection = _connection(name, node, connections.keys[name], ctx)
                if connection is not None:
                    out.connections[name] = connection
    settings = root.value.get("settings")
    if settings is not None:
        resolved = ctx.resolve(settings)
        if check_value(resolved, SETTINGS_SCHEMA, "settings", ctx.errors) and resolved.kind == "map":
            for key, child in resolved.value.items():
                value = to_value(child)
                if not is_static(value):
                    ctx.error(child.span, f"setting '{key}' cannot hold a #[ ] expression", "a fixed value")
                    continue
                out.settings[key] = (value, resolved.keys[key])
    return out


def _connection(name: str, node: Node, key_span: SourceSpan, ctx: FileContext) -> ConnectionConfig | None:
    if node.kind != "map":
        ctx.error(node.span, f"connection '{name}' must be a mapping", "'connector: <connector>' and its settings")
        return None
    resolved = ctx.resolve(node)
    connector_node = resolved.value.get("connector")
    if connector_node is None or not isinstance(connector_node.value, str):
        ctx.error(key_span, f"connection '{name}' has no 'connector'",
                  "'connector:' naming an installed connector")
        return None
    connector = connector_node.value
    known = list(ctx.vocabulary.connector_names())
    if connector not in known:
        ctx.error(connector_node.span, f"unknown connector '{connector}'",
                  "one of the installed connectors" + (did_you_mean(connector, known) or f": {', '.join(known)}"))
        return None
    params = Node("map", {k: v for k, v in resolved.value.items() if k != "connector"}, resolved.span,
                  keys=resolved.keys)
    schema = ctx.vocabulary.connection_schema(connector) or _NO_SETTINGS
    # A connection with a bad setting is still a connection: its error is reported once, here,
    # instead of again as "unknown connection" at every step that uses it.
    check_value(params, schema, name, ctx.errors, owner=f"connection '{name}' ({connector})",
                key_span=key_span)
    values = to_value(params)
    if not is_static(values):
        ctx.error(key_span, f"connection '{name}' cannot hold #[ ] expressions",
                  "fixed values or ${...} placeholders")
    return ConnectionConfig(name=name, connector=connector, params=values, span=key_span)


def make_settings(values: dict[str, Any]) -> Settings:
    """The :class:`~dsl.model.Settings` from merged ``settings:`` keys."""
    telemetry = values.get("telemetry") or {}
    known = {"jsonata-engine", "telemetry", "store", "server"}
    return Settings(
        jsonata_engine=values.get("jsonata-engine", "auto"),
        telemetry_exporter=telemetry.get("exporter", "none"),
        otlp_endpoint=telemetry.get("endpoint"),
        store_url=values.get("store", "sqlite:///.splice/store.db"),
        server=dict(values.get("server") or {}),
        extra={k: v for k, v in values.items() if k not in known},
    )
