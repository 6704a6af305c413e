"""``splice docs``: the reference of every installed connector, generated from the specs."""

from __future__ import annotations

from runtime.registry import Registry
from runtime.spec import Param

__all__ = ["render_reference"]


def _param_rows(params: tuple[Param, ...]) -> list[str]:
    rows = ["| parameter | type | required | default | description |", "|---|---|---|---|---|"]
    for p in params:
        default = "" if p.default is None else f"`{p.default}`"
        kind = p.type + (" (secret)" if p.secret else "")
        summary = p.summary + (f" One of: {', '.join(map(str, p.enum))}." if p.enum else "")
        rows.append(f"| `{p.name}` | {kind} | {'yes' if p.required else ''} | {default} | {summary} |")
    return rows


def render_reference(registry: Registry) -> str:
    """Markdown: per connector its connection settings, operations and triggers."""
    out = ["# Splice reference", ""]
    for name in sorted(registry.connectors):
        c = registry.connectors[name]
        out += [f"## {name}", "", c.summary, "", f"Provided by {registry.origins.get(name, '?')}.", ""]
        if c.connection is not None:
            out += ["### Connection", "", c.connection.summary, "", *_param_rows(c.connection.params),
                    ""]
        for op in c.operations:
            out += [f"### `{name}.{op.name}` (operation, {op.stability})", "", op.summary, ""]
            if op.output:
                out += [f"Result: {op.output}", ""]
            out += [*_param_rows(op.params), ""]
        for src in c.sources:
            out += [f"### `{name}.{src.name}` (trigger, {src.stability})", "", src.summary, "",
                    *_param_rows(src.params), ""]
    if registry.functions:
        out += ["## JSONata functions", ""]
        for fname, fn in sorted(registry.functions.items()):
            doc = (fn.__doc__ or "").strip().splitlines()
            out.append(f"- `${fname}`: {doc[0] if doc else ''}")
    return "\n".join(out) + "\n"
