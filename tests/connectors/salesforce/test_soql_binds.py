"""SOQL bind values: every type quoted by the rules, nothing a payload sends can escape a literal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connectors.salesforce.emulator.soql import parse
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.soql import bind, quote


@pytest.mark.parametrize(("value", "literal"), [
    ("O'Brien", r"'O\'Brien'"),
    ("back\\slash", r"'back\\slash'"),
    ('say "hi"\n', r"'say \"hi\"\n'"),
    (42, "42"), (2.5, "2.5"), (Decimal("12500.00"), "12500.00"),
    (True, "true"), (False, "false"), (None, "null"),
    (date(2026, 3, 31), "2026-03-31"),
    (datetime(2026, 3, 31, 19, 4, 11, tzinfo=timezone(timedelta(hours=2))), "2026-03-31T17:04:11Z"),
    ({"datetime": "2026-03-31T17:04:11.000+0000"}, "2026-03-31T17:04:11Z"),
    ({"date": "2026-03-31"}, "2026-03-31"),
    (["a", "b'c"], r"('a', 'b\'c')"),
    ("2026-03-31", "'2026-03-31'"),
])
def test_quote(value: object, literal: str) -> None:
    """Each Python/JSON type becomes its SOQL literal."""
    assert quote(value) == literal


@pytest.mark.parametrize("value", [float("nan"), [], {"date": "31/03/2026"}, {"datetime": "soon"}, object()])
def test_quote_refuses(value: object) -> None:
    """Values with no safe literal are refused, never guessed."""
    with pytest.raises(SalesforceError) as refused:
        quote(value, "x")
    assert refused.value.error_type == "SALESFORCE:INVALID_BIND"


def test_bind_skips_string_literals_and_relative_dates() -> None:
    """`:name` inside quotes and LAST_N_DAYS:7 are left alone; every bind is replaced."""
    soql = bind("SELECT Id FROM Account WHERE Name = :name AND Description != ':name' "
                "AND CreatedDate = LAST_N_DAYS:7 AND Id IN :ids",
                {"name": "x' OR Name != '", "ids": ["001A", "001B"]})
    assert soql == ("SELECT Id FROM Account WHERE Name = 'x\\' OR Name != \\'' AND Description != ':name' "
                    "AND CreatedDate = LAST_N_DAYS:7 AND Id IN ('001A', '001B')")
    where = parse(soql).where
    assert where is not None and where.op == "and"  # still one condition per bind: nothing injected


def test_bind_requires_every_value() -> None:
    """A placeholder without a value is an error naming it."""
    with pytest.raises(SalesforceError) as missing:
        bind("SELECT Id FROM Account WHERE Name = :name", {})
    assert missing.value.details == {"bind": "name"}


def test_naive_datetimes_are_utc() -> None:
    """A datetime without an offset is read as UTC."""
    assert quote({"datetime": "2026-03-31T17:04:11"}) == "2026-03-31T17:04:11Z"
    assert quote(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"
