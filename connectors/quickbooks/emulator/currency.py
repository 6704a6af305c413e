"""Multi-currency in the emulated company, the way QuickBooks Online keeps it.

A company has a home currency (``Preferences.CurrencyPrefs.HomeCurrency``). Multi-currency is a
preference (``MultiCurrencyEnabled``) that, once on, stays on. Without it, every customer and
transaction is in the home currency and a foreign ``CurrencyRef`` is refused. With it:

- a Customer has one currency, set when it is created (home currency when not given) and never
  changed afterwards: an update naming another currency is refused;
- a transaction (Invoice, Payment, and the other sales forms: Estimate, SalesReceipt, CreditMemo,
  RefundReceipt) is in its customer's currency: a ``CurrencyRef`` naming another one is refused;
  when none is given it is the customer's;
- ``ExchangeRate`` is home units per one foreign unit: the one given, else the company's rate for
  the currency (the ``exchangerate`` resource), else 1; a home-currency transaction's is 1. A
  given 1 counts as not given (python-quickbooks sends 1 on every transaction);
- ``HomeTotalAmt`` (and an invoice's ``HomeBalance``) are the amounts in the home currency, rounded
  half up to cents; they are read-only.

:func:`enable_multicurrency` is how a test or the demo company turns it on and sets rates;
:func:`exchange_rate` answers ``GET /exchangerate?sourcecurrencycode=EUR&asofdate=...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from connectors.quickbooks.emulator.faults import Fault

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["CURRENCY_NAMES", "customer_currency", "enable_multicurrency", "exchange_rate",
           "home_amounts", "home_currency", "multicurrency_enabled", "transaction_currency"]

#: ISO code -> the name QuickBooks puts in ``CurrencyRef.name``.
CURRENCY_NAMES = {
    "USD": "United States Dollar", "EUR": "Euro", "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar", "AUD": "Australian Dollar", "CHF": "Swiss Franc",
    "JPY": "Japanese Yen", "SEK": "Swedish Krona", "DKK": "Danish Krone", "NOK": "Norwegian Krone",
    "MXN": "Mexican Peso", "INR": "Indian Rupee", "NZD": "New Zealand Dollar",
}
_BUSINESS = "A business validation error has occurred while processing your request"
CENT = Decimal("0.01")
ONE = Decimal("1")


def _prefs(company: Company) -> dict[str, Any]:
    prefs = company.tables["Preferences"].get("1") or {}
    currency = prefs.get("CurrencyPrefs")
    return currency if isinstance(currency, dict) else {}


def home_currency(company: Company) -> str:
    """The company's home currency code (USD when the preferences do not say)."""
    return str((_prefs(company).get("HomeCurrency") or {}).get("value") or "USD")


def multicurrency_enabled(company: Company) -> bool:
    """Whether the company has multi-currency on."""
    return bool(_prefs(company).get("MultiCurrencyEnabled"))


def enable_multicurrency(company: Company, rates: Mapping[str, Decimal | str] | None = None) -> None:
    """Turn multi-currency on (it cannot be turned off) and set exchange rates (home units per one
    unit of each currency), as a person does in QuickBooks' settings. Transactions made before are
    in the home currency at a rate of 1, with their home amounts."""
    first = not multicurrency_enabled(company)
    prefs = company.tables["Preferences"].get("1")
    if prefs is not None:
        currency = prefs.setdefault("CurrencyPrefs", {})
        currency["MultiCurrencyEnabled"] = True
        currency.setdefault("HomeCurrency", {"value": "USD"})
    for code, rate in (rates or {}).items():
        company.exchange_rates[code.upper()] = Decimal(str(rate))
    if first:
        for entity in ("Invoice", "Payment", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt"):
            for record in company.tables[entity].values():
                record.setdefault("ExchangeRate", ONE)
                home_amounts(company, record)


def _ref(code: str) -> dict[str, Any]:
    return {"value": code, "name": CURRENCY_NAMES.get(code, code)}


def _code(ref: Any, element: str) -> str | None:
    """The currency code a ``CurrencyRef`` names (None when it names none), or 2500."""
    value = ref.get("value") if isinstance(ref, dict) else ref
    if value in (None, ""):
        return None
    code = str(value).upper()
    if code not in CURRENCY_NAMES:
        raise Fault("2500", "Invalid Reference Id",
                    f"Invalid Reference Id : Currency {value} is not a supported currency",
                    element=element)
    return code


def _foreign_refused(company: Company, code: str, element: str) -> Fault:
    return Fault("6000", _BUSINESS,
                 f"Business Validation Error: Multicurrency is not enabled for this company: "
                 f"{code} is not the home currency ({home_currency(company)})", element=element)


def customer_currency(company: Company, record: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Set a customer's ``CurrencyRef``: fixed once the customer exists, home when not given."""
    home = home_currency(company)
    wanted = _code(record.get("CurrencyRef"), "CurrencyRef")
    if existing is not None:
        current = str((existing.get("CurrencyRef") or {}).get("value") or home)
        if wanted is not None and wanted != current:
            raise Fault("6000", _BUSINESS,
                        f"Business Validation Error: You can't change the currency of a customer. "
                        f"This customer's currency is {current}.", element="CurrencyRef")
        record["CurrencyRef"] = _ref(current)
        return
    if wanted is not None and wanted != home and not multicurrency_enabled(company):
        raise _foreign_refused(company, wanted, "CurrencyRef")
    record["CurrencyRef"] = _ref(wanted or home)


def _rate(value: Any) -> Decimal:
    try:
        rate = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise Fault("2050", "Invalid Number", f"Invalid Number : {value}",
                    element="ExchangeRate") from None
    if rate <= 0:
        raise Fault("6000", _BUSINESS, "Business Validation Error: The exchange rate must be "
                    "greater than zero.", element="ExchangeRate")
    return rate


def transaction_currency(company: Company, record: dict[str, Any]) -> None:
    """Check and complete an Invoice's or Payment's currency and exchange rate (before its totals:
    :func:`home_amounts` follows them). A missing customer is left to the transaction's own check."""
    home = home_currency(company)
    customer = company.tables["Customer"].get(str((record.get("CustomerRef") or {}).get("value")))
    theirs = str(((customer or {}).get("CurrencyRef") or {}).get("value") or home)
    wanted = _code(record.get("CurrencyRef"), "CurrencyRef")
    if not multicurrency_enabled(company):
        if wanted is not None and wanted != home:
            raise _foreign_refused(company, wanted, "CurrencyRef")
        record["CurrencyRef"] = _ref(home)
        record.pop("ExchangeRate", None)
        return
    code = wanted or theirs
    if code != theirs:
        raise Fault("6000", _BUSINESS,
                    f"Business Validation Error: The transaction currency ({code}) must be the "
                    f"same as the customer's currency ({theirs}).", element="CurrencyRef")
    record["CurrencyRef"] = _ref(code)
    if code == home:
        record["ExchangeRate"] = ONE
    elif record.get("ExchangeRate") not in (None, "", 0, "0") and _rate(record["ExchangeRate"]) != ONE:
        # python-quickbooks sends ExchangeRate 1 on every transaction: a default, not a rate.
        record["ExchangeRate"] = _rate(record["ExchangeRate"])
    else:
        record["ExchangeRate"] = company.exchange_rates.get(code, ONE)


def home_amounts(company: Company, record: dict[str, Any]) -> None:
    """``HomeTotalAmt`` (and ``HomeBalance``) of a transaction in a multi-currency company."""
    if not multicurrency_enabled(company) or "TotalAmt" not in record:
        return
    rate = Decimal(str(record.get("ExchangeRate") or ONE))
    record["HomeTotalAmt"] = (Decimal(str(record["TotalAmt"])) * rate).quantize(
        CENT, rounding=ROUND_HALF_UP)
    if "Balance" in record:
        record["HomeBalance"] = (Decimal(str(record["Balance"])) * rate).quantize(
            CENT, rounding=ROUND_HALF_UP)


def exchange_rate(company: Company, query: dict[str, str], now: date) -> dict[str, Any]:
    """The ``ExchangeRate`` of ``sourcecurrencycode`` to the home currency as of ``asofdate``
    (today when not given)."""
    source = query.get("sourcecurrencycode")
    if not source:
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter sourcecurrencycode is missing in the request",
                    element="sourcecurrencycode")
    code = _code(source, "sourcecurrencycode") or source
    as_of = query.get("asofdate") or now.isoformat()
    try:
        date.fromisoformat(as_of)
    except ValueError:
        raise Fault("2010", "Request has invalid or unsupported property",
                    f"Invalid date : asofdate {as_of}", element="asofdate") from None
    if not multicurrency_enabled(company) and code != home_currency(company):
        raise _foreign_refused(company, code, "sourcecurrencycode")
    home = home_currency(company)
    rate = ONE if code == home else company.exchange_rates.get(code, ONE)
    return {"SourceCurrencyCode": code, "TargetCurrencyCode": home, "Rate": rate,
            "AsOfDate": as_of, "domain": "QBO", "sparse": False, "SyncToken": "0",
            "MetaData": {"LastUpdatedTime": company.now()}}
