"""Loading plugins: built-in and third-party connectors come in through the same entry-point group.

The host wiring is pluggy's four steps: a ``PluginManager("splice")``, our hookspecs, the
``splice.connectors`` entry points, and the runtime's own built-ins. ``check_pending`` turns a hook
implementation with a misspelt name into an error at start-up instead of silence.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from runtime import builtins, hookspecs

__all__ = ["ENTRY_POINT_GROUP", "PluginLoadError", "create_plugin_manager"]

ENTRY_POINT_GROUP = "splice.connectors"


class PluginLoadError(Exception):
    """A plugin could not be imported or does not fit the hookspecs (names the plugin)."""


def create_plugin_manager(extra_plugins: Iterable[object] = (), *,
                          load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with every installed plugin registered and checked.

    ``extra_plugins`` are registered as well (tests use it to add a plugin without installing it).
    """
    pm = pluggy.PluginManager("splice")
    pm.add_hookspecs(hookspecs)
    pm.register(builtins, name="splice.builtins")
    if load_entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # an entry point that fails to import must name itself
            raise PluginLoadError(f"could not load a '{ENTRY_POINT_GROUP}' plugin: "
                                  f"{type(exc).__name__}: {exc}") from exc
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(str(exc)) from exc
    return pm
