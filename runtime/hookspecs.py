"""Every extension point of Splice, in one place.

A plugin is a module (or object) with functions named after these hooks, marked with
``runtime.hookimpl``, and registered under the ``splice.connectors`` entry-point group. The
built-in connectors (``http``, ``salesforce``, ``quickbooks``) come in through that same group, and
the runtime's own step kinds and ``schedule`` trigger through the same hooks (:mod:`runtime.builtins`).

Hooks are called once, when the registry is built; nothing here is dispatched per message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pluggy

from runtime.spec import Connector, SourceSpec, StepSpec

hookspec = pluggy.HookspecMarker("splice")
hookimpl = pluggy.HookimplMarker("splice")

__all__ = ["hookimpl", "hookspec"]


# --------------------------------------------------------------------------------------------------
# Vocabulary hooks: what flows can say
# --------------------------------------------------------------------------------------------------


@hookspec
def splice_connectors() -> Sequence[Connector]:  # type: ignore[empty-body]
    """Return the connectors this plugin provides.

    Called once when the registry is built. Each :class:`runtime.spec.Connector` carries its
    connection spec, operations, sources and JSONata functions. Two plugins declaring the same
    connector name is an error naming both distributions.
    """


@hookspec
def splice_steps() -> Sequence[StepSpec]:  # type: ignore[empty-body]
    """Return the step kinds this plugin adds to the language, each with its runner.

    Called once when the registry is built. A :class:`runtime.spec.StepSpec` pairs the language
    side (step key, value schema, builder of the model node) with the runner of that node. A step
    key, or a model class, provided twice is an error.
    """


@hookspec
def splice_sources() -> Sequence[SourceSpec]:  # type: ignore[empty-body]
    """Return triggers not tied to a connector, named as written in flows (``schedule``).

    Called once when the registry is built. A connector's own triggers belong in its
    :class:`runtime.spec.Connector` instead (they are named ``<connector>.<name>``).
    """


@hookspec
def splice_jsonata_functions() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Return JSONata functions not tied to a connector: ``{"name": callable}`` (called as ``$name``).

    Called once when the registry is built. Arguments arrive already evaluated as JSON values; the
    callable returns a JSON value synchronously. A name taken twice is an error.
    """


# --------------------------------------------------------------------------------------------------
# Command-line hooks
# --------------------------------------------------------------------------------------------------


@hookspec
def splice_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``splice`` sub-commands (e.g. a connector's first-authorization walk-through).

    Called once when the CLI starts. Register parsers on ``subparsers`` and give each a
    ``func=`` default taking the parsed ``argparse.Namespace`` and returning an exit code.
    """
