"""Fields Salesforce computes: Contact.Name, stage-derived Opportunity flags, line-item prices and
the Opportunity.Amount roll-up."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.multicurrency import apply_currency
from connectors.salesforce.emulator.schema import ADDRESS_PARTS, STAGES

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["apply_derived", "rollup"]

#: (object, id, values) of parents whose roll-ups changed.
Touched = list[tuple[str, str, dict[str, Any]]]
_CENT = Decimal("0.01")


def _decimal(value: Any) -> Decimal:
    """A number as Salesforce computes with it: exact decimal digits, never binary floating point."""
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _money(value: Decimal) -> float:
    """Rounded half up to the cent, as Salesforce rounds currency (14.5 x 128.35 = 1861.08)."""
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _opportunity(org: Org, record: dict[str, Any], given: set[str], creating: bool) -> None:
    if not creating and "Amount" in given and record.get("HasOpportunityLineItem"):
        # With products, Amount is the roll-up of the line items: Salesforce refuses to set it.
        rolled = rollup(org, str(record.get("Id")))
        if rolled and _decimal(record.get("Amount")) != _decimal(rolled[0][2].get("Amount")):
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                           "field integrity exception: Amount (Opportunity Amount cannot be set "
                           "when the opportunity has products)", ["Amount"])
    stage = record.get("StageName")
    if stage is not None and stage not in STAGES:
        raise ApiError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                       f"Stage: bad value for restricted picklist field: {stage}", ["StageName"])
    if stage is None:
        return
    closed, won, probability, forecast = STAGES[stage]
    record["IsClosed"], record["IsWon"] = closed, won
    if "StageName" in given or creating:
        if "Probability" not in given:
            record["Probability"] = float(probability)
        if "ForecastCategoryName" not in given:
            record["ForecastCategoryName"] = forecast


def _line_item(org: Org, record: dict[str, Any], given: set[str], creating: bool) -> None:
    if creating and "UnitPrice" in given and "TotalPrice" in given:
        raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                       "field integrity exception: TotalPrice (only one of TotalPrice or UnitPrice may "
                       "be specified)", ["TotalPrice"])
    opportunity = org.find("Opportunity", str(record.get("OpportunityId") or ""))
    entry = org.find("PricebookEntry", str(record.get("PricebookEntryId") or ""))
    if entry is None and record.get("Product2Id"):
        book = (opportunity or {}).get("Pricebook2Id") or org.standard_pricebook
        entry = next((e for e in org.records["PricebookEntry"].values()
                      if e["Product2Id"] == record["Product2Id"] and e["Pricebook2Id"] == book), None)
    if entry is None:
        raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [PricebookEntryId]",
                       ["PricebookEntryId"])
    product = org.find("Product2", entry["Product2Id"]) or {}
    record.update({"PricebookEntryId": entry["Id"], "Product2Id": entry["Product2Id"],
                   "ListPrice": entry["UnitPrice"], "ProductCode": product.get("ProductCode"),
                   "Name": f"{(opportunity or {}).get('Name', '')} {product.get('Name', '')}".strip()})
    quantity = _decimal(record.get("Quantity"))
    if record.get("UnitPrice") is None and record.get("TotalPrice") is not None and quantity:
        record["UnitPrice"] = _money(_decimal(record["TotalPrice"]) / quantity)
    if record.get("UnitPrice") is None:
        record["UnitPrice"] = entry["UnitPrice"]
    price = _decimal(record["UnitPrice"])
    if "TotalPrice" not in given or not creating:
        discount = _decimal(record.get("Discount"))
        record["TotalPrice"] = _money(quantity * price * (1 - discount / 100))
    record["Subtotal"] = _money(quantity * price)


def _pricebook_entry(org: Org, record: dict[str, Any], creating: bool) -> None:
    product = org.find("Product2", str(record.get("Product2Id") or "")) or {}
    record["Name"], record["ProductCode"] = product.get("Name"), product.get("ProductCode")
    if not creating:
        return
    same = [e for e in org.records["PricebookEntry"].values()
            if e["Product2Id"] == record["Product2Id"]]
    if any(e["Pricebook2Id"] == record["Pricebook2Id"] for e in same):
        raise ApiError(400, "DUPLICATE_VALUE", "This price definition already exists in this price book",
                       [])
    if record["Pricebook2Id"] != org.standard_pricebook and not any(
            e["Pricebook2Id"] == org.standard_pricebook for e in same):
        raise ApiError(400, "STANDARD_PRICE_NOT_DEFINED",
                       "Before creating a custom price, create a standard price.", [])


def rollup(org: Org, opportunity_id: str | None) -> Touched:
    """Opportunity.Amount and HasOpportunityLineItem from the opportunity's live line items."""
    if not opportunity_id or org.find("Opportunity", opportunity_id) is None:
        return []
    lines = [li for li in org.records["OpportunityLineItem"].values()
             if li["OpportunityId"] == opportunity_id]
    values: dict[str, Any] = {"HasOpportunityLineItem": bool(lines)}
    if lines:
        values["Amount"] = _money(sum((_decimal(li.get("TotalPrice")) for li in lines), Decimal(0)))
    return [("Opportunity", opportunity_id, values)]


def _addresses(org: Org, obj: str, record: dict[str, Any]) -> None:
    """Each compound address (``BillingAddress``) from its components, as Salesforce reads it:
    null when every component is empty, else every key (state and country codes, latitude,
    longitude and geocode accuracy are null here: no picklists, no geocoding)."""
    for definition in org.schema(obj).fields.values():
        if definition.type != "address":
            continue
        prefix = definition.name.removesuffix("Address")
        parts = {key: record.get(prefix + part) for part, key in ADDRESS_PARTS.items()}
        record[definition.name] = None if all(v in (None, "") for v in parts.values()) else {
            "city": parts["city"], "country": parts["country"], "countryCode": None,
            "geocodeAccuracy": None, "latitude": None, "longitude": None,
            "postalCode": parts["postalCode"], "state": parts["state"], "stateCode": None,
            "street": parts["street"]}


def apply_derived(org: Org, obj: str, record: dict[str, Any], given: set[str], *, creating: bool,
                  deleting: bool = False) -> Touched:
    """Fill computed fields of ``record`` in place; return parents whose roll-ups must change."""
    if deleting:
        return rollup(org, record.get("OpportunityId")) if obj == "OpportunityLineItem" else []
    _addresses(org, obj, record)
    apply_currency(org, obj, record, given, creating=creating)
    if obj == "Contact":
        record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
    elif obj == "Opportunity":
        _opportunity(org, record, given, creating)
    elif obj == "PricebookEntry":
        _pricebook_entry(org, record, creating)
    elif obj == "OpportunityLineItem":
        _line_item(org, record, given, creating)
        # The roll-up must see this line: report it so the caller recomputes after storing.
        return [("OpportunityLineItem:rollup", str(record.get("OpportunityId")), {})]
    return []
