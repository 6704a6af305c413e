"""US sales tax of the emulated company, computed the way QuickBooks Online computes it.

A US company marks each sales line ``TAX`` or ``NON`` (``SalesItemLineDetail.TaxCodeRef``); the rate
comes from a tax code whose ``SalesTaxRateList`` names ``TaxRate`` rows. With automated sales tax
(``Preferences.TaxPrefs.PartnerTaxEnabled``) QuickBooks picks that code itself and ignores tax amounts
a client sends; without it, the invoice's ``TxnTaxDetail.TxnTaxCodeRef`` names the code. Either way
QuickBooks fills ``TxnTaxDetail`` (``TotalTax`` and one ``TaxLine`` per rate, each rounded half up to
cents on the taxable net) and ``TotalAmt`` is the subtotal plus the tax. A tax-exempt customer
(``Taxable: false``) pays none. :func:`set_sales_tax` is how a test or the demo company turns
automated sales tax on at a rate (a fresh company has none, so its invoices carry no tax).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["AST_TAX_CODE", "sales_tax", "set_sales_tax"]

#: Id of the tax code (a group of rates) automated sales tax applies; its one rate has id "3".
AST_TAX_CODE = "2"
_AST_TAX_RATE = "3"
ZERO = Decimal("0")
CENT = Decimal("0.01")


def set_sales_tax(company: Company, rate: Decimal | str | None, *, name: str = "Sandbox County") -> None:
    """Turn automated sales tax on at ``rate`` percent (``None``: off, invoices carry no tax)."""
    prefs = company.tables["Preferences"].get("1")
    tax_prefs = prefs.setdefault("TaxPrefs", {}) if prefs is not None else {}
    if rate is None:
        tax_prefs["PartnerTaxEnabled"] = False
        tax_prefs.pop("TaxGroupCodeRef", None)
        return
    meta = {"CreateTime": company.now(), "LastUpdatedTime": company.now()}
    common = {"Active": True, "SyncToken": "0", "domain": "QBO", "sparse": False, "MetaData": meta}
    company.tables["TaxRate"][_AST_TAX_RATE] = {
        **common, "Id": _AST_TAX_RATE, "Name": f"{name} tax", "Description": "Sales Tax",
        "RateValue": Decimal(str(rate)), "SpecialTaxType": "NONE", "DisplayType": "ReadOnly"}
    company.tables["TaxCode"][AST_TAX_CODE] = {
        **common, "Id": AST_TAX_CODE, "Name": name, "Description": name, "Taxable": True,
        "TaxGroup": True, "SalesTaxRateList": {"TaxRateDetail": [
            {"TaxRateRef": {"value": _AST_TAX_RATE, "name": f"{name} tax"},
             "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]},
        "PurchaseTaxRateList": {"TaxRateDetail": []}}
    tax_prefs.update({"UsingSalesTax": True, "PartnerTaxEnabled": True,
                      "TaxGroupCodeRef": {"value": AST_TAX_CODE}})


def _code(company: Company, record: dict[str, Any]) -> dict[str, Any] | None:
    """The tax code that sets the rate: the company's under automated sales tax, else the invoice's."""
    prefs = (company.tables["Preferences"].get("1") or {}).get("TaxPrefs") or {}
    if prefs.get("PartnerTaxEnabled"):
        wanted = (prefs.get("TaxGroupCodeRef") or {}).get("value")
    else:
        wanted = ((record.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef") or {}).get("value")
    if wanted is None:
        return None
    return company.ref("TaxCode", {"value": wanted}, "TxnTaxDetail.TxnTaxCodeRef")


def sales_tax(company: Company, record: dict[str, Any], customer: dict[str, Any],
              taxable_net: Decimal) -> dict[str, Any]:
    """The ``TxnTaxDetail`` QuickBooks computes for an invoice whose taxable lines come to
    ``taxable_net``."""
    code = _code(company, record)
    if code is None or customer.get("Taxable") is False:
        return {"TotalTax": ZERO}
    lines, total = [], ZERO
    for detail in (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []:
        rate = company.ref("TaxRate", detail["TaxRateRef"], "TaxRateRef")
        percent = Decimal(str(rate.get("RateValue", 0)))
        amount = (taxable_net * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        total += amount
        lines.append({"Amount": amount,
                      "DetailType": "TaxLineDetail",
                      "TaxLineDetail": {"TaxRateRef": {"value": rate["Id"]}, "PercentBased": True,
                                        "TaxPercent": percent, "NetAmountTaxable": taxable_net}})
    return {"TxnTaxCodeRef": {"value": code["Id"]},
            "TotalTax": total, "TaxLine": lines}
