"""Load a project directory: every flow and config file, checked together, every problem reported.

A project is a directory tree of YAML files. A file whose root mapping has ``flow:`` is a flow;
one with ``connections:`` and/or ``settings:`` is config. Directories named ``config``, ``tests``,
``cassettes``, ``fixtures`` or starting with ``.`` are skipped. ``config/<env>.yaml`` files hold the
properties: the root's file, overridden by those of subdirectories on the way down to each file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dsl.build import build_flow
from dsl.config import ConfigFile, build_config, make_settings
from dsl.errors import FlowError, FlowErrors, FlowValidationError
from dsl.expressions import JsonataEngine, get_engine
from dsl.libraries import LIBRARY_DIR, JsonataLibrary, load_libraries
from dsl.loader import Node, load_yaml, read_text
from dsl.model import ConnectionConfig, Flow, Project
from dsl.properties import Properties, PropertyValue, env_var_name, flatten_properties
from dsl.routes import routes_conflict
from dsl.source import SourceSpan
from dsl.validate import did_you_mean
from dsl.values import FileContext
from dsl.vocabulary import Vocabulary

__all__ = ["check_file", "check_project", "load_flow_text", "load_project"]

SKIPPED_DIRS = frozenset({"config", "tests", "cassettes", "fixtures"})
_NOT_A_FLOW = ("expected a flow file (a mapping with 'flow:') or a config file "
               "('connections:' / 'settings:')")


def load_project(
    root: str | os.PathLike[str],
    *,
    env: str = "dev",
    vocabulary: Vocabulary,
    environ: Mapping[str, str] | None = None,
    engine: str = "auto",
    on_secret: Callable[[str], None] | None = None,
) -> Project:
    """Load and check every flow and config file under ``root`` for environment ``env``.

    ``environ`` defaults to ``os.environ`` (property overrides, ``${env:...}``, ``SPLICE_SECURE_KEY``).
    ``engine`` ``auto`` defers to the ``jsonata-engine`` setting. ``on_secret`` receives every
    decrypted secure value, so the caller can redact it.

    Raises:
        FlowErrors: every problem of every file, sorted by position.
    """
    project, errors = _load(Path(root), env, vocabulary, environ, engine, on_secret)
    if errors or project is None:
        raise FlowErrors(errors)
    return project


def check_project(
    root: str | os.PathLike[str],
    *,
    env: str = "dev",
    vocabulary: Vocabulary,
    environ: Mapping[str, str] | None = None,
    engine: str = "auto",
    on_secret: Callable[[str], None] | None = None,
) -> list[FlowError]:
    """Every problem :func:`load_project` would raise, sorted by position (``[]`` when all is well)."""
    _, errors = _load(Path(root), env, vocabulary, environ, engine, on_secret)
    return FlowErrors(errors).errors


def check_file(
    path: str | os.PathLike[str],
    *,
    env: str = "dev",
    vocabulary: Vocabulary,
    environ: Mapping[str, str] | None = None,
    engine: str = "auto",
    on_secret: Callable[[str], None] | None = None,
) -> list[FlowError]:
    """The problems of one flow or config file on its own (``splice validate some/file.yaml``).

    Properties come from the ``config/<env>.yaml`` files from the current directory (when the file
    is below it, else the file's directory) down to the file. Checks that need the whole project
    (``flow-ref`` targets, connections used by steps, duplicate names) are left out.
    """
    file = Path(path)
    environ = dict(os.environ) if environ is None else environ
    errors: list[FlowError] = []
    directory = Path(os.path.relpath(file.parent))
    root = Path(".") if not directory.as_posix().startswith("..") else directory
    props = _PropertyFiles(root, env, errors)
    functions = vocabulary.jsonata_functions()
    chosen = get_engine(engine)
    ctx = FileContext(file=file.as_posix(), properties=Properties(props.for_dir(directory), environ, on_secret),
                      engine=chosen, vocabulary=vocabulary, functions=functions, base_dir=file.parent,
                      libraries=_nearest_libraries(root, directory, chosen, functions, errors))
    try:
        node, file_errors = load_yaml(read_text(file.read_bytes(), ctx.file), ctx.file)
    except FlowError as exc:
        return [exc]
    except OSError as exc:
        return [FlowValidationError(SourceSpan(ctx.file, 1, 1), f"cannot read file: {exc.strerror}")]
    errors.extend(file_errors)
    if node is not None:
        if node.kind == "map" and "flow" in node.value:
            build_flow(node, ctx)
        elif node.kind == "map" and ("connections" in node.value or "settings" in node.value):
            build_config(node, ctx)
        else:
            errors.append(FlowValidationError(node.span, "not a flow or config file", _NOT_A_FLOW[9:]))
    return FlowErrors([*errors, *ctx.errors]).errors


def _library_owner(root: Path, directory: Path) -> Path | None:
    """The deepest directory from ``directory`` up to ``root`` that has a ``lib/`` folder: its
    libraries are the ones the files in ``directory`` see (a folder of several projects, such as
    ``flows/``, gives each project its own)."""
    parts = directory.relative_to(root).parts
    for depth in range(len(parts), -1, -1):
        candidate = root.joinpath(*parts[:depth])
        if (candidate / LIBRARY_DIR).is_dir():
            return candidate
    return None


def _nearest_libraries(root: Path, directory: Path, engine: JsonataEngine,
                       functions: Mapping[str, Callable[..., Any]],
                       errors: list[FlowError]) -> dict[str, JsonataLibrary]:
    """The libraries a file in ``directory`` sees (one file checked alone sees its project's)."""
    owner = _library_owner(root, directory)
    return load_libraries(owner, display_name, engine, functions, errors) if owner is not None else {}


def load_flow_text(
    text: str,
    *,
    file: str = "<string>",
    vocabulary: Vocabulary,
    properties: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    engine: str = "auto",
    environ: Mapping[str, str] | None = None,
) -> Flow:
    """Load one flow from text (tests, ``splice run`` of a single file); no connections are checked.

    ``properties`` is a (nested or dotted) mapping used for ``${...}``; ``.jsonata`` paths are
    relative to ``base_dir`` (default: the current directory).

    Raises:
        FlowErrors: every problem found.
    """
    start = SourceSpan(file, 1, 1)
    values = flatten_properties(_plain_node(properties or {}, start)) if properties else {}
    props = Properties(values, dict(os.environ) if environ is None else environ)
    ctx = FileContext(file=file, properties=props, engine=get_engine(engine), vocabulary=vocabulary,
                      functions=vocabulary.jsonata_functions(),
                      base_dir=Path(base_dir) if base_dir is not None else None)
    root, errors = load_yaml(text, file)
    ctx.errors.extend(errors)
    flow = None
    if root is not None:
        if root.kind != "map" or "flow" not in root.value:
            ctx.error(root.span, "not a flow", "a mapping with 'flow:'")
        else:
            flow = build_flow(root, ctx)
    if ctx.errors or flow is None:
        raise FlowErrors(ctx.errors or [FlowValidationError(start, "no flow found")])
    return flow


def _plain_node(value: Any, span: SourceSpan) -> Node:
    if isinstance(value, Mapping):
        return Node("map", {str(k): _plain_node(v, span) for k, v in value.items()}, span,
                    keys={str(k): span for k in value})
    return Node("scalar", value, span)


def display_name(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when it lies below it
    (so ``flows/a.yaml:3:5`` is clickable in a terminal or editor), else absolute."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def discover(root: Path) -> Iterator[Path]:
    """The YAML files of a project, in a stable order."""
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        parts = path.relative_to(root).parts[:-1]
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in parts) or path.name.startswith("."):
            continue
        yield path


class _PropertyFiles:
    """``config/<env>.yaml`` per directory, merged from the root down (deeper wins)."""

    def __init__(self, root: Path, env: str, errors: list[FlowError]) -> None:
        self.root, self.env, self.errors = root, env, errors
        self._own: dict[Path, dict[str, PropertyValue]] = {}

    def own(self, directory: Path) -> dict[str, PropertyValue]:
        if directory not in self._own:
            values: dict[str, PropertyValue] = {}
            for suffix in (".yaml", ".yml"):
                path = directory / "config" / f"{self.env}{suffix}"
                if path.is_file():
                    values.update(self._read(path))
            self._own[directory] = values
        return self._own[directory]

    def _read(self, path: Path) -> dict[str, PropertyValue]:
        display = display_name(path)
        try:
            node, errors = load_yaml(read_text(path.read_bytes(), display), display)
        except FlowError as exc:
            self.errors.append(exc)
            return {}
        self.errors.extend(errors)
        if node is None:
            return {}
        if node.kind != "map":
            self.errors.append(FlowValidationError(node.span, "a property file must be a mapping",
                                                   "'name: value' entries (nesting allowed)"))
            return {}
        return flatten_properties(node)

    def for_dir(self, directory: Path) -> dict[str, PropertyValue]:
        chain = [self.root]
        relative = directory.relative_to(self.root)
        for part in relative.parts:
            chain.append(chain[-1] / part)
        merged: dict[str, PropertyValue] = {}
        for step in chain:
            merged.update(self.own(step))
        return merged


def _load(root: Path, env: str, vocabulary: Vocabulary, environ: Mapping[str, str] | None, engine_name: str,
          on_secret: Callable[[str], None] | None) -> tuple[Project | None, list[FlowError]]:
    environ = dict(os.environ) if environ is None else environ
    errors: list[FlowError] = []
    if not root.is_dir():
        return None, [FlowValidationError(SourceSpan(str(root), 1, 1), "not a directory", "a project directory")]
    props = _PropertyFiles(root, env, errors)
    functions = vocabulary.jsonata_functions()
    flows_src: list[tuple[Path, str, Node]] = []
    configs: list[ConfigFile] = []
    reference = get_engine("jsonata-python")
    #: Each ``lib/`` folder's libraries, loaded once, when the first flow that sees them is built.
    library_sets: dict[Path, dict[str, JsonataLibrary]] = {}

    def libraries_for(directory: Path, engine: JsonataEngine) -> dict[str, JsonataLibrary]:
        owner = _library_owner(root, directory)
        if owner is None:
            return {}
        if owner not in library_sets:
            library_sets[owner] = load_libraries(owner, display_name, engine, functions, errors)
        return library_sets[owner]

    def context(path: Path, display: str, engine: JsonataEngine,
                libraries: Mapping[str, JsonataLibrary] | None = None) -> FileContext:
        properties = Properties(props.for_dir(path.parent), environ, on_secret)
        return FileContext(file=display, properties=properties, engine=engine, vocabulary=vocabulary,
                           functions=functions, base_dir=path.parent, root=root,
                           libraries=libraries or {})

    for path in discover(root):
        display = display_name(path)
        try:
            node, file_errors = load_yaml(read_text(path.read_bytes(), display), display)
        except FlowError as exc:
            errors.append(exc)
            continue
        errors.extend(file_errors)
        if node is None:
            continue
        if node.kind == "map" and "flow" in node.value:
            flows_src.append((path, display, node))
        elif node.kind == "map" and ("connections" in node.value or "settings" in node.value):
            ctx = context(path, display, reference)
            configs.append(build_config(node, ctx))
            errors.extend(ctx.errors)
        else:
            errors.append(FlowValidationError(node.span, "not a flow or config file", _NOT_A_FLOW[9:]))

    connections: dict[str, ConnectionConfig] = {}
    settings: dict[str, Any] = {}
    setting_spans: dict[str, SourceSpan] = {}
    for config in configs:
        for name, connection in config.connections.items():
            if name in connections:
                errors.append(FlowValidationError(connection.span, f"connection '{name}' is defined twice "
                                                  f"(first at {connections[name].span})", "unique names"))
                continue
            connections[name] = connection
        for key, (value, span) in config.settings.items():
            if key in settings:
                errors.append(FlowValidationError(span, f"setting '{key}' is defined twice "
                                                  f"(first at {setting_spans[key]})", "each setting once"))
                continue
            settings[key], setting_spans[key] = value, span
    project_settings = make_settings(settings)

    chosen = engine_name if engine_name != "auto" else project_settings.jsonata_engine
    try:
        engine = get_engine(chosen)
    except ValueError as exc:
        errors.append(FlowValidationError(setting_spans.get("jsonata-engine", SourceSpan(str(root), 1, 1)),
                                          str(exc)))
        engine = reference

    libraries_for(root, engine)  # the project's own lib/ is checked even when no flow uses it yet

    flows: dict[str, Flow] = {}
    contexts: list[FileContext] = []
    for path, display, node in flows_src:
        ctx = context(path, display, engine, libraries_for(path.parent, engine))
        flow = build_flow(node, ctx)
        contexts.append(ctx)
        errors.extend(ctx.errors)
        if flow is None:
            continue
        if flow.name in flows:
            errors.append(FlowValidationError(flow.span, f"duplicate flow name '{flow.name}' "
                                              f"(first at {flows[flow.name].span})", "a unique flow name"))
            continue
        flows[flow.name] = flow

    errors.extend(_route_conflicts(flows, vocabulary))
    for ctx in contexts:
        for name, span in ctx.flow_refs:
            if name not in flows:
                errors.append(FlowValidationError(span, f"unknown flow '{name}' in flow-ref",
                                                  "the name of a flow of this project" + did_you_mean(name, flows)))
        for connector, wanted, span, what in ctx.connection_refs:
            errors.extend(_check_connection(connector, wanted, span, what, connections))
    for name in settings.get("startup-checks") or []:
        if isinstance(name, str) and name not in flows:
            errors.append(FlowValidationError(setting_spans["startup-checks"],
                                              f"unknown flow '{name}' in settings.startup-checks",
                                              "the name of a flow of this project" + did_you_mean(name, flows)))

    root_props = props.for_dir(root)
    properties = {}
    for name, prop in root_props.items():
        override = environ.get(env_var_name(name))
        properties[name] = override if override is not None and not prop.encrypted else prop.value
    project = Project(root=root, env=env, flows=flows, connections=connections, settings=project_settings,
                      properties=properties, functions=functions)
    return project, errors


def _route_conflicts(flows: Mapping[str, Flow], vocabulary: Vocabulary) -> list[FlowError]:
    """Two flows whose triggers register one HTTP route (see :mod:`dsl.routes`): ``serve`` could
    start only one of them, so the later flow's trigger is an error naming the earlier one."""
    claimed: list[tuple[str, frozenset[str], Flow]] = []
    problems: list[FlowError] = []
    for flow in flows.values():
        if flow.trigger is None:
            continue
        for path, methods in vocabulary.source_routes(flow.trigger.name, flow.trigger.params):
            for other_path, other_methods, other in claimed:
                both = routes_conflict(other_path, other_methods, path, methods)
                if both:
                    same = path if other_path == path else f"{path} (the same route as {other_path})"
                    problems.append(FlowValidationError(
                        flow.trigger.span, f"{' '.join(both)} {same} is claimed by both flow '{other.name}' "
                        f"(trigger at {other.trigger.span if other.trigger else other.span}) and flow "
                        f"'{flow.name}'", "one flow per method and path"))
                    break
            claimed.append((path, frozenset(methods), flow))
    return problems


def _check_connection(connector: str, name: str | None, span: SourceSpan, what: str,
                      connections: Mapping[str, ConnectionConfig]) -> list[FlowError]:
    candidates = sorted(c.name for c in connections.values() if c.connector == connector)
    if name is None:
        if len(candidates) == 1:
            return []
        if not candidates:
            return [FlowValidationError(span, f"{what} needs a connection, but no '{connector}' connection "
                                              "is configured", f"a 'connections:' entry with connector: {connector}")]
        return [FlowValidationError(span, f"{what} needs 'connection': several '{connector}' connections exist",
                                    f"one of: {', '.join(candidates)}")]
    if name not in connections:
        return [FlowValidationError(span, f"unknown connection '{name}'" + did_you_mean(name, candidates),
                                    f"one of the '{connector}' connections: {', '.join(candidates) or 'none'}")]
    if connections[name].connector != connector:
        return [FlowValidationError(span, f"connection '{name}' is a '{connections[name].connector}' connection, "
                                          f"not '{connector}'", f"one of: {', '.join(candidates) or 'none'}")]
    return []
