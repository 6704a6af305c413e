"""``file.write``: write (or append) a flow's value to a local file.

Batch jobs write their reports this way: a whole file is written to a temporary name and renamed,
so a reader never sees half a report; ``append`` adds to a file as a job goes, so a long job keeps
only the current chunk in memory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import anyio

from runtime import OperationContext, OperationSpec, Param, SpliceError, json_dumps

__all__ = ["WRITE"]

FORMATS = ("json", "jsonl", "text")


def _render(content: Any, fmt: str) -> str:
    """The text to write: pretty JSON, one JSON line per item, or the text itself."""
    if fmt == "json":
        return json_dumps(content, indent=2) + "\n"
    if fmt == "jsonl":
        items = content if isinstance(content, list) else [content]
        return "".join(json_dumps(item) + "\n" for item in items if item is not None)
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(f"{line}\n" for line in content)
    text = str(content)
    return text if text.endswith("\n") or not text else text + "\n"


def _write(name: str, text: str, append: bool) -> tuple[str, int]:
    path = Path(name).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    if append:
        with path.open("ab") as handle:
            handle.write(data)
        return str(path), len(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path), len(data)


async def write(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Write ``content`` (default: the payload) to ``path``; the result is ``{path, bytes}``."""
    fmt: str = params["format"]  # one of FORMATS: the runtime checks the enum
    content = params["content"] if "content" in params else ctx.message.payload
    name = str(params["path"])
    try:
        path, written = await anyio.to_thread.run_sync(_write, name, _render(content, fmt),
                                                       params["append"])
    except OSError as exc:
        raise SpliceError(f"cannot write {name}: {exc.strerror or exc}", error_type="FILE:IO") from None
    ctx.annotate(**{"splice.file.bytes": written})
    return {"path": path, "bytes": written}


async def preview_write(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """The text it would write (or append) to the file; the file is not touched."""
    fmt: str = params["format"]
    content = params["content"] if "content" in params else ctx.message.payload
    name = str(params["path"])
    path = await anyio.to_thread.run_sync(lambda: str(Path(name).expanduser().resolve()))
    text = _render(content, fmt)
    ctx.would_write("append" if params["append"] else "write", {"path": path}, text)
    return {"path": path, "bytes": len(text.encode("utf-8")), "dryRun": True}


WRITE = OperationSpec(
    name="write",
    handler=write,
    writes=True,
    preview=preview_write,
    needs_connection=False,
    summary="Write or append a value to a local file (reports, exports)",
    output="{path, bytes}",
    params=(
        Param("path", required=True, summary="File path (relative to the working directory)",
              examples=("reports/reconciliation.json",)),
        Param("content", "any", summary="What to write (default: the payload)"),
        Param("format", default="json", enum=FORMATS,
              summary="json (pretty), jsonl (one line per list item) or text (a list: one line each)"),
        Param("append", "boolean", default=False,
              summary="Append instead of replacing (a replaced file is written whole, then renamed)"),
    ),
)
