"""Every built-in operation says truthfully whether it writes, so a dry run calls only readers."""

from __future__ import annotations

import pytest

from runtime.registry import load_registry
from runtime.spec import OperationSpec

BUILT_IN = ("salesforce", "quickbooks", "http", "file")
#: Name prefixes of operations that change a system or a file, and of those that only read.
WRITERS = ("create", "update", "delete", "upsert", "send", "void", "write", "find-or-create",
           "match-or-create", "collections", "batch")
READERS = ("query", "get", "cdc", "bulk-query")


def built_in_operations() -> list[tuple[str, OperationSpec]]:
    registry = load_registry()
    return [(f"{name}.{op.name}", op) for name in BUILT_IN
            for op in registry.connectors[name].operations]


@pytest.mark.parametrize(("name", "op"), built_in_operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_built_in_operation_declares_whether_it_writes(name: str, op: OperationSpec) -> None:
    """Writers write (and preview their writes), readers do not and may be cached; an operation
    that writes only for some parameters says so with a test of them."""
    short = op.name
    if short.startswith(READERS):
        assert op.writes is False and op.read_only, name
    elif short.startswith(WRITERS):
        assert op.writes is True or callable(op.writes), name
        assert not op.read_only and op.preview is not None, name
    else:  # neither by its name: it writes for some parameters (a new one is classified here)
        assert callable(op.writes), f"{name}: neither a reader nor a writer by its name"
        assert op.preview is not None, name


def test_http_requests_write_unless_get_or_head() -> None:
    [(_, request)] = [(n, op) for n, op in built_in_operations() if n == "http.request"]
    assert [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if request.writes_with({"method": m})] == ["POST", "PUT", "PATCH", "DELETE"]
    assert request.writes_with({"method": "get"}) is False


def test_a_quickbooks_batch_of_queries_only_reads() -> None:
    [(_, batch)] = [(n, op) for n, op in built_in_operations() if n == "quickbooks.batch"]
    queries = {"items": [{"query": "select * from Invoice"}, {"Query": "select * from Item"}]}
    assert batch.writes_with(queries) is False
    assert batch.writes_with({"items": [*queries["items"], {"entity": "Invoice", "record": {}}]})
    assert batch.writes_with({}) is True  # items from the payload: not known, so previewed
