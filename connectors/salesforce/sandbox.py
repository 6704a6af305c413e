"""Salesforce's part of sandbox mode: settings that point a connection at the emulator, the
emulator's options, and the ``splice sandbox`` actions a salesperson would do by hand, together
the connector's :data:`SANDBOX` spec.

The plugin names this module's ``SANDBOX`` by reference, so the emulator (Starlette and some thirty
modules) is imported only when a sandbox starts, never by ``splice validate`` or a real ``serve``.

The actions use the emulator's public REST API (client credentials login, SOQL, sObject update),
the same calls a real org answers, so what they trigger in the flows is what a user in Salesforce
would trigger.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from connectors.salesforce.config import DEFAULT_API_VERSION
from connectors.salesforce.emulator import create_app
from connectors.salesforce.emulator.schema import STAGES
from runtime import SandboxAction, SandboxSpec, SandboxTarget

__all__ = ["SANDBOX", "SANDBOX_ACTIONS", "SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET",
           "emulator_options", "sandbox_settings"]

#: The connected app the sandbox emulator accepts (client credentials flow).
SANDBOX_CLIENT_ID = "splice-sandbox"
SANDBOX_CLIENT_SECRET = "splice-sandbox-secret"
_ID = re.compile(r"^006[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$")


def sandbox_settings(base_url: str) -> Mapping[str, Any]:
    """Connection settings for the emulator at ``base_url``: client credentials against its own
    token endpoint (which answers with itself as instance URL), any other login material dropped."""
    return {"auth": "client-credentials", "login-url": base_url, "instance-url": None,
            "client-id": SANDBOX_CLIENT_ID, "client-secret": SANDBOX_CLIENT_SECRET,
            "username": None, "private-key": None, "refresh-token": None, "audience": None}


def emulator_options(target: SandboxTarget) -> Mapping[str, Any]:
    """The emulator of a sandbox: the demo org (multi-currency on, USD and EUR, with the EUR account
    and its won deal), and only the sandbox's connected app may log in.

    Long polls are kept short so that stopping ``splice serve`` is not held up by a CometD wait.
    """
    client_id = str(target.settings.get("client-id") or SANDBOX_CLIENT_ID)
    secret = str(target.settings.get("client-secret") or SANDBOX_CLIENT_SECRET)
    return {"demo": True, "multicurrency": ("USD", "EUR"), "clients": {client_id: secret},
            "long_poll_timeout": 10.0}


async def _login(http: httpx.AsyncClient, emulator: Mapping[str, Any]) -> str:
    settings = emulator.get("settings") or {}
    response = await http.post(f"{emulator['baseUrl']}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": settings.get("client-id", ""),
        "client_secret": settings.get("client-secret", "")})
    if response.status_code != 200:
        raise ValueError(f"salesforce emulator refused the demo login ({response.status_code})")
    body = response.json()
    http.headers["Authorization"] = f"Bearer {body['access_token']}"
    return f"{body['instance_url']}/services/data/v{DEFAULT_API_VERSION}"


async def _soql(http: httpx.AsyncClient, api: str, query: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    response = await http.get(f"{api}/query", params={"q": query})
    while True:
        response.raise_for_status()
        body = response.json()
        records.extend(body["records"])
        if body.get("done", True):
            return records
        response = await http.get(f"{api.split('/services/')[0]}{body['nextRecordsUrl']}")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def _one_opportunity(http: httpx.AsyncClient, api: str, wanted: str) -> dict[str, Any]:
    """The one opportunity with this Id or name (or a unique part of its name)."""
    fields = "Id, Name, StageName, Amount, Account.Name, QuickBooks_Invoice_Id__c"
    if _ID.match(wanted):
        rows = await _soql(http, api, f"SELECT {fields} FROM Opportunity WHERE Id = {_quote(wanted)}")
    else:
        rows = await _soql(http, api, f"SELECT {fields} FROM Opportunity WHERE Name = "
                                      f"{_quote(wanted)}")
        if not rows:
            like = wanted.replace("%", "").replace("_", "")
            rows = await _soql(http, api, f"SELECT {fields} FROM Opportunity WHERE Name LIKE "
                                          f"{_quote('%' + like + '%')} ORDER BY Name")
    if not rows:
        raise ValueError(f"no opportunity matches {wanted!r} (see: splice sandbox list)")
    if len(rows) > 1:
        names = "; ".join(r["Name"] for r in rows[:5])
        raise ValueError(f"{len(rows)} opportunities match {wanted!r}: {names}; give the Id "
                         "or the whole name")
    return rows[0]


async def close_opportunity(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Set an opportunity (by Id or name) to Closed Won, as a salesperson would."""
    if not args:
        raise ValueError("usage: splice sandbox close-opportunity <Id|Name>")
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = await _login(http, emulator)
        row = await _one_opportunity(http, api, " ".join(args))
        if row["StageName"] == "Closed Won":
            return f"{row['Name']} ({row['Id']}) is already Closed Won"
        await _set_stage(http, api, row, "Closed Won")
    return (f"Closed Won: {row['Name']} ({row['Id']}), amount {row['Amount']}, was "
            f"{row['StageName']}. Watch splice serve's console for its invoice.")


async def lose_opportunity(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Set an opportunity (by Id or name) to Closed Lost, as a salesperson would when a deal falls
    through; an invoiced one is then cancelled in QuickBooks by the cancellation policy."""
    if not args:
        raise ValueError("usage: splice sandbox lose-opportunity <Id|Name>")
    wanted = " ".join(args)
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = await _login(http, emulator)
        row = await _one_opportunity(http, api, wanted)
        if row["StageName"] == "Closed Lost":
            return f"{row['Name']} ({row['Id']}) is already Closed Lost"
        response = await http.patch(f"{api}/sobjects/Opportunity/{row['Id']}",
                                    json={"StageName": "Closed Lost"})
        if response.status_code != 204:
            raise ValueError(f"salesforce emulator refused the update: {response.text[:200]}")
    invoice = row.get("QuickBooks_Invoice_Id__c")
    then = (f"Watch splice serve's console: its invoice {invoice} is cancelled by the cancellation "
            "policy." if invoice else "It was never invoiced: nothing to cancel in QuickBooks.")
    return f"Closed Lost: {row['Name']} ({row['Id']}), amount {row['Amount']}, was {row['StageName']}. {then}"
#: The demo org's milestone object and the status that makes a milestone billable (the
#: project's projects.* properties say the same for the flows).
_MILESTONE = "Project_Milestone__c"
_BILLABLE = "Billable"
_MILESTONE_ID = re.compile(r"^a0M[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$")


async def bill_milestone(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Set a project milestone (by Id or name) to Billable, as a project manager would."""
    if not args:
        raise ValueError("usage: splice sandbox bill-milestone <Id|Name>")
    wanted = " ".join(args)
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = await _login(http, emulator)
        fields = "Id, Name, Status__c, Amount__c, Opportunity__r.Name"
        if _MILESTONE_ID.match(wanted):
            rows = await _soql(http, api, f"SELECT {fields} FROM {_MILESTONE} WHERE Id = {_quote(wanted)}")
        else:
            like = wanted.replace("%", "").replace("_", "")
            rows = await _soql(http, api, f"SELECT {fields} FROM {_MILESTONE} WHERE Name = {_quote(wanted)}")
            rows = rows or await _soql(http, api, f"SELECT {fields} FROM {_MILESTONE} WHERE Name LIKE "
                                                  f"{_quote('%' + like + '%')} ORDER BY Name")
        if not rows:
            raise ValueError(f"no project milestone matches {wanted!r}")
        if len(rows) > 1:
            names = "; ".join(r["Name"] for r in rows[:5])
            raise ValueError(f"{len(rows)} milestones match {wanted!r}: {names}; give the Id or the "
                             "whole name")
        row = rows[0]
        project = (row.get("Opportunity__r") or {}).get("Name") or "no opportunity"
        if row["Status__c"] == _BILLABLE:
            return f"{row['Name']} ({row['Id']}) of {project} is already {_BILLABLE}"
        response = await http.patch(f"{api}/sobjects/{_MILESTONE}/{row['Id']}", json={"Status__c": _BILLABLE})
        if response.status_code != 204:
            raise ValueError(f"salesforce emulator refused the update: {response.text[:200]}")
    return (f"{_BILLABLE}: {row['Name']} ({row['Id']}) of {project}, amount {row['Amount__c']}, was "
            f"{row['Status__c']}. Watch splice serve's console for its invoice on the project.")
async def move_opportunity(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Move an opportunity (by Id or name) to another stage of the sales process, as a salesperson
    would: an Estimate deal moved to an estimate stage gets its QuickBooks estimate."""
    stage = next((s for s in sorted(STAGES, key=len, reverse=True)
                  if " ".join(args).endswith(" " + s)), None)
    if stage is None:
        raise ValueError("usage: splice sandbox move-opportunity <Id|Name> <Stage>; stages: "
                         + ", ".join(STAGES))
    wanted = " ".join(args)[:-len(stage)].strip()
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = await _login(http, emulator)
        row = await _one_opportunity(http, api, wanted)
        if row["StageName"] == stage:
            return f"{row['Name']} ({row['Id']}) is already at {stage}"
        await _set_stage(http, api, row, stage)
    return f"{stage}: {row['Name']} ({row['Id']}), was {row['StageName']}."


async def _set_stage(http: httpx.AsyncClient, api: str, row: Mapping[str, Any], stage: str) -> None:
    response = await http.patch(f"{api}/sobjects/Opportunity/{row['Id']}", json={"StageName": stage})
    if response.status_code != 204:
        raise ValueError(f"salesforce emulator refused the update: {response.text[:200]}")


async def list_opportunities(emulator: Mapping[str, Any], args: list[str]) -> str:
    """The opportunities with their stage, amount and invoice, as a table."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        api = await _login(http, emulator)
        rows = await _soql(http, api, "SELECT Id, Name, StageName, Amount, QuickBooks_Invoice_Id__c, "
                                      "Payment_Status__c FROM Opportunity ORDER BY Name")
    table = [("ID", "OPPORTUNITY", "STAGE", "AMOUNT", "INVOICE", "PAYMENT")]
    table += [(r["Id"], r["Name"], r["StageName"], f"{r['Amount'] or 0:.2f}",
               r.get("QuickBooks_Invoice_Id__c") or "-", r.get("Payment_Status__c") or "-")
              for r in rows]
    return f"Salesforce opportunities ({len(rows)}):\n" + _format(table)


def _format(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()
                     for r in rows)


def sandbox_examples(app: Any) -> Mapping[str, str]:
    """``accountId``: the first demo account already linked to a QuickBooks customer (one with
    invoices and payments to show), for the banner's call of the project's API."""
    accounts = app.state.emulator.org.records.get("Account", {}).values()
    linked = [a for a in accounts if a.get("QB_Customer_Id__c")] or list(accounts)
    return {"accountId": str(linked[0]["Id"])} if linked else {}


async def multicurrency(emulator: Mapping[str, Any], args: list[str]) -> str:
    """Turn multi-currency on in the org (corporate currency first) and add the demo's EUR account
    with a won EUR deal, whose change events reach the running flows (once: a demo that has them
    keeps them)."""
    currencies = [a.upper() for a in args] or ["USD", "EUR"]
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{emulator['baseUrl']}/_emulator/multicurrency",
                                   json={"currencies": currencies, "demo": True})
    if response.status_code != 200:
        raise ValueError(f"salesforce emulator refused: {response.text[:200]}")
    answer = response.json()
    return (f"Multi-currency on ({', '.join(answer['currencies'])}); won EUR deal "
            f"{answer['opportunity']} for Lumière Maison (added once: the sandbox's demo starts with "
            "it). With currency.enabled auto (the dev default) or on it is invoiced in euros.")


SANDBOX_ACTIONS: tuple[SandboxAction, ...] = (
    SandboxAction("close-opportunity", close_opportunity, usage="<Id|Name>",
                  summary="set an opportunity's stage to Closed Won"),
    SandboxAction("lose-opportunity", lose_opportunity, usage="<Id|Name>",
                  summary="set an opportunity's stage to Closed Lost (cancels its invoice)"),
    SandboxAction("move-opportunity", move_opportunity, usage="<Id|Name> <Stage>",
                  summary="move an opportunity to another stage (an Estimate deal at an estimate "
                          "stage gets its estimate)"),
    SandboxAction("list", list_opportunities, summary="opportunities, stages and invoices"),
    SandboxAction("bill-milestone", bill_milestone, usage="<Id|Name>",
                  summary="set a project milestone's status to Billable"),
    SandboxAction("eur-deal", multicurrency, usage="[CORPORATE OTHER...]",
                  summary="turn multi-currency on in the org and add a won EUR deal"),
)

#: The connector's sandbox; ``plugin.py`` refers to it as ``"connectors.salesforce.sandbox:SANDBOX"``.
SANDBOX = SandboxSpec(emulator=create_app, settings=sandbox_settings,
                      emulator_options=emulator_options, actions=SANDBOX_ACTIONS,
                      examples=sandbox_examples)
