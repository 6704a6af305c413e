"""QuickBooks' part of sandbox mode: settings that point a connection at the emulator, the
emulator's options (demo company, webhooks into ``splice serve``) and the ``splice sandbox``
actions a bookkeeper would do by hand, together the connector's :data:`SANDBOX` spec.

The plugin names this module's ``SANDBOX`` by reference, so the emulator (Starlette and some thirty
modules) is imported only when a sandbox starts, never by ``splice validate`` or a real ``serve``.

The actions call the emulator's Accounting API (query, payment create with a ``requestid``). The
access token comes from the emulator's control API (a fresh refresh token for the realm, exchanged
at its token endpoint), because the demo refresh token was already rotated by ``splice serve``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from connectors.quickbooks.config import DEFAULT_MINOR_VERSION
from connectors.quickbooks.emulator import DEFAULT_REALM, SANDBOX_REFRESH_TOKEN, create_app
from connectors.quickbooks.emulator.demo_currency import DEMO_RATES
from connectors.quickbooks.money import dumps
from runtime import SandboxAction, SandboxSpec, SandboxTarget

__all__ = ["SANDBOX", "SANDBOX_ACTIONS", "SANDBOX_VERIFIER_TOKEN", "emulator_options",
           "sandbox_settings"]

SANDBOX_VERIFIER_TOKEN = "emulator-verifier"


def sandbox_settings(base_url: str) -> Mapping[str, Any]:
    """Connection settings for the emulator at ``base_url``: its demo app, company and the first
    refresh token it accepts (rotated on use like Intuit's, and kept in the store from then on)."""
    return {"client-id": "emulator-client", "client-secret": "emulator-secret",
            "realm-id": DEFAULT_REALM, "refresh-token": SANDBOX_REFRESH_TOKEN,
            "environment": None, "base-url": base_url,
            "token-url": f"{base_url}/oauth2/v1/tokens/bearer",
            "webhook-verifier-token": SANDBOX_VERIFIER_TOKEN}


def emulator_options(target: SandboxTarget) -> Mapping[str, Any]:
    """The emulator of a sandbox: the demo company (multi-currency on: home USD, a EUR rate and the
    euro customer), and webhooks to the ``quickbooks.webhook``
    trigger of the served flows (its path and verifier token), if one listens."""
    options: dict[str, Any] = {"demo": True, "multicurrency": dict(DEMO_RATES),
                               "client_id": target.settings.get("client-id"),
                               "client_secret": target.settings.get("client-secret"),
                               "webhook_interval": 0.5}
    for name, params in target.triggers:
        if name == "webhook":
            path = str(params.get("path") or "/webhooks/quickbooks")
            options["webhook_url"] = target.server_url + path
            options["webhook_verifier_token"] = str(
                params.get("verifier-token") or target.settings.get("webhook-verifier-token")
                or SANDBOX_VERIFIER_TOKEN)
            break
    return options


class _Api:
    """A minimal Accounting API client for the actions (one realm, one access token)."""

    def __init__(self, http: httpx.AsyncClient, emulator: Mapping[str, Any]) -> None:
        self.http = http
        self.base = str(emulator["baseUrl"]).rstrip("/")
        self.settings = emulator.get("settings") or {}
        self.realm = str(self.settings.get("realm-id") or DEFAULT_REALM)

    async def login(self) -> None:
        granted = await self.http.post(f"{self.base}/_emulator/tokens", json={"realm": self.realm})
        granted.raise_for_status()
        token = await self.http.post(
            f"{self.base}/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": granted.json()["refresh_token"]},
            auth=(str(self.settings.get("client-id", "")), str(self.settings.get("client-secret", ""))))
        if token.status_code != 200:
            raise ValueError(f"quickbooks emulator refused the demo login ({token.status_code})")
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        self.http.headers["Accept"] = "application/json"

    def url(self, resource: str) -> str:
        return f"{self.base}/v3/company/{self.realm}/{resource}"

    async def query(self, text: str) -> list[dict[str, Any]]:
        response = await self.http.get(self.url("query"), params={
            "query": text, "minorversion": DEFAULT_MINOR_VERSION})
        response.raise_for_status()
        result = response.json()["QueryResponse"]
        return next((v for v in result.values() if isinstance(v, list)), [])

    async def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create one entity (with a fresh requestid, as a person's click is one request)."""
        response = await self.http.post(self.url(resource), content=dumps(body), params={
            "minorversion": DEFAULT_MINOR_VERSION, "requestid": uuid.uuid4().hex},
            headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"quickbooks emulator refused the {resource}: {response.text[:200]}")
        return dict(next(iter(v for k, v in response.json().items() if k != "time")))


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _amount(raw: str) -> Decimal:
    """A positive amount with at most two decimals, or the error that says what is wrong."""
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"not an amount: {raw!r}") from None
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"the amount must be positive with at most two decimals, not {raw}")
    return amount


async def _invoice(api: _Api, wanted: str) -> dict[str, Any]:
    """The invoice with this DocNumber (or Id)."""
    invoices = await api.query(f"select * from Invoice where DocNumber = {_quote(wanted)}")
    if not invoices and wanted.isdigit():
        invoices = await api.query(f"select * from Invoice where Id = {_quote(wanted)}")
    if not invoices:
        raise ValueError(f"no invoice with Id or DocNumber {wanted!r} (see: splice sandbox list)")
    return invoices[0]


async def _invoice_and_amount(api: _Api, args: list[str], action: str
                              ) -> tuple[dict[str, Any], Decimal, Decimal]:
    """The invoice ``<Invoice Id|DocNumber> <amount>`` names (logged in first), the amount, and
    the invoice's balance, which the amount may not exceed."""
    if len(args) != 2:
        raise ValueError(f"usage: splice sandbox {action} <Invoice Id|DocNumber> <amount>")
    wanted, raw_amount = args
    amount = _amount(raw_amount)
    await api.login()
    invoice = await _invoice(api, wanted)
    balance = Decimal(str(invoice.get("Balance", 0)))
    if amount > balance:
        raise ValueError(f"invoice {invoice['DocNumber']} has a balance of {balance}; "
                         f"{amount} is more than that")
    return invoice, amount, balance


async def pay(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Record a customer payment against an invoice (by Id or DocNumber)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = _Api(http, emulator)
        invoice, amount, balance = await _invoice_and_amount(api, args, "pay")
        body = {"CustomerRef": invoice["CustomerRef"], "TotalAmt": amount,
                "Line": [{"Amount": amount,
                          "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}
        response = await http.post(api.url("payment"), content=dumps(body), params={
            "minorversion": DEFAULT_MINOR_VERSION, "requestid": uuid.uuid4().hex},
            headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"quickbooks emulator refused the payment: {response.text[:200]}")
        payment = response.json()["Payment"]
    customer = invoice["CustomerRef"].get("name") or invoice["CustomerRef"]["value"]
    return (f"Payment {payment['Id']} of {amount} recorded for invoice {invoice['DocNumber']} "
            f"(Id {invoice['Id']}, {customer}); balance now {balance - amount}. Watch splice "
            "serve's console for the opportunity update.")


async def credit(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Credit part of an invoice (by Id or DocNumber) as a bookkeeper does by hand: a credit memo
    for the customer, applied to the invoice (QuickBooks records that as a payment of 0 linking
    both)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = _Api(http, emulator)
        invoice, amount, balance = await _invoice_and_amount(api, args, "credit")
        item = next((line["SalesItemLineDetail"]["ItemRef"] for line in invoice.get("Line", [])
                     if (line.get("SalesItemLineDetail") or {}).get("ItemRef")), None)
        if item is None:
            raise ValueError(f"invoice {invoice['DocNumber']} has no item line to credit")
        memo = await api.create("creditmemo", {
            "CustomerRef": invoice["CustomerRef"], "PrivateNote": f"Credit on invoice {invoice['DocNumber']}",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": amount,
                      "SalesItemLineDetail": {"ItemRef": {"value": item["value"]},
                                              "TaxCodeRef": {"value": "NON"}}}]})
        await api.create("payment", {"CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal("0"), "Line": [
            {"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
            {"Amount": amount, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]})
    return (f"Credit memo {memo['DocNumber']} (Id {memo['Id']}) of {amount} applied to invoice "
            f"{invoice['DocNumber']} (Id {invoice['Id']}); balance now {balance - amount}. Watch "
            "splice serve's console for the opportunity update.")


async def list_invoices(emulator: Mapping[str, Any], args: list[str]) -> str:
    """The invoices with customer, total and balance, as a table."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = _Api(http, emulator)
        await api.login()
        rows = await api.query("select * from Invoice order by Id MAXRESULTS 1000")
    table = [("ID", "DOC", "CUSTOMER", "TOTAL", "BALANCE", "NOTE")]
    table += [(r["Id"], r.get("DocNumber", ""), r["CustomerRef"].get("name", ""),
               f"{Decimal(str(r['TotalAmt'])):.2f}", f"{Decimal(str(r['Balance'])):.2f}",
               (r.get("PrivateNote") or "")[:40]) for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    text = "\n".join("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()
                     for r in table)
    return f"QuickBooks invoices ({len(rows)}):\n{text}"


async def send_invoice(emulator: Mapping[str, Any], args: list[str]) -> str:
    """E-mail an invoice and show its headers (:mod:`.sandbox_sending`, which uses this module)."""
    from connectors.quickbooks.sandbox_sending import send

    return await send(emulator, args)


async def multicurrency(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Turn multi-currency on in the company with exchange rates (``EUR=1.085``; the demo's when
    none are given) and add the demo's euro customer (once: the sandbox's demo starts with both,
    so this only sets rates there)."""
    rates: dict[str, str] = {"EUR": "1.085", "GBP": "1.27"}
    if args:
        rates = {}
        for arg in args:
            code, sep, rate = arg.partition("=")
            try:
                valid = bool(sep) and len(code) == 3 and code.isalpha() and Decimal(rate) > 0
            except InvalidOperation:
                valid = False
            if not valid:
                raise ValueError(f"not CODE=RATE (home units per one unit, e.g. EUR=1.085): {arg!r}")
            rates[code.upper()] = rate
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{str(emulator['baseUrl']).rstrip('/')}/_emulator/multicurrency",
                                   json={"rates": rates, "demo": True})
    if response.status_code != 200:
        raise ValueError(f"quickbooks emulator refused: {response.text[:200]}")
    shown = ", ".join(f"1 {code} = {rate} USD" for code, rate in response.json()["rates"].items())
    return f"Multi-currency on (it cannot be turned off); exchange rates: {shown}; euro customer Lumière Maison (EUR)."


SANDBOX_ACTIONS: tuple[SandboxAction, ...] = (
    SandboxAction("pay", pay, usage="<Invoice Id|DocNumber> <amount>",
                  summary="record a customer payment against an invoice"),
    SandboxAction("send", send_invoice, usage="<Invoice Id|DocNumber> [address]",
                  summary="e-mail an invoice and show its headers (class, location, custom fields, ...)"),
    SandboxAction("credit", credit, usage="<Invoice Id|DocNumber> <amount>",
                  summary="credit part of an invoice: a credit memo applied to it"),
    SandboxAction("list", list_invoices, summary="invoices, totals and balances"),
    SandboxAction("currencies", multicurrency, usage="[CODE=RATE ...]",
                  summary="turn multi-currency on with exchange rates, add a euro customer"),
)

#: The connector's sandbox; ``plugin.py`` refers to it as ``"connectors.quickbooks.sandbox:SANDBOX"``.
SANDBOX = SandboxSpec(emulator=create_app, settings=sandbox_settings,
                      emulator_options=emulator_options, actions=SANDBOX_ACTIONS)
