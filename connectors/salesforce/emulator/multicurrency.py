"""Multi-currency in the emulated org, the way Salesforce keeps it once an admin turns it on.

An org with multi-currency has active currencies, the first the corporate currency. Every
Account, Opportunity and OpportunityLineItem then has a ``CurrencyIsoCode`` (describe lists it;
a single-currency org has no such field and a query naming it fails with ``INVALID_FIELD``). A new
record without one gets the corporate currency; a code the org does not have is refused
(``FIELD_INTEGRITY_EXCEPTION``); a line item is always in its opportunity's currency (the field is
not writable on it), and an opportunity with line items cannot change currency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.schema import FieldDef

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["CURRENCY_FIELD", "apply_currency", "enable_multicurrency"]

CURRENCY_FIELD = "CurrencyIsoCode"
_WRITABLE = ("Account", "Opportunity")
_INHERITED = ("OpportunityLineItem",)


def enable_multicurrency(org: Org, currencies: tuple[str, ...] = ("USD", "EUR")) -> None:
    """Turn multi-currency on with ``currencies`` (the first is the corporate currency); existing
    records take the corporate currency, as Salesforce converts them."""
    org.currencies = tuple(code.upper() for code in currencies)
    for obj in (*_WRITABLE, *_INHERITED):
        writable = obj in _WRITABLE
        org.schemas[obj].add_field(FieldDef(CURRENCY_FIELD, "picklist", createable=writable,
                                            updateable=writable, nillable=False, defaulted=True,
                                            picklist=org.currencies))
        for record in org.records[obj].values():
            record.setdefault(CURRENCY_FIELD, None)
            if record[CURRENCY_FIELD] is None:
                record[CURRENCY_FIELD] = org.currencies[0]


def apply_currency(org: Org, obj: str, record: dict[str, Any], given: set[str], *,
                   creating: bool) -> None:
    """Fill and check ``record``'s currency (no-op in a single-currency org)."""
    if not org.currencies or obj not in (*_WRITABLE, *_INHERITED):
        return
    if obj in _INHERITED:
        opportunity = org.find("Opportunity", str(record.get("OpportunityId") or ""))
        record[CURRENCY_FIELD] = (opportunity or {}).get(CURRENCY_FIELD) or org.currencies[0]
        return
    code = record.get(CURRENCY_FIELD)
    if code in (None, ""):
        record[CURRENCY_FIELD] = org.currencies[0]
        return
    if str(code) not in org.currencies:
        raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                       f"Currency ISO Code: invalid currency code: {code}", [CURRENCY_FIELD])
    if obj == "Opportunity" and not creating and CURRENCY_FIELD in given:
        lines = [li for li in org.records["OpportunityLineItem"].values()
                 if li.get("OpportunityId") == record.get("Id")]
        if lines and lines[0].get(CURRENCY_FIELD) != code:
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                           "Currency ISO Code: cannot change the currency of an opportunity with "
                           "products", [CURRENCY_FIELD])
