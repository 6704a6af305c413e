"""``splice sandbox send <invoice> [address]``: e-mail an invoice from the emulated QuickBooks, as a
person does with "Send" on the invoice, then show its headers.

It shows what the sync put on the invoice's header (class, location, custom fields, memo, ship-to,
terms) and its e-mail state, which is how one checks the "Invoice headers" of the demo by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.quickbooks.config import DEFAULT_MINOR_VERSION
from connectors.quickbooks.sandbox import _Api, _quote

__all__ = ["describe_headers", "send"]


def describe_headers(invoice: Mapping[str, Any]) -> str:
    """The header of an invoice, one field a line."""
    def name(ref: Any) -> str:
        return str(ref.get("name") or ref.get("value")) if isinstance(ref, dict) else "-"

    ship = invoice.get("ShipAddr") or {}
    rows = [
        ("Class", name(invoice.get("ClassRef"))),
        ("Location", name(invoice.get("DepartmentRef"))),
        ("Terms", name(invoice.get("SalesTermRef"))),
        ("Due", str(invoice.get("DueDate", "-"))),
        *[(f"{f.get('Name')}", str(f.get("StringValue", ""))) for f in invoice.get("CustomField") or []],
        ("Memo", str((invoice.get("CustomerMemo") or {}).get("value", "-"))),
        ("Ship to", ", ".join(str(v) for k, v in ship.items() if k != "Id") or "-"),
        ("Bill e-mail", str((invoice.get("BillEmail") or {}).get("Address", "-"))),
        ("E-mail", str(invoice.get("EmailStatus", "NotSet"))
         + (f" ({invoice['DeliveryInfo'].get('DeliveryTime')})" if invoice.get("DeliveryInfo") else "")),
        ("Link", str(invoice.get("InvoiceLink", "-"))),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)


async def send(emulator: Mapping[str, Any], args: list[str]) -> str:
    """E-mail an invoice (by Id or DocNumber) to its BillEmail or the address given."""
    if len(args) not in (1, 2):
        raise ValueError("usage: splice sandbox send <Invoice Id|DocNumber> [address]")
    wanted = args[0]
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = _Api(http, emulator)
        await api.login()
        invoices = await api.query(f"select * from Invoice where DocNumber = {_quote(wanted)}")
        if not invoices and wanted.isdigit():
            invoices = await api.query(f"select * from Invoice where Id = {_quote(wanted)}")
        if not invoices:
            raise ValueError(f"no invoice with Id or DocNumber {wanted!r} (see: splice sandbox list)")
        params: dict[str, str] = {"minorversion": str(DEFAULT_MINOR_VERSION), "include": "invoiceLink"}
        if len(args) == 2:
            params["sendTo"] = args[1]
        response = await http.post(api.url(f"invoice/{invoices[0]['Id']}/send"), params=params,
                                   headers={"Content-Type": "application/octet-stream"})
        if response.status_code != 200:
            detail = response.json().get("Fault", {}).get("Error", [{}])[0].get("Detail", response.text)
            raise ValueError(f"quickbooks emulator did not send invoice {wanted}: {detail}")
        invoice = response.json()["Invoice"]
    return (f"Invoice {invoice.get('DocNumber')} (Id {invoice['Id']}) e-mailed to "
            f"{invoice['BillEmail']['Address']}.\n{describe_headers(invoice)}")
