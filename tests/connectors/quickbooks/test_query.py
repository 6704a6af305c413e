"""Query building: values are quoted, never pasted; paging clauses are the client's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.quickbooks.query import page_query, query_entity, quote, render
from runtime.errors import SpliceError


def test_quote_escapes_apostrophes_and_backslashes() -> None:
    """O'Brien must not end the literal."""
    assert quote("O'Brien") == r"'O\'Brien'"
    assert quote("a\\b") == r"'a\\b'"
    assert quote(True) == "true"
    assert quote(Decimal("10.50")) == "10.50"
    assert quote(["A", "B'"]) == r"('A', 'B\'')"


def test_render_binds_outside_literals_only() -> None:
    """``:name`` inside a quoted literal or a timestamp is left alone."""
    sql = render("select * from Customer where DisplayName = :name and "
                 "MetaData.LastUpdatedTime > '2026-01-01T10:00:00-08:00' and Id in :ids",
                 {"name": "O'Brien", "ids": ["1", "2"]})
    assert sql == ("select * from Customer where DisplayName = 'O\\'Brien' and "
                   "MetaData.LastUpdatedTime > '2026-01-01T10:00:00-08:00' and Id in ('1', '2')")


def test_render_names_missing_binds() -> None:
    """A missing bind is a typed error, not a broken query."""
    with pytest.raises(SpliceError) as info:
        render("select * from Item where Name = :name")
    assert info.value.error_type == "QUICKBOOKS:INVALID_QUERY"
    assert "name" in info.value.message


def test_page_query_replaces_paging_clauses() -> None:
    """STARTPOSITION/MAXRESULTS are the pager's, even when the query had its own."""
    sql = "select * from Customer where DisplayName = 'MAXRESULTS 5' MAXRESULTS 10"
    assert page_query(sql, 1001, 1000) == (
        "select * from Customer where DisplayName = 'MAXRESULTS 5' STARTPOSITION 1001 MAXRESULTS 1000")
    assert query_entity(sql) == "Customer"
