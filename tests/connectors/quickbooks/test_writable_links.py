"""What the connector sends of an invoice's LinkedTxn: the estimate it is made from, never the
payments QuickBooks links itself."""

from __future__ import annotations

from connectors.quickbooks.writes import writable


def test_an_invoice_keeps_its_estimate_link_and_drops_payment_links() -> None:
    body = writable({"CustomerRef": {"value": "1"}, "Balance": 10, "LinkedTxn": [
        {"TxnId": "7", "TxnType": "Estimate"}, {"TxnId": "9", "TxnType": "Payment"}]}, "Invoice")
    assert body["LinkedTxn"] == [{"TxnId": "7", "TxnType": "Estimate"}]
    assert "Balance" not in body


def test_an_invoice_paid_only_sends_no_links() -> None:
    body = writable({"CustomerRef": {"value": "1"}, "LinkedTxn": [{"TxnId": "9", "TxnType": "Payment"}]},
                    "Invoice")
    assert "LinkedTxn" not in body


def test_a_payment_keeps_its_lines_links() -> None:
    line = {"Amount": 5, "LinkedTxn": [{"TxnId": "3", "TxnType": "Invoice"}]}
    assert writable({"TotalAmt": 5, "Line": [line]}, "Payment")["Line"] == [line]
