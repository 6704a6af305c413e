"""Money is Decimal end to end, rounded half up to cents the way QuickBooks checks lines."""

from __future__ import annotations

import json
from decimal import Decimal

from connectors.quickbooks.money import dumps, fill_line_amounts, line_amount, loads


def test_line_amount_rounds_half_up_where_floats_round_down() -> None:
    """128.350 x 14.50 = 1861.075: QuickBooks wants 1861.08; float math gives 1861.07."""
    assert round(128.350 * 14.50, 2) == 1861.07
    assert line_amount("128.350", "14.50") == Decimal("1861.08")
    assert line_amount(128.35, 14.5) == Decimal("1861.08")
    assert line_amount(Decimal("0.125"), 1) == Decimal("0.13")


def test_dumps_writes_exact_decimal_digits_as_json_numbers() -> None:
    """No binary float sneaks into a request body."""
    raw = dumps({"Amount": Decimal("1861.08"), "Qty": Decimal("128.350"), "f": 0.1, "n": None,
                 "s": "O'Brien", "l": [Decimal("1E+2"), 3, True]})
    assert raw == b'{"Amount":1861.08,"Qty":128.350,"f":0.1,"n":null,"s":"O\'Brien","l":[100,3,true]}'
    assert json.loads(raw)["Amount"] == 1861.08


def test_loads_parses_money_as_decimal() -> None:
    """Responses keep their cents exactly."""
    assert loads(b'{"TotalAmt": 0.30, "Id": "1"}') == {"TotalAmt": Decimal("0.30"), "Id": "1"}


def test_fill_line_amounts_sets_amount_from_qty_and_price_only() -> None:
    """Lines without both Qty and UnitPrice keep their Amount."""
    invoice = {"Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 1861.07,
         "SalesItemLineDetail": {"Qty": 128.35, "UnitPrice": 14.5}},
        {"DetailType": "SalesItemLineDetail", "Amount": Decimal("10"), "SalesItemLineDetail": {}},
        {"DetailType": "DescriptionOnly", "Description": "note"}]}
    fill_line_amounts(invoice)
    assert invoice["Line"][0]["Amount"] == Decimal("1861.08")
    assert invoice["Line"][1]["Amount"] == Decimal("10")
    assert "Amount" not in invoice["Line"][2]
